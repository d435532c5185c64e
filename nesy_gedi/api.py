"""The Python API: what the command line does, callable from a script or a notebook.

```python
import nesy_gedi
task = nesy_gedi.load_task("tasks/mnist_add.yaml", seed=3, train={"iterations": 500})
metrics = task.train()            # a run folder under runs/, the metrics returned
print(metrics["task_accuracy"], metrics["concept_accuracy"])
net = metrics.networks["mnist_net"]  # the trained network (CPU, eval mode); progress=False: no bars
```

Overrides are keyword arguments: a task key's value, or a mapping for a section (`train={...}`), or a
dotted key through `overrides={"train.iterations": 500}`. `ProgramModule` (the program as a torch module)
is the piece for your own training loop.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nesy_gedi.analysis.shortcut_count import ShortcutCount
from nesy_gedi.assembly.config import PretrainConfig, TaskConfig, yaml_text
from nesy_gedi.assembly.task import load_task as checked_config
from nesy_gedi.assembly.task import task_shortcuts
from nesy_gedi.commands.pipeline import Pretrainings
from nesy_gedi.commands.pretrain import pretrain
from nesy_gedi.commands.run import run_task
from nesy_gedi.data.mnist import cache_folder
from nesy_gedi.errors import UserError
from nesy_gedi.files import check_can_create
from nesy_gedi.progress import shown
from nesy_gedi.training.checkpoint import load_exported
from nesy_gedi.training.rundir import CHECKPOINT, CONFIG, METRICS, RunDir


def _dotted(values: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Keyword overrides as the `--set` items they stand for (each value as YAML text)."""
    found = {}
    for key, value in values.items():
        if isinstance(value, dict) and value:
            found.update(_dotted(value, f"{prefix}{key}."))
        else:
            found[f"{prefix}{key}"] = yaml_text(value)
    return found


def _check_new_folder(folder: Path, command: str) -> None:
    """A new run goes into a folder of its own: not over a file, nor into another run."""
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--out {folder}: a file of that name exists; name a folder")
    check_can_create(folder)
    if (folder / METRICS).is_file():
        raise UserError(f"--out {folder}: already holds a finished run ({METRICS}); name another folder")
    if (folder / CHECKPOINT).is_file():
        raise UserError(
            f"--out {folder}: holds an interrupted run; continue it with `nesy-gedi {command} --resume {folder}`, "
            "or name another folder"
        )


class Trained(dict):
    """A run's metrics (the dict `metrics.json` holds) and its trained networks by name (`.networks`: a
    program task's networks; a pretraining run's `network`), on the CPU in eval mode."""

    def __init__(self, metrics: dict, networks: dict[str, torch.nn.Module]) -> None:
        super().__init__(metrics)
        self.networks = networks


class Task:
    """A loaded, checked task: train it (program task or pretraining), or count its shortcuts."""

    def __init__(self, config: TaskConfig | PretrainConfig, folder: Path | None = None) -> None:
        self.config = config
        self.folder = folder
        """the run folder of the last `train` (or the one resumed)"""

    @property
    def is_pretraining(self) -> bool:
        return isinstance(self.config, PretrainConfig)

    def default_folder(self) -> Path:
        c = self.config
        return Path("runs") / c.name / f"{c.method}-seed{c.seed}-{time.strftime('%Y%m%d-%H%M%S')}"

    def train(
        self, out: str | Path | None = None, command: str = "nesy_gedi Python API", progress: bool = True
    ) -> Trained:
        """Train and evaluate in `out` (default: runs/<task>/<method>-seed<N>-<time>); without `out`, a task
        that already has a run folder (from `resume`, or an earlier `train`) continues it. Networks with
        `pretrain:` are pretrained first (or their cached run reused). The run's metrics (`"status":
        "diverged"` when it was stopped) with the trained networks as `.networks`. `progress=False` shows no
        bars. The caller's torch threads and random states are as they were afterwards."""
        threads, states = torch.get_num_threads(), (torch.get_rng_state(), np.random.get_state(), random.getstate())
        try:
            with shown(progress):
                metrics = self._train(out, command)
            exported = sorted(self.folder.glob("network*.pt"))  # building them draws from the RNG: restored below
            networks = {path.stem.removeprefix("network_"): load_exported(path) for path in exported}
        finally:
            torch.set_num_threads(threads)
            torch.set_rng_state(states[0])
            np.random.set_state(states[1])
            random.setstate(states[2])
        return Trained(metrics, networks)

    def _train(self, out: str | Path | None, command: str) -> dict:
        resuming = self.folder is not None and out is None and (self.folder / CONFIG).is_file()
        folder = self.folder if resuming else Path(out) if out else self.default_folder()
        if not resuming:
            _check_new_folder(folder, "run" if isinstance(self.config, TaskConfig) else "pretrain")
        run = RunDir(folder)
        self.folder = folder
        try:
            if self.is_pretraining:
                return pretrain(self.config, run, command, resume=resuming)
            pretrainings = Pretrainings(self.config, cache_folder(self.config.data.cache))
            return run_task(self.config, run, command, resuming, pretrainings)
        except UserError:
            if not resuming:
                run.discard_if_unstarted()
            raise

    def shortcuts(self) -> tuple[list[tuple], ShortcutCount]:
        """The training combinations of true concepts and the task's deterministic shortcuts, counted."""
        if self.is_pretraining:
            raise UserError("shortcuts: a pretraining task has no program")
        return task_shortcuts(self.config)


def load_task(
    path: str | Path,
    overrides: dict[str, Any] | None = None,
    kind: type[TaskConfig | PretrainConfig] | None = None,
    sets: dict[str, str] | None = None,
    **values: Any,
) -> Task:
    """A task file with overrides (keyword values, dotted `overrides`, and `sets`: dotted keys with YAML text
    as `--set` gives them), validated and checked."""
    items = {**_dotted(values), **_dotted(overrides or {}), **(sets or {})}
    return Task(checked_config(path, items, kind))


def resume(folder: str | Path, kind: type[TaskConfig | PretrainConfig] | None = None) -> Task:
    """An interrupted run folder, to continue with `train()`."""
    folder = Path(folder)
    if not (folder / CONFIG).is_file():
        raise UserError(f"--resume {folder}: not a run folder (no {CONFIG})")
    if (folder / METRICS).is_file() and json.loads((folder / METRICS).read_text()).get("status") == "finished":
        raise UserError(
            f"--resume {folder}: this run has finished; its results are in {folder / METRICS} and report.md"
        )
    return Task(checked_config(folder / CONFIG, kind=kind), folder)
