"""The training loop, shared by program tasks and self-supervised pretraining.

A `Learner` turns a batch of example rows into named loss terms; the loop sums them, back-propagates
once and steps. It checkpoints every `train.checkpoint_every` steps and on Ctrl-C, and stops a run whose
loss is not finite (or whose learner reports divergence), keeping the last good checkpoint. Batch order
depends only on (seed, epoch), so a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import math
import random
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from nesy_gedi.config import PretrainConfig, TaskConfig, TrainSpec, dump_config
from nesy_gedi.data.mnist import default_cache_dir
from nesy_gedi.data.queries import QuerySet
from nesy_gedi.errors import UserError
from nesy_gedi.logic.deepproblog_engine import DeepProbLogEngine
from nesy_gedi.logic.query import QueryTemplate
from nesy_gedi.methods import Method, TrainBatch
from nesy_gedi.rundir import CHECKPOINT, CONFIG, VERSIONS, RunDir, versions


class Interrupted(Exception):
    """Ctrl-C during training; the checkpoint holds every finished step."""

    def __init__(self, step: int) -> None:
        super().__init__(f"interrupted after step {step}")
        self.step = step


class Diverged(Exception):
    """The loss is NaN or infinite, or the learner saw it run away; the last checkpoint is from before."""

    def __init__(self, step: int, terms: dict[str, float], reason: str = "loss is not finite") -> None:
        super().__init__(f"{reason} at step {step}: {terms}")
        self.step, self.terms, self.reason = step, terms, reason

    def summary(self, seconds: float) -> dict:
        """What `metrics.json` records of a run stopped here."""
        return {
            "status": "diverged",
            "diverged_at_step": self.step,
            "divergence": self.reason,
            "loss_terms": self.terms,
            "train_steps": self.step - 1,
            "train_seconds": seconds,
        }


def symbolic_loss(probabilities: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Mean negative log-probability of the queries: DeepProbLog's cross-entropy with target 1."""
    return -torch.log(probabilities.clamp(min=0.0) + eps).mean()


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("device: cuda was asked for but torch sees no GPU; use device: auto or cpu")
    return torch.device(name)


def start_run(config: TaskConfig | PretrainConfig, run: RunDir) -> tuple[torch.device, Path]:
    """Device and threads as the task asks; the resolved task and versions saved first; the data cache."""
    device = resolve_device(config.device)
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    run.write_text(CONFIG, dump_config(config))
    run.write_json(VERSIONS, versions())
    return device, Path(config.data.cache) if config.data.cache else default_cache_dir()


