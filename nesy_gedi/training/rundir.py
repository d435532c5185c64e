"""A run folder: everything a run leaves behind, each file written atomically so nothing is half-written."""

from __future__ import annotations

import json
import pickle
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from nesy_gedi.errors import UserError
from nesy_gedi.files import write_atomic

CONFIG = "config.yaml"
CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.json"
LOG = "train_log.jsonl"
VERSIONS = "versions.json"
QUERIES = "queries.npz"
PACKAGES = (
    "nesy_gedi",
    "torch",
    "torchvision",
    "deepproblog",
    "problog",
    "pysdd",
    "klaycircuits",
    "numpy",
    "scikit-learn",
    "pydantic",
)


class RunDir:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # read-only, no such device, a file in the way, no permission
            raise UserError(
                f"{self.path}: cannot create this folder ({exc.strerror}); choose a folder you can write to"
            ) from None

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def write_atomic(self, name: str, write: Any) -> Path:
        return write_atomic(self.path / name, write)

    def write_text(self, name: str, text: str) -> Path:
        return self.write_atomic(name, lambda tmp: Path(tmp).write_text(text))

    def write_json(self, name: str, data: Any) -> Path:
        return self.write_text(name, json.dumps(data, indent=2, default=str) + "\n")

    def save_torch(self, name: str, data: Any) -> Path:
        return self.write_atomic(name, lambda tmp: torch.save(data, tmp))

    def load_torch(self, name: str) -> Any:
        try:
            return torch.load(self.path / name)  # torch's default, weights_only=True, as any reader would
        except pickle.UnpicklingError:  # a checkpoint from before 2026-12-05 (numpy's RNG state as a tuple)
            return torch.load(self.path / name, weights_only=False)

    def has(self, name: str) -> bool:
        return (self.path / name).is_file()

    def discard_if_unstarted(self) -> None:
        """Remove the folder if it holds only what every run writes first (its config, versions and queries):
        a run stopped by bad input before training leaves no empty folder behind, and nothing is lost."""
        names = {p.name for p in self.path.iterdir()}
        if names <= {CONFIG, VERSIONS, QUERIES}:
            for name in names:
                (self.path / name).unlink()
            self.path.rmdir()

    def append_log(self, rows: list[dict]) -> None:
        """Training-log rows (JSON lines); flushed at each checkpoint, so the log matches the checkpoint."""
        with open(self.path / LOG, "a") as f:
            f.writelines(json.dumps(row) + "\n" for row in rows)

    def truncate_log(self, step: int) -> None:
        """On resume, drop log rows written after the checkpoint the run restarts from."""
        if not self.has(LOG):
            return
        rows = [line for line in (self.path / LOG).read_text().splitlines() if json.loads(line)["step"] <= step]
        self.write_text(LOG, "".join(row + "\n" for row in rows))

    def read_log(self) -> list[dict]:
        if not self.has(LOG):
            return []
        return [json.loads(line) for line in (self.path / LOG).read_text().splitlines()]


def versions() -> dict[str, str]:
    """Package versions and the machine, kept with every run for reproducibility."""
    found = {"python": sys.version.split()[0], "platform": platform.platform(), "machine": platform.machine()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    found["torch_threads"] = str(torch.get_num_threads())
    found["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return found
