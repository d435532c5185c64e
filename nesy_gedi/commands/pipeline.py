"""Pretraining as part of a method: a network with `pretrain:` is pretrained with the run's own seed before
the run, so a rate over seeds includes the pretraining's randomness and cost.

A pretraining run is cached by content under `<cache>/pretraining/`: its resolved task (objective, seed,
architecture, clusters = the network's domain size, every setting but the device and torch threads, which it
takes from the run) and the code's version (a hash of the package's source) name its folder. Every task
and method asking for the same one reuses it; an interrupted one resumes; processes asking at once take
turns through a file lock, so it is trained once.

When the program cannot name a pretraining's clusters well enough (naming_check.py), the run asks for
another attempt: the same pretraining from a seed derived from the run's (`Pretrainings`).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
from pathlib import Path

from nesy_gedi.assembly.config import PretrainConfig, TaskConfig, dump_config
from nesy_gedi.assembly.task import load_task, task_logic
from nesy_gedi.commands.pretrain import pretrain
from nesy_gedi.commands.runner import start_seeds
from nesy_gedi.errors import UserError
from nesy_gedi.training.rundir import CHECKPOINT, CONFIG, METRICS, RunDir

PACKAGE = Path(__file__).resolve().parents[1]
"""the nesy_gedi package: every source file of it, not only the commands, names a pretraining's code"""


def code_version() -> str:
    """A hash of every source file of the package: a pretraining run is reused only by the same code."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        digest.update(str(path.relative_to(PACKAGE)).encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def pretraining_config(config: TaskConfig, network: str, clusters: int, seed: int) -> PretrainConfig:
    """The network's pretraining task with `seed` (the run's, or a later attempt's), the network's
    architecture and domain size, run where and how the run is (its device and torch threads, unless the
    pretraining's `set` says)."""
    spec = config.networks[network]
    sets = {"device": config.device}
    if config.train.threads is not None:
        sets["train.threads"] = str(config.train.threads)
    sets.update(spec.pretrain.overrides())
    sets.update({"seed": str(seed), "network.arch": spec.arch, "network.clusters": str(clusters)})
    return load_task(spec.pretrain.task, sets, PretrainConfig)


def cached_pretraining(config: PretrainConfig, cache: Path) -> tuple[Path, dict, bool]:
    """The folder of this pretraining (trained now, resumed, or reused), its metrics, and whether it was
    reused as it was."""
    # where and with how many threads it runs is not what it trains: runs of either setting share it
    content = config.model_copy(update={"device": "auto", "train": config.train.model_copy(update={"threads": None})})
    key = hashlib.sha256(f"{code_version()}\n{dump_config(content)}".encode()).hexdigest()[:16]
    folder = cache / "pretraining" / f"{config.name}-{config.method}-seed{config.seed}-{key}"
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f"{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process pretraining the same: wait, then reuse its run
        if (folder / METRICS).is_file():
            return folder, json.loads((folder / METRICS).read_text()), True
        resume = (folder / CONFIG).is_file() and (folder / CHECKPOINT).is_file()
        command = f"pretraining of a pipeline, cached as {folder.name}"
        return folder, pretrain(config, RunDir(folder), command, resume), False


class Pretrainings:
    """A run's pretrainings, attempt by attempt: attempt 0 pretrains every network with `pretrain:` with the
    run's seed, attempt i with the i-th seed derived from it (as `train.restarts` derives its starts), up to
    the smallest `pretrain.attempts` of those networks. Each is cached like any pretraining, so a rerun or a
    resumed run replays the same attempts without training them again."""

    def __init__(self, config: TaskConfig, cache: Path) -> None:
        self.config, self.cache = config, cache
        self.wanted = [name for name, spec in config.networks.items() if spec.pretrain is not None]
        self.sizes = task_logic(config)[2] if self.wanted else {}
        budget = min((config.networks[n].pretrain.attempts for n in self.wanted), default=0)
        self.seeds = start_seeds(config.seed, budget)

    def attempt(self, i: int) -> tuple[dict[str, Path], dict] | None:
        """Attempt i's pretraining folders and what a run's metrics record of them (objective, folder, seed,
        training seconds, reused, cluster scores); None past the budget or for a run without `pretrain:`."""
        if i >= len(self.seeds):
            return None
        folders, record = {}, {}
        for name in self.wanted:
            pre = pretraining_config(self.config, name, self.sizes[name], self.seeds[i])
            folder, metrics, reused = cached_pretraining(pre, self.cache)
            if metrics.get("status") != "finished":
                why = metrics.get("divergence", metrics.get("status"))
                raise UserError(f"networks.{name}.pretrain: the pretraining stopped ({why}); its run folder: {folder}")
            folders[name] = folder
            record[name] = {
                "method": pre.method,
                "folder": str(folder),
                "seed": pre.seed,
                "train_seconds": metrics["train_seconds"],
                "reused": reused,
                **{k: metrics[k] for k in ("nmi", "cluster_accuracy") if k in metrics},
            }
        return folders, record
