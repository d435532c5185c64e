"""TensorBoard event files in every run folder, so `tensorboard --logdir runs/` shows runs side by side.

The training log's rows go in as they are written to `train_log.jsonl` (every loss term, the energies and
the learning rate, under `train/`), the final metrics under `metrics/` (nested keys joined by `/`), and the
pictures a run draws (confusion matrices, SGLD samples) as images. A resumed run drops the events after
the checkpoint it restarts from, as it drops those log rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.tensorboard import SummaryWriter


class EventLog:
    """A run folder's event files, opened at the first write."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.resumed_at: int | None = None
        """the step a resumed run restarts from: later events of the interrupted run are dropped"""
        self._writer: SummaryWriter | None = None

    @property
    def writer(self) -> SummaryWriter:
        if self._writer is None:
            purge = None if self.resumed_at is None else self.resumed_at + 1
            self._writer = SummaryWriter(str(self.folder), purge_step=purge)
        return self._writer

    def rows(self, rows: list[dict]) -> None:
        """Training-log rows: every number but the step counters, at the row's step."""
        for row in rows:
            for key, value in row.items():
                if key not in ("step", "epoch") and _is_number(value):
                    self.writer.add_scalar(f"train/{key}", value, row["step"])
        self.writer.flush()

    def final(self, metrics: dict, pictures: list[str], step: int) -> None:
        """The final metrics and the run's pictures (PNG files in the run folder), at the last step."""
        for key, value in _flatten(metrics):
            self.writer.add_scalar(f"metrics/{key}", value, step)
        for name in pictures:
            image = np.asarray(Image.open(self.folder / name).convert("RGB"))
            self.writer.add_image(Path(name).stem, image, step, dataformats="HWC")
        self.close()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value)


def _flatten(metrics: dict, prefix: str = "") -> Iterator[tuple[str, float]]:
    for key, value in metrics.items():
        if key == "concept_map":  # labels, not measurements
            continue
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}/")
        elif _is_number(value):
            yield f"{prefix}{key}", float(value)
