"""The program's learnable `t(_)` probabilities as one `torch.nn.Module`, trained by the run's optimiser.

DeepProbLog keeps them as floats stepped by its own SGD outside the run's schedule, clamped to [0, 1] and
renormalised per annotated disjunction after each step; plain SGD on a probability at a useful rate jumps
between the bounds. Here each is an unconstrained logit: a fact's probability is its sigmoid, the heads of
one `t(_)` annotated disjunction share a softmax (their probabilities sum to one, as DeepProbLog
renormalises them). The same module serves `nesy-gedi run` (every engine) and `ProgramModule`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

EPS = 1e-6
"""initial values are kept this far inside (0, 1): a logit of 0 or 1 is infinite"""


class ProgramParameters(nn.Module):
    """`values[i]`: the initial value of DeepProbLog's parameter i; `groups`: the parameter indices of each
    `t(_)` annotated disjunction; `names[i]`: what parameter i is the probability of, for reports."""

    def __init__(self, values: Sequence[float], groups: Sequence[Sequence[int]], names: Sequence[str]) -> None:
        super().__init__()
        self.names = list(names)
        self.groups = [list(group) for group in groups]
        grouped = {i for group in self.groups for i in group}
        self.singles = [i for i in range(len(values)) if i not in grouped]
        clamped = [min(max(float(v), EPS), 1 - EPS) for v in values]
        logits = [math.log(p) if i in grouped else math.log(p / (1 - p)) for i, p in enumerate(clamped)]
        self.logits = nn.Parameter(torch.tensor(logits, dtype=torch.get_default_dtype()))

    def __len__(self) -> int:
        return len(self.names)

    def forward(self) -> torch.Tensor:
        """Every parameter's probability, in DeepProbLog's order."""
        probabilities = torch.zeros_like(self.logits)
        if self.singles:
            index = torch.tensor(self.singles, device=self.logits.device)
            probabilities = probabilities.index_copy(0, index, torch.sigmoid(self.logits[index]))
        for group in self.groups:
            index = torch.tensor(group, device=self.logits.device)
            probabilities = probabilities.index_copy(0, index, torch.softmax(self.logits[index], 0))
        return probabilities

    def each(self) -> list[torch.Tensor]:
        """Every parameter's probability as its own tensor (what circuits and DeepProbLog's semiring read)."""
        return list(self().unbind()) if len(self) else []

    @torch.no_grad()
    def values(self) -> dict[str, float]:
        """Each learnable probability by name, as reports show them."""
        return dict(zip(self.names, self().tolist(), strict=True))
