"""Whether named clusters can be trusted, before any training step.

A naming (naming.py) is the permutation of pretrained clusters under which the program answers the most
training queries; it needs no concept label. With clean clusters the intended naming explains every query
the labels allow: all of them for labels computed by the program, fewer for labels drawn from its own
distribution (`data.labels: sampled`) or read from files. With impure clusters it explains fewer, and on a
restricted task a naming that explains too few can be a shortcut (docs/results.md): the query loss then
trains on a wrong start, silently. So the share explained, against what the labels allow, decides whether
the pipeline trusts the naming, pretrains again, or says the run's naming was not to be trusted.

The share is compared per image: a query reading k images of named networks is answered right about as
often as all k are read right, so (explained / ceiling)^(1/k) is on the scale of a cluster accuracy and one
threshold (`networks.<name>.naming_threshold`, default 0.9) serves a pair of digits and a 30-digit sum.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from nesy_gedi.analysis.naming import Naming
from nesy_gedi.data.queries import QuerySet
from nesy_gedi.logic.query import QueryTemplate


@dataclass(frozen=True)
class NamingCheck:
    explained: float
    """share of the training queries the program answers right under the naming"""
    ceiling: float
    """share the labels allow a perfect reading to explain (1 for labels computed by the program)"""
    images: int
    """images of a query the named networks read"""
    threshold: float
    per_image: float
    passed: bool

    def verdict(self) -> str:
        """One line for the summary, the report and the comparison."""
        figure = (
            f"explains {self.explained:.1%} of the training queries (the labels allow {self.ceiling:.1%}), "
            f"{self.per_image:.3f} per image"
        )
        if self.passed:
            return f"trusted: the naming {figure}, threshold {self.threshold:.2f}"
        return (
            f"TOO IMPURE to trust: the best naming {figure}, below the threshold {self.threshold:.2f} "
            "(networks.<name>.naming_threshold); the run's grounding may be a shortcut the clusters made"
        )

    def summary(self) -> dict:
        return {**asdict(self), "verdict": self.verdict()}


def label_ceiling(template: QueryTemplate, queries: QuerySet) -> float:
    """Share of the queries whose label is the program's most probable answer on the images' true concepts:
    the Acc(Y) a model with perfect concepts would reach on labels sampled from the program or read from
    files."""
    right = [
        str(template.prediction(row.tolist())) == str(label)
        for row, label in zip(queries.concepts, queries.labels, strict=True)
    ]
    return float(np.mean(right))


def unchecked_reason(template: QueryTemplate, named: set[str]) -> str | None:
    """Why a naming cannot be checked: a network the query reads is not named (trained from scratch, or
    `naming: false`), so the share explained says nothing of the named clusters."""
    others = sorted(set(template.readers) - named)
    if others:
        return f"not checked: the query also reads {', '.join(others)}, which is not named"
    return None


def check_naming(
    naming: Naming, template: QueryTemplate, train_set: QuerySet, labels: str, thresholds: dict[str, float]
) -> NamingCheck:
    """The naming against the strictest threshold of the named networks (`thresholds`). The ceiling:
    1 for program labels; for sampled labels the naming's own expectation (no concept label); for query
    files the training queries' true concepts (the only place this reads them: one number, never a naming)."""
    if labels == "files":
        ceiling = label_ceiling(template, train_set)
    else:
        ceiling = naming.expected_ceiling
    images = max(1, sum(len(template.readers.get(n, [])) for n in thresholds))  # 0: a network no query reads
    per_image = float(min(1.0, naming.explained / ceiling) ** (1 / images)) if ceiling > 0 else 0.0
    threshold = max(thresholds.values())
    return NamingCheck(naming.explained, ceiling, images, threshold, per_image, per_image >= threshold)
