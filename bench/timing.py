"""Timing helper shared by the benchmark scripts."""

from __future__ import annotations

import time
from collections.abc import Callable


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Median seconds of `fn` after two warm-up calls (robust to the odd slow call)."""
    fn(), fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2]


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


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]
