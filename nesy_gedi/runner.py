"""What every command does around training, the same for `run` and `pretrain`: device and threads, the
run folder's config and versions, then train (or stop a diverging run), evaluate, `metrics.json` and
`report.md`. The commands supply what differs: the trainer, the metrics header and the evaluation."""

from __future__ import annotations

import logging
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from nesy_gedi.config import PretrainConfig, TaskConfig, dump_config
from nesy_gedi.data.mnist import cache_folder
from nesy_gedi.errors import UserError
from nesy_gedi.report import write_report
from nesy_gedi.rundir import CHECKPOINT, CONFIG, METRICS, VERSIONS, RunDir, versions
from nesy_gedi.threads import ThreadGovernor
from nesy_gedi.train import Diverged, Trainer

log = logging.getLogger(__name__)

Evaluation = Callable[[], tuple[dict, list[str]]]
"""after training: the metrics it adds and the pictures it drew (file names in the run folder)"""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("device: cuda was asked for but torch sees no GPU; use device: auto or cpu")
    return torch.device(name)


def start_run(config: TaskConfig | PretrainConfig, run: RunDir) -> tuple[torch.device, Path, ThreadGovernor | None]:
    """Device and threads as the task asks (threads unset on a CPU: a governor chooses them while training,
    threads.py); the resolved task and versions saved first; the data cache."""
    device = resolve_device(config.device)
    governor = None
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    elif device.type == "cpu":
        governor = ThreadGovernor()
    run.write_text(CONFIG, dump_config(config))
    run.write_json(VERSIONS, versions())
    return device, cache_folder(config.data.cache), governor


def resume_or_start(trainer: Trainer, resume: bool) -> None:
    """Continue from the run folder's checkpoint when resuming (and there is one)."""
    if resume and trainer.run.has(CHECKPOINT):
        trainer.restore()
        log.info("resuming from step %d of %d", trainer.step, trainer.total_steps)
    elif resume:
        log.info("no checkpoint in the run folder yet: starting from step 0")


def peak_memory_mb() -> float:
    """The process's peak resident memory so far, in MiB (Linux and macOS report it in different units)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def train_and_report(
    config: TaskConfig | PretrainConfig,
    run: RunDir,
    trainer: Trainer,
    header: dict,
    evaluate: Evaluation,
    report: tuple[tuple[str, ...], tuple[str, ...]],
    discarded_seconds: float = 0.0,
) -> dict:
    """Train to the end, evaluate, write `metrics.json` and `report.md`; the metrics. A diverging run is
    stopped, its metrics say `"status": "diverged"` and why, and its last good checkpoint is kept.
    `discarded_seconds`: training time spent on work not continued (restarts), counted in `train_seconds`."""
    keys, notes = report
    metrics = dict(header)
    try:
        result = trainer.train()
    except Diverged as exc:
        metrics.update(exc.summary(trainer.seconds + discarded_seconds))
        run.write_json(METRICS, metrics)
        trainer.events.final(metrics, [], trainer.step)
        write_report(run, config.name, config.method, metrics, [], keys, notes)
        return metrics
    metrics.update(status="finished", train_steps=result.steps, train_seconds=result.seconds + discarded_seconds)
    if trainer.governor is not None:  # (step, torch threads) at the start and at every change
        metrics["torch_threads"] = trainer.governor.history
    started = time.perf_counter()
    found, pictures = evaluate()
    metrics.update(found, eval_seconds=time.perf_counter() - started, peak_memory_mb=peak_memory_mb())
    run.write_json(METRICS, metrics)
    trainer.events.final(metrics, pictures, trainer.step)
    write_report(run, config.name, config.method, metrics, pictures, keys, notes)
    return metrics
