"""The training loop: solve the batch's queries, add the method's terms, one backward, one step.

The loop checkpoints every `train.checkpoint_every` steps and on Ctrl-C, and stops a run whose loss
stops being finite, keeping the last good checkpoint. Batch order depends only on (seed, epoch), so a
resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import math
import random
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from nesy_gedi.config import TrainSpec
from nesy_gedi.data.queries import QuerySet
from nesy_gedi.logic.deepproblog_engine import DeepProbLogEngine
from nesy_gedi.logic.query import QueryTemplate
from nesy_gedi.methods import Method, TrainBatch
from nesy_gedi.rundir import CHECKPOINT, RunDir


class Interrupted(Exception):
    """Ctrl-C during training; the checkpoint holds every finished step."""

    def __init__(self, step: int) -> None:
        super().__init__(f"interrupted after step {step}")
        self.step = step


class Diverged(Exception):
    """The loss is NaN or infinite; the last checkpoint is from before it happened."""

    def __init__(self, step: int, terms: dict[str, float]) -> None:
        super().__init__(f"loss is not finite at step {step}: {terms}")
        self.step = step
        self.terms = terms


def symbolic_loss(probabilities: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Mean negative log-probability of the queries: DeepProbLog's cross-entropy with target 1."""
    return -torch.log(probabilities.clamp(min=0.0) + eps).mean()


def seed_everything(seed: int) -> None:
    """One seed fixes initialisation and every sampler (DeepProbLog's top-k sampling uses numpy)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class TrainResult:
    steps: int
    seconds: float


class Trainer:
    def __init__(
        self,
        engine: DeepProbLogEngine,
        method: Method,
        template: QueryTemplate,
        train_set: QuerySet,
        images: torch.Tensor,
        spec: TrainSpec,
        seed: int,
        run: RunDir,
    ) -> None:
        self.engine, self.method, self.template = engine, method, template
        self.train_set, self.images, self.spec, self.seed, self.run = train_set, images, spec, seed, run
        self.optimizers = {name: self._optimizer(net) for name, net in engine.networks.items()}
        engine.set_optimizers(self.optimizers)
        self.steps_per_epoch = math.ceil(len(train_set) / spec.batch_size)
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
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.train_set))

    def save(self) -> None:
        self.run.append_log(self._pending)
        self._pending = []
        self.run.save_torch(
            CHECKPOINT,
            {
                "step": self.step,
                "seconds": self.seconds,
                "networks": {n: net.state_dict() for n, net in self.engine.networks.items()},
                "optimizers": {n: opt.state_dict() for n, opt in self.optimizers.items()},
                "schedulers": {n: sched.state_dict() for n, sched in self.schedulers.items()},
                "parameters": list(self.engine.parameters),
                "torch_rng": torch.get_rng_state(),
                "numpy_rng": np.random.get_state(),
                "python_rng": random.getstate(),
            },
        )

    def restore(self) -> None:
        """Continue from the run folder's checkpoint."""
        state = self.run.load_torch(CHECKPOINT)
        for name, net in self.engine.networks.items():
            net.load_state_dict(state["networks"][name])
            self.optimizers[name].load_state_dict(state["optimizers"][name])
            self.schedulers[name].load_state_dict(state["schedulers"][name])
        self.engine.parameters[:] = state["parameters"]
        torch.set_rng_state(state["torch_rng"])
        np.random.set_state(state["numpy_rng"])
        random.setstate(state["python_rng"])
        self.step, self.seconds = state["step"], state["seconds"]
        self.run.truncate_log(self.step)

    def train(self) -> TrainResult:
        recent_loss: deque[float] = deque(maxlen=100)
        recent_hit: deque[float] = deque(maxlen=100)
        bar = tqdm(
            total=self.total_steps, initial=self.step, desc="train", unit="step", dynamic_ncols=True, mininterval=1.0
        )
        order, order_epoch = None, -1
        try:
            while self.step < self.total_steps:
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
                recent_loss.append(row["loss"])
                recent_hit.append(row["p_label>0.5"])
                bar.update(1)
                bar.set_postfix(loss=f"{np.mean(recent_loss):.3f}", acc=f"{np.mean(recent_hit):.3f}")
                if self.step % self.spec.checkpoint_every == 0:
                    self.save()
        except KeyboardInterrupt:
            self.save()
            raise Interrupted(self.step) from None
        finally:
            bar.close()
        self.save()
        return TrainResult(self.step, self.seconds)

    def _train_step(self, rows: np.ndarray) -> dict:
        ts = self.train_set
        queries = [self.template.query(ts.source, ts.indices[r], ts.labels[r]) for r in rows]
        batch = TrainBatch(images=self.images[torch.as_tensor(ts.indices[rows].ravel())])
        self.engine.train()
        self.engine.zero_grad()
        probabilities = self.engine.probabilities(queries)
        terms = {"query": symbolic_loss(probabilities), **self.method.loss_terms(batch)}
        loss = sum(terms.values())
        values = {name: float(value) for name, value in terms.items()}
        if not math.isfinite(float(loss)):
            raise Diverged(self.step + 1, values)
        loss.backward()
        self.engine.step()
        for scheduler in self.schedulers.values():
            scheduler.step()
        return {
            "loss": float(loss),
            **{f"loss_{k}": v for k, v in values.items()},
            "p_label>0.5": float((probabilities.detach() > 0.5).float().mean()),
        }
