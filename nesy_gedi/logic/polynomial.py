"""A small circuit flattened to its polynomial: every root as Σ coefficient · Π weights, in a few kernels.

KLay evaluates a circuit layer by layer: two kernels per layer forward and two backward. For the circuits
of small programs (single-digit addition: eleven layers, 19 roots of 100 products of two digits) the
kernel launches, not the arithmetic, set the speed of a training step (docs/benchmarks.md). Running the
KLay layers once on symbols instead of numbers gives each root's polynomial in the variables' weights;
evaluating it is one gather, one product and one matrix product (real semiring) or one log-sum-exp (log
semiring), the same function in exact arithmetic. A circuit whose polynomial would be large keeps KLay.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

Monomial = tuple[int, ...]
"""sorted weight columns multiplied together"""

MAX_TERMS = 4096
"""monomials over all nodes above which a circuit stays layered (their expansion can grow exponentially)"""


def expand(module: nn.Module, constants: list[float | None], max_terms: int = MAX_TERMS) -> list[dict] | None:
    """Each output of KLay's `module` as {monomial: coefficient} over the weight columns, or None when it
    would hold more than `max_terms` monomials in some layer.

    KLay's input row 0 is the semiring's zero, row 1 its one, rows 2 + 2k and 3 + 2k variable k's positive
    and negative weight, which are weight columns k and n + k. `constants[c]` is column c's value when it
    does not depend on the networks or parameters (folded into the coefficients), else None."""
    n = (len(constants) - 1) // 2
    nodes: list[dict[Monomial, float]] = [{}, {(): 1.0}]
    for k in range(2 * n):
        column = k // 2 + (n if k % 2 else 0)
        value = constants[column]
        nodes.append({(column,): 1.0} if value is None else ({(): value} if value != 0 else {}))
    for index, layer in enumerate(module.layers):
        ix_in, offsets = layer.ix_in.tolist(), layer.offsets.tolist()
        product = index % 2 == 0  # KLay's layers alternate, products first
        out = []
        total = 0
        for j in range(len(offsets) - 1):
            children = [nodes[i] for i in ix_in[offsets[j] : offsets[j + 1]]]
            bound = np.prod([len(c) for c in children], dtype=float) if product else sum(len(c) for c in children)
            if total + bound > max_terms:  # checked before expanding: one node could otherwise grow huge
                return None
            out.append(_product(children) if product else _sum(children))
            total += len(out[-1])
        nodes = out
    return nodes


def _sum(polys: list[dict[Monomial, float]]) -> dict[Monomial, float]:
    total: dict[Monomial, float] = {}
    for poly in polys:
        for mono, c in poly.items():
            total[mono] = total.get(mono, 0.0) + c
    return total


def _product(polys: list[dict[Monomial, float]]) -> dict[Monomial, float]:
    result: dict[Monomial, float] = {(): 1.0}
    for poly in polys:
        result = _multiply(result, poly)
    return result


def _multiply(a: dict[Monomial, float], b: dict[Monomial, float]) -> dict[Monomial, float]:
    out: dict[Monomial, float] = {}
    for m, x in a.items():
        for mono, y in b.items():
            key = tuple(sorted(m + mono))
            out[key] = out.get(key, 0.0) + x * y
    return out


class Polynomial(nn.Module):
    """Roots as polynomials in the weight columns: (batch, columns) weights in, (batch, roots) values out.

    Real semiring: Σ coefficient · Π weights. Log semiring: the weights arrive as logs and each root is the
    log-sum-exp of its monomials' summed logs and log coefficients. Every monomial is padded to one degree
    with the constant column `one` (weight 1, log 0)."""

    def __init__(self, roots: list[dict[Monomial, float]], one: int, log: bool) -> None:
        super().__init__()
        self.log = log
        monomials = [(r, mono, c) for r, poly in enumerate(roots) for mono, c in poly.items() if c != 0]
        degree = max((len(m) for _, m, _ in monomials), default=0)
        index = torch.full((len(monomials), max(degree, 1)), one, dtype=torch.long)
        for i, (_, mono, _) in enumerate(monomials):
            index[i, : len(mono)] = torch.tensor(mono, dtype=torch.long)
        self.register_buffer("index", index.flatten())
        self.shape = index.shape
        coefficients = torch.zeros(len(monomials), len(roots), dtype=torch.float64)
        for i, (r, _, c) in enumerate(monomials):
            coefficients[i, r] = c
        if not log:
            self.register_buffer("coefficients", coefficients)
            return
        # log semiring: per root, its monomials' rows (padded with an always -inf row) and log coefficients
        width = max((int((coefficients[:, r] != 0).sum()) for r in range(len(roots))), default=0)
        rows = torch.full((len(roots), max(width, 1)), len(monomials), dtype=torch.long)
        logc = torch.full((len(roots), max(width, 1)), float("-inf"), dtype=torch.float64)
        for r in range(len(roots)):
            found = torch.nonzero(coefficients[:, r]).flatten()
            rows[r, : len(found)] = found
            logc[r, : len(found)] = coefficients[found, r].log()
        self.register_buffer("rows", rows.flatten())
        self.register_buffer("log_coefficients", logc)
        self.roots = len(roots)

    def forward(self, weights: torch.Tensor) -> torch.Tensor:
        batch = len(weights)
        gathered = weights.index_select(1, self.index).view(batch, *self.shape)
        if not self.log:
            return gathered.prod(-1) @ self.coefficients.to(weights.dtype)
        terms = torch.cat([gathered.sum(-1), weights.new_zeros(batch, 1)], 1)  # the padding row, its log c -inf
        picked = terms.index_select(1, self.rows).view(batch, self.roots, -1)
        return torch.logsumexp(picked + self.log_coefficients.to(weights.dtype), -1)
