"""The label-budget curve: grounding and Acc(C) per network against labelled images per concept.

When unsupervised grounding cannot work, the question a researcher asks is how few labelled examples per
concept it takes, and which method needs fewest. `nesy-gedi compare --labels 0,1,5,25` runs every method
at every budget; this module turns those runs into one table (`label_budget.csv`, the report's section)
and one picture (`label_budget.png`), with the labels each point spent.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

from nesy_gedi.analysis.report import save_figure
from nesy_gedi.training.rundir import RunDir

USES = ("concept", "naming")
"""what the labelled images do: train the networks (`concept_labels`) or choose the clusters' naming
(`naming_labels`)"""


@dataclass(frozen=True)
class Point:
    """The runs of one method at one budget: k labelled images per concept used as `use`."""

    method: str
    use: str
    per_concept: int
    runs: list[dict]

    @property
    def finished(self) -> list[dict]:
        return [r for r in self.runs if r.get("status") == "finished"]

    def grounding_rate(self) -> float | None:
        done = self.finished
        return sum(r.get("grounding", "").startswith("grounded") for r in done) / len(done) if done else None

    def concept_accuracy(self) -> dict[str, list[float]]:
        """Per network, each finished run's Acc(C) on the ID test images."""
        found: dict[str, list[float]] = {}
        for r in self.finished:
            for net, metrics in r["id"]["concepts"].items():
                found.setdefault(net, []).append(metrics["concept_accuracy"])
        return found

    def labels_spent(self) -> list[int]:
        """Labelled training images each finished run used, for training and for naming."""
        return [
            r.get("concept_labels_used", 0) + sum(r.get("naming", {}).get("labelled_images", {}).values())
            for r in self.finished
        ]


def fewest(points: list[Point], target: float) -> dict[tuple[str, str], int | None]:
    """Per curve (method, use), the fewest labels per concept whose mean Acc(C) reaches `target` for every
    network (None: no budget did)."""
    best: dict[tuple[str, str], int | None] = {}
    for key, line in _curves(points).items():
        reached = [p.per_concept for p in line if _reaches(p, target)]
        best[key] = min(reached) if reached else None
    return best


def _reaches(point: Point, target: float) -> bool:
    accuracy = point.concept_accuracy()
    return bool(accuracy) and all(np.mean(a) >= target for a in accuracy.values())


def _curves(points: list[Point]) -> dict[tuple[str, str], list[Point]]:
    """Per (method, use), its points by budget; the unlabelled point starts every curve its method has labelled
    points on (a use refused for the method, as naming labels for `dpl`, gets no curve of one point)."""
    curves: dict[tuple[str, str], list[Point]] = {}
    for p in points:
        labelled = {q.use for q in points if q.method == p.method and q.per_concept}
        for use in [p.use] if p.per_concept else sorted(labelled or {p.use}):
            curves.setdefault((p.method, use), []).append(p)
    return {key: sorted(line, key=lambda p: p.per_concept) for key, line in curves.items()}


def _cell(values: list[float]) -> str:
    return "–" if not values else f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def budget_rows(points: list[Point]) -> tuple[list[str], list[list[str]]]:
    """The table's header and one row per point: the curve, the budget, the labels spent (median and range
    over runs), finished runs, grounding rate, Acc(Y) and Acc(C) per network."""
    networks = sorted({net for p in points for net in p.concept_accuracy()})
    header = ["method", "labels", "per concept", "labelled images used", "finished", "grounding rate", "Acc(Y)"]
    header += [f"Acc(C) {net}" for net in networks]
    rows = []
    for p in sorted(points, key=lambda p: (p.method, p.use, p.per_concept)):
        spent = p.labels_spent()
        used = "–" if not spent else (f"{min(spent)}" if min(spent) == max(spent) else f"{min(spent)}–{max(spent)}")
        rate = p.grounding_rate()
        accuracy = p.concept_accuracy()
        rows.append(
            [
                p.method,
                p.use if p.per_concept else "none",
                str(p.per_concept),
                used,
                f"{len(p.finished)}/{len(p.runs)}",
                "–" if rate is None else f"{rate:.2f}",
                _cell([r["task_accuracy"] for r in p.finished]),
                *(_cell(accuracy.get(net, [])) for net in networks),
            ]
        )
    return header, rows


def budget_csv(points: list[Point]) -> str:
    header, rows = budget_rows(points)
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(header)
    writer.writerows(rows)
    return text.getvalue()


def plot_budget(run: RunDir, points: list[Point]) -> str:
    """`label_budget.png`: grounding rate and each network's mean Acc(C) against labels per concept, one line
    per method and use of the labels (the unlabelled point starts every line of its method)."""
    networks = sorted({net for p in points for net in p.concept_accuracy()})
    fig = Figure(figsize=(4.2 * (1 + len(networks)), 3.8))
    axes = fig.subplots(1, 1 + len(networks), squeeze=False)[0]
    for (method, use), line in sorted(_curves(points).items()):
        ks = [p.per_concept for p in line]
        name = f"{method} + {use} labels"
        axes[0].plot(ks, [p.grounding_rate() for p in line], marker="o", label=name)
        for ax, net in zip(axes[1:], networks, strict=True):
            accuracy = [p.concept_accuracy().get(net, []) for p in line]
            mean = [np.mean(a) if a else np.nan for a in accuracy]
            spread = [np.std(a) if a else 0.0 for a in accuracy]
            ax.errorbar(ks, mean, yerr=spread, marker="o", capsize=3, label=name)
    axes[0].set_ylabel("grounding rate (finished runs)")
    for ax, net in zip(axes[1:], networks, strict=True):
        ax.set_ylabel(f"Acc(C) {net}, ID test images (mean ± sd)")
    budgets = sorted({p.per_concept for p in points})
    for ax in axes:
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xticks(budgets, [str(k) for k in budgets])
        ax.set_xlabel("labelled training images per concept")
        ax.set_ylim(-0.02, 1.02)
    axes[0].legend(fontsize=7)
    return save_figure(run, fig, "label_budget.png")
