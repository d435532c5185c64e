"""Exact shortcut counts at any size, by knowledge compilation (`nesy-gedi shortcuts`).

A concept map α gives each network n and each true concept v one predicted concept w: one-hot variables
x[n, v, w] with exactly one true per (n, v). For every training combination c, the program's outcome
under α must equal its outcome on c: a disjunction, over the predicted values of the images its networks
read, of the conjunctions of the x's that give them. The outcomes come from the program itself (ProbLog
on the predicted concepts as facts, as `shortcuts.find_shortcuts` asks it; a true/false query's truth
value, a noisy program's distribution), so any program works. The conjunction of all of it is compiled
to an SDD by PySDD and its models are counted: every shortcut without listing one. With "each predicted
w taken by at most one v" added per network, the count is of the bijective maps. The identity is always a
model and is not counted. Maps are listed (from the models) only when few.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass

from pysdd.sdd import SddManager, SddNode

from nesy_gedi.errors import UserError
from nesy_gedi.logic.query import QueryTemplate
from nesy_gedi.progress import bar

Map = dict[str, tuple[int, ...]]
"""per network, the predicted concept of each value the maps are defined on"""


@dataclass(frozen=True)
class ShortcutCount:
    values: list[int]
    """the true concepts the maps are defined on"""
    total: int
    """maps other than the identity that keep every training combination's outcome"""
    bijective: int
    """those one-to-one for every network"""
    maps: list[Map] | None
    """the shortcuts themselves when at most `listed` of them, else None"""
    bijective_maps: list[Map] | None
    """the bijective ones when at most `listed`, else None"""


def _any(manager: SddManager, nodes: list[SddNode]) -> SddNode:
    found = manager.false()
    for node in nodes:
        found = found | node
    return found


def _all(manager: SddManager, nodes: list[SddNode]) -> SddNode:
    found = manager.true()
    for node in nodes:
        found = found & node
    return found


def _one_of(manager: SddManager, options: list[SddNode]) -> SddNode:
    """Exactly one of the literals is true."""
    return _any(manager, [_all(manager, [o if o is chosen else ~o for o in options]) for chosen in options])


def _at_most_one(manager: SddManager, options: list[SddNode]) -> SddNode:
    return _all(manager, [~(a & b) for a, b in itertools.combinations(options, 2)])


@dataclass(frozen=True)
class CountLimits:
    """The task's `limits.shortcut_pairs` and `limits.shortcut_seconds`."""

    pairs: int
    seconds: float


def _checked_size(combinations: list[tuple], slots: list[tuple[str, int]], sizes: dict[str, int], limit: int) -> str:
    """The work is one check per (training combination, predicted concepts of its images), known before
    any starts: a task far too large to count is refused at once. Its size, for the messages."""
    predicted = math.prod(sizes[n] for n, _ in slots)
    pairs = len(combinations) * predicted
    size = f"{len(combinations):,} training combinations × {predicted:,} predicted concept tuples = {pairs:,} pairs"
    if pairs > limit:
        raise UserError(
            f"shortcuts: {size}, above limits.shortcut_pairs = {limit:,}; restrict data.combinations or raise "
            "limits.shortcut_pairs (the SDD's work grows faster than the pairs: limits.shortcut_seconds then applies)"
        )
    return size


def _stop_if_late(started: float, done: int, total: int, size: str, limit: float) -> None:
    """The SDD grows with every combination conjoined, so the time is only known as it goes: past the limit,
    stop and say how far it got and what the rest would take at the pace so far (a lower bound)."""
    spent = time.monotonic() - started
    if spent > limit and done < total:
        # before the first combination (a slow or busy machine) there is no pace to extrapolate from
        pace = (
            f"the rest would take at least {spent / done * (total - done):,.0f} s more at this pace"
            if done
            else "the setup alone used the time"
        )
        raise UserError(
            f"shortcuts: stopped after {spent:.0f} s (limits.shortcut_seconds = {limit:g}) with {done:,} of "
            f"{total:,} training combinations conjoined ({size}); {pace}; raise limits.shortcut_seconds or "
            "restrict data.combinations"
        )


