"""What a person reads after a run: the confusion-matrix picture, `report.md` and the summary table."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay  # noqa: E402

from nesy_gedi.rundir import RunDir  # noqa: E402

SUMMARY_KEYS = ("status", "task_accuracy", "concept_accuracy", "nmi", "train_steps", "train_seconds", "eval_seconds")


def plot_confusion(run: RunDir, name: str, confusion: list[list[int]], labels: list[str]) -> str:
    """PNG of a concept confusion matrix (rows: true concept, columns: the network's prediction)."""
    fig, ax = plt.subplots(figsize=(6, 5.5))
    ConfusionMatrixDisplay(np.array(confusion), display_labels=labels).plot(ax=ax, colorbar=False, values_format="d")
    ax.set_title(f"{name}: concepts on the MNIST test images")
    ax.set_xlabel("predicted concept (network alone)")
    ax.set_ylabel("true digit")
    fig.tight_layout()
    filename = f"confusion_{name}.png"
    run.write_atomic(filename, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)
    return filename


def _fmt(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def summary_table(metrics: dict) -> str:
    rows = [(key, _fmt(metrics[key])) for key in SUMMARY_KEYS if key in metrics]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def write_report(run: RunDir, task: str, method: str, metrics: dict, pictures: list[str]) -> None:
    lines = [
        f"# {task} — {method}",
        "",
        f"Run folder: `{run.path}`; command: `{metrics.get('command', '')}`",
        "",
        "| metric | value |",
        "|---|---|",
        *(f"| {key} | {_fmt(metrics[key])} |" for key in SUMMARY_KEYS if key in metrics),
        "",
        "`task_accuracy`: most probable answer of the program equals the label, on the test queries. "
        "`concept_accuracy`: the network alone, on the 10,000 MNIST test images, prediction index = true digit "
        "(no relabelling). `nmi`: normalised mutual information of those predictions and the true digits.",
        "",
        *(f"![{p}]({p})" for p in pictures),
        "",
        "Files: `config.yaml` (resolved task), `versions.json`, `metrics.json`, `checkpoint.pt`, "
        "`train_log.jsonl` (one row per step), `queries.npz` (image indices of every query).",
        "",
    ]
    run.write_text("report.md", "\n".join(lines))
