"""The training loop: no task, data or config, only a learner, settings and a run folder.

A `Learner` turns a batch of example rows into named loss terms; the loop sums them, back-propagates
once and steps. It checkpoints every `checkpoint_every` steps and on Ctrl-C, and stops a run whose
loss is not finite (or whose learner reports divergence), keeping the last good checkpoint. Batch order
depends only on (seed, epoch), so a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import contextlib
import functools
import math
import operator
import random
import signal
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import torch
from torch import nn

from nesy_gedi.progress import bar as progress_bar
from nesy_gedi.training.checkpoint import load_checkpoint, save_checkpoint
from nesy_gedi.training.rundir import RunDir
from nesy_gedi.training.threads import ThreadGovernor
from nesy_gedi.training.tracking import EventLog


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


def seed_everything(seed: int) -> None:
    """One seed fixes initialisation and every sampler (DeepProbLog's top-k sampling uses numpy)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class LoopSettings(Protocol):
    """What the loop reads of a task's `train:` settings."""

    optimizer: Literal["adam", "sgd"]
    lr: float
    schedule: Literal["constant", "cosine"]
    batch_size: int
    epochs: int
    iterations: int | None
    checkpoint_every: int


class Learner(Protocol):
    """What the loop trains: networks (each gets an optimiser) and a loss for a batch of example rows."""

    networks: dict[str, nn.Module]
    rates: dict[str, float]
    """learning rates of networks that do not take the run's `lr`"""
    progress: tuple[str, ...]
    """info keys shown (as running means) on the progress bar besides the loss"""

    def loss_terms(self, rows: np.ndarray, step: int) -> tuple[dict[str, torch.Tensor], dict[str, float]]: ...
    def divergence(self, info: dict[str, float]) -> str | None: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...


@dataclass
class TrainResult:
    steps: int
    seconds: float


class Trainer:
    def __init__(
        self,
        learner: Learner,
        n_examples: int,
        spec: LoopSettings,
        seed: int,
        run: RunDir,
        governor: ThreadGovernor | None = None,
    ) -> None:
        self.learner, self.n_examples, self.spec, self.seed, self.run = learner, n_examples, spec, seed, run
        self.governor = governor
        """told every step's duration: chooses torch's threads when the task does not (threads.py)"""
        self.optimizers = {
            name: self._optimizer(net, learner.rates.get(name, spec.lr)) for name, net in learner.networks.items()
        }
        self.steps_per_epoch = (
            max(1, n_examples // spec.batch_size)
            if n_examples % spec.batch_size == 1
            else (math.ceil(n_examples / spec.batch_size))
        )
        """an epoch's last batch of one example is merged into the one before: a batch-normalised network must
        never see a single image in training (and one example makes a noisy step)"""
        self.total_steps = spec.iterations or spec.epochs * self.steps_per_epoch
        self.schedulers = {name: self._scheduler(opt) for name, opt in self.optimizers.items()}
        self.step = 0
        self.seconds = 0.0
        self._pending: list[dict] = []
        self.events = EventLog(run.path)
        """TensorBoard events: the log rows as they are saved, then the final metrics (runner.py)"""

    def _optimizer(self, net: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
        cls = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}[self.spec.optimizer]
        return cls(net.parameters(), lr=lr)

    def _scheduler(self, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
        if self.spec.schedule == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.total_steps)
        return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0)

    def _order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.n_examples)

    def save(self) -> None:
        self.run.append_log(self._pending)
        self.events.rows(self._pending)
        self._pending = []
        save_checkpoint(
            self.run,
            self.step,
            self.seconds,
            self.learner.networks,
            self.optimizers,
            self.schedulers,
            self.learner.state_dict(),
        )

    def restore(self) -> None:
        """Continue from the run folder's checkpoint."""
        self.step, self.seconds, learner = load_checkpoint(
            self.run, self.learner.networks, self.optimizers, self.schedulers
        )
        self.learner.load_state_dict(learner)
        self.run.truncate_log(self.step)
        self.events.resumed_at = self.step

    def train(self, until: int | None = None) -> TrainResult:
        """Train to step `until` (default: the end), checkpointing there."""
        stop = min(until or self.total_steps, self.total_steps)
        recent: dict[str, deque[float]] = {}  # running means on the bar: the loss, each term, the learner's keys
        bar = progress_bar(
            total=stop, initial=self.step, desc="train", unit="step", dynamic_ncols=True, mininterval=1.0
        )
        order, order_epoch = None, -1
        try:
            while self.step < stop:
                epoch, position = divmod(self.step, self.steps_per_epoch)
                if epoch != order_epoch:
                    order, order_epoch = self._order(epoch), epoch
                end = (position + 1) * self.spec.batch_size if position + 1 < self.steps_per_epoch else None
                rows = order[position * self.spec.batch_size : end]
                started = time.perf_counter()
                row = self._train_step(rows)
                took = time.perf_counter() - started
                self.seconds += took
                if self.governor is not None:
                    self.governor.after_step(took)
                self.step += 1
                row.update(step=self.step, epoch=epoch, seconds=round(self.seconds, 3))
                self._pending.append(row)
                for key in ("loss", *(k for k in row if k.startswith("loss_")), *self.learner.progress):
                    if key not in row:  # a term or number some steps leave out (e.g. `gen_every`)
                        continue
                    recent.setdefault(key.removeprefix("loss_"), deque(maxlen=100)).append(row[key])
                bar.update(1)
                bar.set_postfix({key: f"{np.mean(values):.3f}" for key, values in recent.items()}, refresh=False)
                if self.step % self.spec.checkpoint_every == 0:
                    self.save()
        except KeyboardInterrupt:
            with _second_interrupt_ignored():  # Ctrl-C pressed twice must not cut the checkpoint in half
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
        for optimizer in self.optimizers.values():
            optimizer.zero_grad()
        terms, info = self.learner.loss_terms(rows, self.step)
        loss = functools.reduce(operator.add, terms.values())  # sum() would add a 0 first: one more kernel
        values, info = _read(terms, loss, info)
        total = values.pop("loss")
        if not math.isfinite(total):
            raise Diverged(self.step + 1, {**values, **info})
        reason = self.learner.divergence(info)
        if reason:
            raise Diverged(self.step + 1, {**values, **info}, reason)
        loss.backward()
        for optimizer in self.optimizers.values():
            optimizer.step()
        lr = next(iter(self.optimizers.values())).param_groups[0]["lr"]  # the rate this step used
        for scheduler in self.schedulers.values():
            scheduler.step()
        return {"loss": total, **{f"loss_{k}": v for k, v in values.items()}, **info, "lr": lr}


@contextlib.contextmanager
def _second_interrupt_ignored() -> Iterator[None]:
    """SIGINT ignored inside the block (in the main thread, where signals arrive), as before after it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _read(
    terms: dict[str, torch.Tensor], loss: torch.Tensor, info: dict[str, float | torch.Tensor]
) -> tuple[dict[str, float], dict[str, float]]:
    """The step's loss terms, its loss (key `loss`) and the learner's tensor-valued numbers as floats, read
    off the run's device in one transfer (a readout per number would wait for the device once each)."""
    tensors = {f"term/{k}": v for k, v in terms.items()} | {"loss": loss}
    tensors |= {k: v for k, v in info.items() if isinstance(v, torch.Tensor)}
    read = dict(
        zip(tensors, torch.stack([v.detach().float().reshape(()) for v in tensors.values()]).tolist(), strict=True)
    )
    values = {k.removeprefix("term/"): v for k, v in read.items() if k.startswith("term/")} | {"loss": read["loss"]}
    return values, {k: read.get(k, v) for k, v in info.items()}
