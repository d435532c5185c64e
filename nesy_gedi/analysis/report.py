"""What a person reads after a run: the confusion-matrix picture, `report.md` and the summary table.

Figures are drawn on `matplotlib.figure.Figure` directly, not through pyplot, so that the library never
chooses a backend for the program that imports it."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from matplotlib.figure import Figure
from sklearn.metrics import ConfusionMatrixDisplay
from torchvision.utils import make_grid

from nesy_gedi.training.rundir import RunDir

SUMMARY_KEYS = (
    "status",
    "task_accuracy",
    "task_accuracy_ceiling",
    "concept_accuracy",
    "concept_accuracy_per_network",
    "nmi",
    "grounding",
    "concept_labels_used",
    "naming_explained",
    "naming_check",
    "pretraining_attempts",
    "learned_probabilities",
    "train_labels_disagreeing",
    "train_label_noise",
    "ood_task_accuracy",
    "ood_concept_accuracy",
    "train_steps",
    "train_seconds",
    "compile_seconds",
    "eval_seconds",
    "peak_memory_mb",
)
PRETRAIN_KEYS = (
    "status",
    "nmi",
    "cluster_accuracy",
    "ood_auroc_fashion",
    "ood_auroc_mnist",
    "ood_auroc_noise",
    "samples_confident",
    "samples_classes_present",
    "train_steps",
    "train_seconds",
    "eval_seconds",
)
QUERY_NOTES = (
    "`task_accuracy` (Acc(Y), no masking): most probable answer of the program equals the label, on the test "
    "queries (`task_accuracy_ceiling`, for sampled or file labels: the same for perfect concepts). "
    "`concept_accuracy` (Acc(C)): the network alone, on every image of the test queries, prediction "
    "index = true concept (no relabelling; the mean over networks, each network's own in "
    "`concept_accuracy_per_network` when there are several). `nmi`: normalised mutual information of those "
    "predictions and the true concepts. `grounding`: grounded (Acc(C) at least eval.grounded_at; `grounded "
    "with labels` when labelled images chose the naming, `naming_labels`, or trained the networks, "
    "`concept_labels`), shortcut (else Acc(Y) at least eval.task_at), failed. `concept_labels_used`: labelled "
    "training images that trained the networks (per network and concept in `metrics.json` under "
    "`concept_labels`; their indices in `queries.npz`). `naming_explained`: share of the training queries "
    "the program answers under the naming of pretrained clusters; `naming_check`: whether that share, "
    "against what the labels allow and per image, reaches `networks.<name>.naming_threshold` (if not, the "
    "naming is not to be trusted); "
    "`pretraining_attempts`: pretrainings tried for it (`pretrain.attempts`). `learned_probabilities`: the "
    "program's `t(_)` probabilities at the end of training (`t/<fact>` in `train_log.jsonl` over training). "
    "`train_labels_disagreeing` / `train_label_noise` (sampled or file labels): how many training labels, and "
    "what share, differ from the program's most probable answer on the images' true concepts. "
    "`ood_*`: the same on the out-of-distribution queries. `metrics.json` has every concept metric per split "
    "and network under `id` / `ood`. `compile_seconds` (compiled engines): grounding and compiling the "
    "circuits in use, part of `train_seconds` unless read from the disk cache. "
    "`peak_memory_mb`: the run's peak resident memory.",
    "Files: `config.yaml` (resolved task), `versions.json`, `metrics.json`, `checkpoint.pt`, "
    "`train_log.jsonl` (one row per step), `queries.npz` (image indices of every query, and of the "
    "`concept_labels` images).",
)
PRETRAIN_NOTES = (
    "`nmi`: normalised mutual information of the argmax cluster and the true label on the held-out inputs. "
    "`cluster_accuracy`: accuracy after the best one-to-one matching of clusters to labels (Hungarian). "
    "`ood_auroc_*`: AUROC of the score -E(x) = logsumexp of the cluster logits, the source's test images "
    "(in-distribution) against the OOD source's test images (Fashion-MNIST for MNIST) or uniform noise. "
    "`samples_confident`: share of the SGLD buffer that a supervised judge (a classifier of the source's "
    "labelled training images, never used in training; `eval.judge_arch`) classifies with probability at "
    "least `eval.sample_confidence`; `samples_classes_present`: how many classes occur among those "
    "(`samples_class_shares` has each class's share); `energy_samples` / `energy_test`: mean energy of the "
    "buffer and of the test inputs.",
    "Files: `config.yaml` (resolved task), `versions.json`, `metrics.json`, `checkpoint.pt` (its network is "
    "what `networks.<name>.init` loads), `train_log.jsonl` (one row per step).",
)


QUERY_REPORT = (SUMMARY_KEYS, QUERY_NOTES)
PRETRAIN_REPORT = (PRETRAIN_KEYS, PRETRAIN_NOTES)


def save_figure(run: RunDir, fig: Figure, filename: str, dpi: int = 110) -> str:
    """The figure as a PNG in the run folder, written atomically; its file name."""
    fig.tight_layout()
    run.write_atomic(filename, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))
    return filename


def plot_confusion(run: RunDir, name: str, confusion: list[list[int]], labels: list[str]) -> str:
    """PNG of a concept confusion matrix (rows: true concept, columns: the network's prediction)."""
    fig = Figure(figsize=(6, 5.5))
    ax = fig.subplots()
    ConfusionMatrixDisplay(np.array(confusion), display_labels=labels).plot(ax=ax, colorbar=False, values_format="d")
    if max(map(len, labels)) > 2:  # names, not digits: turned so that they do not overlap
        ax.tick_params(axis="x", labelrotation=45)
    ax.set_title(f"{name}: concepts on the test images it reads")
    ax.set_xlabel("predicted concept (network alone)")
    ax.set_ylabel("true concept")
    return save_figure(run, fig, f"confusion_{name}.png")


def _fmt(value: object) -> str:
    if isinstance(value, dict):  # named numbers, e.g. the learned probabilities
        return ", ".join(f"{k} {_fmt(v)}" for k, v in value.items())
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def summary_table(metrics: dict, keys: tuple[str, ...] = SUMMARY_KEYS) -> str:
    rows = [(key, _fmt(metrics[key])) for key in keys if key in metrics]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def warnings(metrics: dict) -> list[str]:
    """What the reader must see before any number: a naming that was not to be trusted."""
    if metrics.get("naming_check_details", {}).get("passed", True):
        return []
    return [
        f"**Warning: the pretrained clusters were too impure to trust their naming.** {metrics['naming_check']}",
        "",
    ]


def write_report(
    run: RunDir,
    task: str,
    method: str,
    metrics: dict,
    pictures: list[str],
    keys: tuple[str, ...] = SUMMARY_KEYS,
    notes: tuple[str, ...] = QUERY_NOTES,
) -> None:
    lines = [
        f"# {task} — {method}",
        "",
        f"Run folder: `{run.path}`; command: `{metrics.get('command', '')}`",
        "",
        *warnings(metrics),
        "| metric | value |",
        "|---|---|",
        *(f"| {key} | {_fmt(metrics[key])} |" for key in keys if key in metrics),
        "",
        notes[0],
        "",
        *(f"![{p}]({p})" for p in pictures),
        "",
        *notes[1:],
        "",
    ]
    run.write_text("report.md", "\n".join(lines))


def plot_samples(run: RunDir, samples: torch.Tensor, seed: int, name: str = "samples.png") -> str:
    """Grid of 64 model samples picked by the seed (SGLD chains from the replay buffer), inputs in [-1, 1]."""
    pick = torch.randperm(len(samples), generator=torch.Generator().manual_seed(seed))[:64]
    shown = samples[pick.to(samples.device)].detach().cpu().clamp(-1, 1)
    grid = make_grid(shown, nrow=8, normalize=True, value_range=(-1, 1), pad_value=1)
    fig = Figure(figsize=(6, 6))
    ax = fig.subplots()
    ax.imshow(grid.permute(1, 2, 0).numpy())
    ax.set_axis_off()
    ax.set_title(f"{len(shown)} SGLD samples from the replay buffer")
    return save_figure(run, fig, name)


def plot_regions(
    run: RunDir,
    predict: Callable[[torch.Tensor], np.ndarray],
    points: torch.Tensor,
    labels: np.ndarray,
    low: torch.Tensor,
    high: torch.Tensor,
    samples: torch.Tensor | None,
) -> str:
    """2-D data: the cluster of every point of the domain as coloured regions, test points and model samples."""
    xs, ys = (torch.linspace(float(low[i]), float(high[i]), 300) for i in range(2))
    gx, gy = torch.meshgrid(xs, ys, indexing="xy")
    regions = predict(torch.stack([gx.ravel(), gy.ravel()], -1)).reshape(gx.shape)
    fig = Figure(figsize=(6, 5.5))
    ax = fig.subplots()
    ax.contourf(gx.numpy(), gy.numpy(), regions, alpha=0.3, cmap="coolwarm")
    pts = points.cpu().numpy()
    ax.scatter(
        pts[:, 0], pts[:, 1], c=labels, s=4, cmap="coolwarm", edgecolors="none", label="test points (true label)"
    )
    if samples is not None:
        s = samples[:1000].detach().cpu().numpy()
        ax.scatter(s[:, 0], s[:, 1], c="k", s=2, alpha=0.4, label="SGLD samples")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title("cluster regions (colour) and held-out points")
    return save_figure(run, fig, "clusters.png")


def plot_comparison(run: RunDir, grouped: dict[str, list[dict]]) -> None:
    """`confusions.png`: every run's row-normalised ID concept confusion matrix (rows: methods, columns:
    seeds); `accuracies.png`: Acc(C) against Acc(Y), one point per finished run."""
    done = {m: [r for r in runs if r.get("status") == "finished"] for m, runs in grouped.items()}
    width = max([len(r) for r in done.values()] + [1])
    fig = Figure(figsize=(max(4.0, 1.6 * width), 1.7 * len(done) + 0.4))
    axes = fig.subplots(len(done), width, squeeze=False)
    for row, (method, runs) in enumerate(done.items()):
        for col in range(width):
            ax = axes[row][col]
            ax.set_xticks([])
            ax.set_yticks([])
            if col < len(runs):
                matrix = np.array(next(iter(runs[col]["id"]["concepts"].values()))["confusion"], dtype=float)
                ax.imshow(matrix / np.maximum(matrix.sum(1, keepdims=True), 1), cmap="Blues", vmin=0, vmax=1)
                ax.set_title(f"seed {runs[col]['seed']}: {runs[col].get('grounding', '')}", fontsize=7)
            if col == 0:
                ax.set_ylabel(method, fontsize=8)
    fig.suptitle("ID concept confusion\n(rows: true, columns: predicted)", fontsize=8)
    save_figure(run, fig, "confusions.png", dpi=100)

    fig = Figure(figsize=(5.5, 4.5))
    ax = fig.subplots()
    for method, runs in done.items():
        ax.scatter([r["task_accuracy"] for r in runs], [r["concept_accuracy"] for r in runs], label=method, alpha=0.7)
    ax.set_xlabel("Acc(Y), ID test queries")
    ax.set_ylabel("Acc(C), ID test images")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=8)
    ax.set_title("one point per run")
    save_figure(run, fig, "accuracies.png")
