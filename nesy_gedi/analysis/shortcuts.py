"""Deterministic reasoning shortcuts of a task, counted from its own program (`nesy-gedi shortcuts`).

A shortcut is a map α_n, for each network n, from the true concepts to the concepts n predicts, other than
the identity, under which the program answers every training combination of true concepts c as it answers c
itself: K(α(c)) = K(c) (for a true/false query, the same truth value; for a program with its own
probabilistic facts, the same distribution over answers). One map per network, shared by every image
position, because one network reads every image. Maps are defined on the concepts that occur in the training
combinations (`data.combinations`, or every tuple over the domain for an unrestricted task). The answers
come from the program (ProbLog on the predicted concepts as facts), never from arithmetic written here, so
any program works. A map is bijective when every network's map is one-to-one: a model whose symbols are
clean clusters can only pick among those.

The search assigns α one (network, concept) at a time, in an order that completes combinations early,
and checks each combination as soon as all its concepts are assigned.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from nesy_gedi.logic.program import Program
from nesy_gedi.logic.query import QueryTemplate

Assignment = dict[tuple[str, int], int]
"""(network, true concept) -> predicted concept"""


@dataclass(frozen=True)
class Shortcuts:
    values: list[int]
    """the true concepts the maps are defined on"""
    maps: list[dict[str, tuple[int, ...]]]
    """every shortcut: per network, the predicted concept of each value in `values`"""

    @property
    def bijective(self) -> list[dict[str, tuple[int, ...]]]:
        return [m for m in self.maps if all(len(set(image)) == len(image) for image in m.values())]


def training_combinations(template: QueryTemplate, sizes: dict[str, int], combinations: list | None) -> list[tuple]:
    """The task's training tuples of true concepts: `data.combinations`, or all tuples over the domain."""
    if combinations:
        return [tuple(c) for c in combinations]
    return list(itertools.product(range(min(sizes.values())), repeat=template.images_per_query))


def _order(networks: list[str], combinations: list[tuple]) -> list[tuple[str, int]]:
    """Variables ordered greedily so that as many combinations as possible are complete early."""
    left = {v for c in combinations for v in c}
    order: list[int] = []
    while left:
        done = set(order)
        best = max(sorted(left), key=lambda v: sum(set(c) <= done | {v} for c in combinations))
        order.append(best)
        left.remove(best)
    return [(n, v) for v in order for n in networks]


def find_shortcuts(program: Program, template: QueryTemplate, sizes: dict[str, int], combinations: list) -> Shortcuts:
    """Every non-identity map that keeps the program's answer on every training combination."""
    networks = sorted(sizes)
    variables = _order(networks, combinations)
    position = {var: i for i, var in enumerate(variables)}
    expected = {c: template.outcome(list(c)) for c in combinations}
    # each combination is checked once the last of its variables is assigned
    checks: dict[int, list[tuple]] = {}
    for c in combinations:
        last = max(position[(n, v)] for n in networks for v in c)
        checks.setdefault(last, []).append(c)
    found: list[Assignment] = []
    alpha: Assignment = {}

    def holds(c: tuple) -> bool:
        predicted = {n: [alpha[(n, v)] for v in c] for n in networks}
        return template.outcome(list(c), predicted) == expected[c]

    def extend(depth: int) -> None:
        if depth == len(variables):
            found.append(dict(alpha))
            return
        network, _ = variables[depth]
        for value in range(sizes[network]):
            alpha[variables[depth]] = value
            if all(holds(c) for c in checks.get(depth, [])):
                extend(depth + 1)
        del alpha[variables[depth]]

    extend(0)
    values = sorted({v for c in combinations for v in c})
    maps = [{n: tuple(a[(n, v)] for v in values) for n in networks} for a in found]
    identity = {n: tuple(values) for n in networks}
    return Shortcuts(values, [m for m in maps if m != identity])


def describe(found: Shortcuts, listed: int = 20) -> str:
    """What `nesy-gedi shortcuts` prints: the maps when few, and the closing count line."""
    lines = [f"concepts the maps are defined on: {found.values}"]
    bijective = found.bijective
    if found.maps and len(found.maps) <= listed:
        lines.append("shortcut maps (true -> predicted), * = bijective:")
        for m in found.maps:
            text = "; ".join(
                f"{n}: " + ", ".join(f"{v}->{p}" for v, p in zip(found.values, image, strict=True) if v != p)
                for n, image in m.items()
            )
            lines.append(f"  {'*' if m in bijective else ' '} {text}")
    elif found.maps:
        lines.append(f"{len(found.maps)} maps (more than {listed}: not listed); bijective ones:")
        lines += [f"  * {m}" for m in bijective[:listed]]
    lines.append(f"shortcuts: {len(found.maps)} (bijective: {len(bijective)})")
    return "\n".join(lines)