def count_shortcuts(
    template: QueryTemplate, sizes: dict[str, int], combinations: list[tuple], limits: CountLimits, listed: int = 20
) -> ShortcutCount:
    """The shortcuts of a task over its training combinations of true concepts, counted exactly within the
    task's limits (a progress bar with the time left while it counts)."""
    networks = sorted(sizes)
    readers = template.readers
    slots = [(n, p) for n in networks for p in readers.get(n, [])]  # which network reads which image
    size = _checked_size(combinations, slots, sizes, limits.pairs)
    started = time.monotonic()
    values = sorted({v for c in combinations for v in c})
    index = {
        (n, v, w): i + 1
        for i, (n, v, w) in enumerate((n, v, w) for n in networks for v in values for w in range(sizes[n]))
    }
    manager = SddManager(var_count=len(index))
    manager.auto_gc_and_minimize_on()  # dynamic vtree search keeps the conjunction of many constraints small

    def x(n: str, v: int, w: int) -> SddNode:
        return manager.literal(index[(n, v, w)])

    maps = _all(manager, [_one_of(manager, [x(n, v, w) for w in range(sizes[n])]) for n in networks for v in values])
    blank = [0] * template.images_per_query
    for done, c in enumerate(bar(combinations, desc="shortcuts", unit="combination", leave=False)):
        _stop_if_late(started, done, len(combinations), size, limits.seconds)
        expected = template.outcome(list(c))
        keep = []
        for chosen in itertools.product(*(range(sizes[n]) for n, _ in slots)):
            predicted = {n: list(blank) for n in networks}
            for (n, p), w in zip(slots, chosen, strict=True):
                predicted[n][p] = w
            # the outcome of predicted concepts does not depend on the true ones: one evaluation serves all c
            if template.outcome(blank, predicted) == expected:
                keep.append(_all(manager, [x(n, c[p], w) for (n, p), w in zip(slots, chosen, strict=True)]))
        maps = maps & _any(manager, keep)
    one_to_one = maps & _all(
        manager,
        [_at_most_one(manager, [x(n, v, w) for v in values]) for n in networks for w in range(sizes[n])],
    )
    total, bijective = maps.global_model_count() - 1, one_to_one.global_model_count() - 1

    def listing(node: SddNode, count: int) -> list[Map] | None:
        if count > listed:
            return None
        found = []
        for model in node.models():
            image = {
                n: tuple(next(w for w in range(sizes[n]) if model[index[(n, v, w)]]) for v in values) for n in networks
            }
            if image != {n: tuple(values) for n in networks}:
                found.append(image)
        return found

    return ShortcutCount(values, total, bijective, listing(maps, total), listing(one_to_one, bijective))


def describe_count(found: ShortcutCount) -> str:
    """What `nesy-gedi shortcuts` prints: the maps when few, and the closing count line."""
    lines = [f"concepts the maps are defined on: {found.values}"]

    def text(m: Map) -> str:
        return "; ".join(
            f"{n}: " + ", ".join(f"{v}->{p}" for v, p in zip(found.values, image, strict=True) if v != p)
            for n, image in m.items()
        )

    if found.maps:
        lines.append("shortcut maps (true -> predicted), * = bijective:")
        lines += [f"  {'*' if m in (found.bijective_maps or []) else ' '} {text(m)}" for m in found.maps]
    elif found.total:
        lines.append(f"{found.total} maps (too many to list)" + ("; bijective ones:" if found.bijective_maps else ""))
        lines += [f"  * {text(m)}" for m in found.bijective_maps or []]
    lines.append(f"shortcuts: {found.total} (bijective: {found.bijective})")
    return "\n".join(lines)
