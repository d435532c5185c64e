"""What every command does around training, the same for `run` and `pretrain`: device and threads, the
run folder's config and versions, then train (or stop a diverging run), evaluate, `metrics.json` and
`report.md`. The commands supply what differs: the trainer, the metrics header and the evaluation."""

from __future__ import annotations

import json
import logging
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from nesy_gedi.analysis.report import write_report
from nesy_gedi.assembly.config import PretrainConfig, TaskConfig, TrainSpec, dump_config
from nesy_gedi.data.mnist import cache_folder
from nesy_gedi.errors import UserError
from nesy_gedi.training.loop import Diverged, Trainer
from nesy_gedi.training.rundir import CHECKPOINT, CONFIG, LOG, METRICS, VERSIONS, RunDir, versions
from nesy_gedi.training.threads import ThreadGovernor

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


RESTARTS = "restarts.json"
"""the starts tried (`train.restarts`) and the one continued"""
RESTART_WINDOW = 50
"""steps at the end of a start's trial whose mean loss ranks it"""

MakeTrainer = Callable[[int, RunDir], Trainer]
"""a trainer whose initialisation, batch order and sampling are drawn from this seed, writing to this folder"""


def start_seeds(seed: int, restarts: int) -> list[int]:
    """The run's own seed first, so that `restarts: 1` is the plain run; the others derived from it."""
    derived = (np.random.SeedSequence([seed, i]).generate_state(1)[0] for i in range(1, restarts))
    return [seed, *map(int, derived)]


def choose_start(spec: TrainSpec, seed: int, make_trainer: MakeTrainer, run: RunDir, resume: bool) -> dict:
    """Train each start seed's first `restart_steps` steps (in `restarts/<i>/`) and continue the one whose
    loss over its last RESTART_WINDOW steps is lowest: a choice by the training loss alone, never by labels,
    as IIC keeps its lowest-loss head. A run can settle in a poor optimum early; its loss is then often,
    not always, already higher (docs/results.md). The chosen start's checkpoint and log become the run's,
    so the run is exactly that seed's run from there on."""
    trials = []
    folders = [RunDir(run / "restarts" / str(i)) for i in range(spec.restarts)]
    for i, (start, folder) in enumerate(zip(start_seeds(seed, spec.restarts), folders, strict=True)):
        trainer = make_trainer(start, folder)
        if resume and folder.has(CHECKPOINT):
            trainer.restore()
        elif folder.has(LOG):
            (folder / LOG).unlink()
        log.info("start %d of %d (seed %d)", i + 1, spec.restarts, start)
        try:
            trainer.train(until=spec.restart_steps)
            losses = [row["loss"] for row in folder.read_log()][-RESTART_WINDOW:]
            trials.append({"seed": start, "loss": float(np.mean(losses)), "seconds": trainer.seconds})
        except Diverged as exc:
            trials.append({"seed": start, "loss": None, "divergence": exc.reason, "seconds": trainer.seconds})
    finished = [i for i, trial in enumerate(trials) if trial["loss"] is not None]
    chosen = min(finished, key=lambda i: trials[i]["loss"]) if finished else 0
    restarts = {"starts": trials, "chosen": chosen, "chosen_seed": trials[chosen]["seed"]}
    losses = ", ".join(f"{t['loss']:.4f}" if t["loss"] is not None else "diverged" for t in trials)
    log.info("starts' loss over their last steps: %s; continuing start %d", losses, chosen + 1)
    run.write_json(RESTARTS, restarts)
    run.write_text(LOG, (folders[chosen] / LOG).read_text())
    os.replace(folders[chosen] / CHECKPOINT, run / CHECKPOINT)
    for folder in folders:
        (folder / CHECKPOINT).unlink(missing_ok=True)  # large (networks, optimisers, a sampler's buffer)
    return restarts


def started_trainer(
    spec: TrainSpec, seed: int, make_trainer: MakeTrainer, run: RunDir, resume: bool
) -> tuple[Trainer, dict | None, float]:
    """The run's trainer, at its first step or at its checkpoint when resuming; with `train.restarts`, the
    chosen start's (trained to `restart_steps` first). Also what the metrics record of the starts and the
    seconds spent on the ones not continued (part of the run's cost)."""
    if resume and run.has(CHECKPOINT):
        restarts = json.loads((run / RESTARTS).read_text()) if run.has(RESTARTS) else None
    elif spec.restarts > 1:
        restarts = choose_start(spec, seed, make_trainer, run, resume)
    else:
        restarts = None
    trainer = make_trainer(restarts["chosen_seed"] if restarts else seed, run)
    if restarts and not resume:
        trainer.restore()
        log.info("continuing the chosen start from step %d of %d", trainer.step, trainer.total_steps)
    else:
        resume_or_start(trainer, resume)
    starts = restarts["starts"] if restarts else []
    discarded = sum(start["seconds"] for i, start in enumerate(starts) if i != restarts["chosen"])
    return trainer, restarts, float(discarded)


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