def seed_everything(seed: int) -> None:
    """One seed fixes initialisation and every sampler (DeepProbLog's top-k sampling uses numpy)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Learner(Protocol):
    """What the loop trains: networks (each gets an optimiser) and a loss for a batch of example rows."""

    networks: dict[str, nn.Module]
    progress: tuple[str, ...]
    """info keys shown (as running means) on the progress bar besides the loss"""

    def bind(self, optimizers: dict[str, torch.optim.Optimizer]) -> None: ...
    def loss_terms(self, rows: np.ndarray, step: int) -> tuple[dict[str, torch.Tensor], dict[str, float]]: ...
    def divergence(self, info: dict[str, float]) -> str | None: ...
    def zero_grad(self) -> None: ...
    def step(self) -> None: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...


class QueryLearner:
    """A program task: the method's terms added to the query loss from the engine."""

    def __init__(
        self,
        engine: DeepProbLogEngine,
        method: Method,
        template: QueryTemplate,
        train_set: QuerySet,
        images: torch.Tensor,
    ) -> None:
        self.engine, self.method, self.template = engine, method, template
        self.train_set, self.images = train_set, images
        self.networks = {**method.networks, **method.modules}
        self.progress = ("p_label>0.5", *method.progress)
        self._own: list[torch.optim.Optimizer] = []

    def bind(self, optimizers: dict[str, torch.optim.Optimizer]) -> None:
        self.engine.set_optimizers({name: optimizers[name] for name in self.method.networks})
        self._own = [optimizers[name] for name in self.method.modules]

    def loss_terms(self, rows: np.ndarray, step: int) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        ts = self.train_set
        queries = [self.template.query(ts.source, ts.indices[r], ts.labels[r]) for r in rows]
        batch = TrainBatch(images=self.images[torch.as_tensor(ts.indices[rows].ravel())], step=step)
        self.engine.train()
        for module in self.method.modules.values():
            module.train()
        probabilities = self.engine.probabilities(queries)
        terms, info = self.method.loss_terms(batch)
        return (
            {"query": symbolic_loss(probabilities), **terms},
            {"p_label>0.5": float((probabilities.detach() > 0.5).float().mean()), **info},
        )

    def divergence(self, info: dict[str, float]) -> str | None:
        return self.method.divergence()

    def zero_grad(self) -> None:
        self.engine.zero_grad()
        for optimizer in self._own:
            optimizer.zero_grad()

    def step(self) -> None:
        self.engine.step()
        for optimizer in self._own:
            optimizer.step()

    def state_dict(self) -> dict:
        return {"parameters": list(self.engine.parameters), "method": self.method.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.engine.parameters[:] = state["parameters"]
        self.method.load_state_dict(state["method"])


@dataclass
class TrainResult:
    steps: int
    seconds: float


class Trainer:
    def __init__(self, learner: Learner, n_examples: int, spec: TrainSpec, seed: int, run: RunDir) -> None:
        self.learner, self.n_examples, self.spec, self.seed, self.run = learner, n_examples, spec, seed, run
        self.optimizers = {name: self._optimizer(net) for name, net in learner.networks.items()}
        learner.bind(self.optimizers)
        self.steps_per_epoch = math.ceil(n_examples / spec.batch_size)
        self.total_steps = spec.iterations or spec.epochs * self.steps_per_epoch
        self.schedulers = {name: self._scheduler(opt) for name, opt in self.optimizers.items()}
        self.step = 0
        self.seconds = 0.0
        self._pending: list[dict] = []

    def _optimizer(self, net: torch.nn.Module) -> torch.optim.Optimizer:
        cls = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}[self.spec.optimizer]
        return cls(net.parameters(), lr=self.spec.lr)

    def _scheduler(self, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
        if self.spec.schedule == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.total_steps)
        return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0)

    def _order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.n_examples)

    def save(self) -> None:
        self.run.append_log(self._pending)
        self._pending = []
        self.run.save_torch(
            CHECKPOINT,
            {
                "step": self.step,
                "seconds": self.seconds,
                "networks": {n: net.state_dict() for n, net in self.learner.networks.items()},
                "optimizers": {n: opt.state_dict() for n, opt in self.optimizers.items()},
                "schedulers": {n: sched.state_dict() for n, sched in self.schedulers.items()},
                "learner": self.learner.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "numpy_rng": np.random.get_state(),
                "python_rng": random.getstate(),
            },
        )

    def restore(self) -> None:
        """Continue from the run folder's checkpoint."""
        state = self.run.load_torch(CHECKPOINT)
        for name, net in self.learner.networks.items():
            net.load_state_dict(state["networks"][name])
            self.optimizers[name].load_state_dict(state["optimizers"][name])
            self.schedulers[name].load_state_dict(state["schedulers"][name])
        self.learner.load_state_dict(state["learner"])
        torch.set_rng_state(state["torch_rng"])
        np.random.set_state(state["numpy_rng"])
        random.setstate(state["python_rng"])
        self.step, self.seconds = state["step"], state["seconds"]
        self.run.truncate_log(self.step)

    def train(self, until: int | None = None) -> TrainResult:
        """Train to step `until` (default: the end), checkpointing there."""
        stop = min(until or self.total_steps, self.total_steps)
        recent: dict[str, deque[float]] = {}  # running means on the bar: the loss, each term, the learner's keys
        bar = tqdm(total=stop, initial=self.step, desc="train", unit="step", dynamic_ncols=True, mininterval=1.0)
        order, order_epoch = None, -1
        try:
            while self.step < stop:
                epoch, position = divmod(self.step, self.steps_per_epoch)
                if epoch != order_epoch:
                    order, order_epoch = self._order(epoch), epoch
                rows = order[position * self.spec.batch_size : (position + 1) * self.spec.batch_size]
                started = time.perf_counter()
                row = self._train_step(rows)
                self.seconds += time.perf_counter() - started
                self.step += 1
                row.update(step=self.step, epoch=epoch, seconds=round(self.seconds, 3))
                self._pending.append(row)
                for key in ("loss", *(k for k in row if k.startswith("loss_")), *self.learner.progress):
                    recent.setdefault(key.removeprefix("loss_"), deque(maxlen=100)).append(row[key])
                bar.update(1)
                bar.set_postfix({key: f"{np.mean(values):.3f}" for key, values in recent.items()}, refresh=False)
                if self.step % self.spec.checkpoint_every == 0:
                    self.save()
        except KeyboardInterrupt:
            self.save()
            raise Interrupted(self.step) from None
        except Diverged:
            self.save()  # the networks are still those of the last finished step: nothing was stepped
            raise
        finally:
            bar.close()
        self.save()
        return TrainResult(self.step, self.seconds)

    def _train_step(self, rows: np.ndarray) -> dict:
        self.learner.zero_grad()
        terms, info = self.learner.loss_terms(rows, self.step)
        loss = sum(terms.values())
        values = {name: float(value.detach()) for name, value in terms.items()}
        if not math.isfinite(float(loss.detach())):
            raise Diverged(self.step + 1, {**values, **info})
        reason = self.learner.divergence(info)
        if reason:
            raise Diverged(self.step + 1, {**values, **info}, reason)
        loss.backward()
        self.learner.step()
        for scheduler in self.schedulers.values():
            scheduler.step()
        return {"loss": float(loss.detach()), **{f"loss_{k}": v for k, v in values.items()}, **info}
