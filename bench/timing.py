"""Timing helpers shared by the benchmark scripts."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Median seconds of `fn` after two warm-up calls (robust to the odd slow call)."""
    return median(interleaved_times({"fn": fn}, repeats)["fn"])


def interleaved_times(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Seconds of each function in every round, the functions timed in turn within a round.

    Parts timed in separate blocks are measured in a warmer state than inside the whole they are compared
    with (the same allocations repeated back to back) and on a machine whose speed drifts between blocks;
    taking turns gives every part the same conditions, and ratios within a round cancel the drift.
    """
    for fn in fns.values():
        fn(), fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            started = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - started)
    return times


def median(values: Iterable[float]) -> float:
    """The middle value (the upper of the two middle ones for an even count)."""
    ordered = sorted(values)
    return ordered[len(ordered) // 2]
