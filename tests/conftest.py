"""Shared fixtures: real MNIST from the cache (`make test` fetches it first) and a tiny task."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from nesy_gedi.data.images import ImageData
from nesy_gedi.data.mnist import load_mnist

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def mnist() -> ImageData:
    return load_mnist()


@pytest.fixture
def task_file(tmp_path: Path):
    """Write a task YAML next to a copy of the addition program; returns a function taking edits."""

    def write(text: str | None = None, program: str | None = None, **changes) -> Path:
        (tmp_path / "prog.pl").write_text(program or (ROOT / "programs" / "mnist_addition.pl").read_text())
        if text is None:
            data = yaml.safe_load((ROOT / "tasks" / "mnist_add.yaml").read_text())
            data["program"] = "prog.pl"
            data.update(changes)
            text = yaml.safe_dump(data, sort_keys=False)
        path = tmp_path / "task.yaml"
        path.write_text(text)
        return path

    return write


def interrupt_training_at(monkeypatch, step: int, run) -> None:
    """Run `run()` with a Ctrl-C arriving before training step `step`, expecting `Interrupted`; then undo."""
    from nesy_gedi.training.loop import Interrupted, Trainer

    original = Trainer._train_step

    def interrupting(self, rows):
        if self.step == step:
            raise KeyboardInterrupt
        return original(self, rows)

    monkeypatch.setattr(Trainer, "_train_step", interrupting)
    with pytest.raises(Interrupted):
        run()
    monkeypatch.setattr(Trainer, "_train_step", original)


def comparable(metrics: dict) -> dict:
    """Metrics without what varies between identical runs (times, memory, the command line)."""
    varying = ("command", "torch_threads", "peak_memory_mb")
    return {k: v for k, v in metrics.items() if not k.endswith("seconds") and k not in varying}


def without_start_seconds(metrics: dict) -> dict:
    """`comparable` metrics of a run with restarts: each start's seconds vary too."""
    starts = [{k: v for k, v in start.items() if k != "seconds"} for start in metrics["restarts"]["starts"]]
    return {**comparable(metrics), "restarts": {**metrics["restarts"], "starts": starts}}
