"""One markdown row per pretraining run folder: clusters, OOD scores, sample quality, energies, time.

Run: .venv/bin/python bench/run_table.py RUN_FOLDER...  (the folders of `nesy-gedi pretrain --out ...`)
The last logged energy gap and data energy are the mean over the last 50 steps of `train_log.jsonl`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

COLUMNS = ("nmi", "cluster_accuracy", "ood_auroc_fashion", "ood_auroc_noise", "samples_confident")


def row(folder: Path) -> str:
    metrics = json.loads((folder / "metrics.json").read_text())
    rows = [json.loads(line) for line in (folder / "train_log.jsonl").read_text().splitlines()]
    log = [r for r in rows if "energy_gap" in r][-50:]  # with `gen_every`, only some steps have the term
    gap = np.mean([r["energy_gap"] for r in log]) if log else float("nan")
    e_data = np.mean([r["energy_data"] for r in log]) if log else float("nan")
    cells = [f"{metrics[k]:.3f}" if k in metrics else "–" for k in COLUMNS]
    classes = str(metrics.get("samples_classes_present", "–"))
    status = metrics["status"] + (f" at {metrics['diverged_at_step']}" if "diverged_at_step" in metrics else "")
    return (
        f"| {folder.name} | {status} | {' | '.join(cells)} | {classes} | {gap:.2f} | {e_data:.2f} | "
        f"{metrics['train_seconds']:.0f} |"
    )


if __name__ == "__main__":
    print(
        "| run | status | NMI | cluster acc. | OOD AUROC Fashion | OOD AUROC noise | samples recognised | "
        "classes | energy gap (end) | E(data) (end) | train s |"
    )
    print("|---" * 11 + "|")
    for name in sys.argv[1:]:
        if (Path(name) / "metrics.json").is_file():
            print(row(Path(name)))
