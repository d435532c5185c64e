"""Torch threads for a CPU run whose task leaves `train.threads` unset: the cores other processes leave
free, re-checked while training, and one thread when a second does not make a step faster.

Why: torch's default takes every core, and its threads wait on each other at every operation, so two
threads on two cores collapse as soon as another process runs (a training loop at 177 steps/s with one
thread fell to 43 with two beside one busy process, and to about 3 beside three; issue 19); and a tiny
batch gains nothing from a second thread. Other processes' CPU use is read from /proc/stat (every core's
busy time) minus this process's own (`os.times`), over the last interval.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable

import torch

Usage = Callable[[], tuple[float, float]]
"""(seconds all cores have been busy, seconds this process has run), both since boot / start"""


def cpu_usage() -> tuple[float, float]:
    own = os.times()
    try:
        with open("/proc/stat") as f:
            fields = [float(x) for x in f.readline().split()[1:]]
        ticks = os.sysconf("SC_CLK_TCK")
        busy = (sum(fields) - fields[3] - (fields[4] if len(fields) > 4 else 0.0)) / ticks  # all but idle, iowait
    except (OSError, ValueError, IndexError):  # no /proc: other processes are not seen (only the probe acts)
        busy = own.user + own.system
    return busy, own.user + own.system


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class ThreadGovernor:
    """Called after every training step with its duration; sets torch's threads.

    While it has more than one thread and has not yet probed, it times `probe` steps with them and then
    `probe` with one thread (the first step of each is a warm-up); if one thread is within `tolerance` of
    them, the run keeps to one (a tiny batch). Every `interval` seconds it gives the run the cores other
    processes leave free (at least one), up to what the probe found useful.
    """

    def __init__(
        self,
        cores: int | None = None,
        interval: float = 2.0,
        probe: int = 20,
        tolerance: float = 0.1,
        usage: Usage = cpu_usage,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cores = cores or available_cores()
        self.interval, self.probe, self.tolerance = interval, probe, tolerance
        self.usage, self.clock = usage, clock
        self.useful: int | None = None
        """threads worth using, once probed"""
        self._times: dict[int, list[float]] = {}
        self._many = self.cores
        self._last = (clock(), *usage())
        self.steps = 0
        self.threads = self.free()
        torch.set_num_threads(self.threads)
        self.history: list[tuple[int, int]] = [(0, self.threads)]
        """(step, threads) at the start and at every change, for the run's record"""

    def free(self) -> int:
        """Cores other processes left free since the last check (at least one)."""
        now, busy, own = self.clock(), *self.usage()
        then, busy0, own0 = self._last
        self._last = (now, busy, own)
        if now - then <= 0:
            return self.cores
        others = max(0.0, (busy - busy0) - (own - own0)) / (now - then)
        return max(1, min(self.cores, self.cores - math.ceil(others - 0.25)))

    def after_step(self, seconds: float) -> None:
        self.steps += 1
        if self.useful is None and (self.threads > 1 or 1 in self._times):
            self._record(seconds)
        elif self.clock() - self._last[0] >= self.interval:
            free = self.free()
            self._change(free if self.useful is None else min(free, self.useful))

    def _record(self, seconds: float) -> None:
        times = self._times.setdefault(self.threads, [])
        times.append(seconds)
        if len(times) <= self.probe:
            return
        if self.threads > 1:  # timed with many threads: now with one
            self._many = self.threads
            self._times[1] = []
            self._change(1)
            return
        one, many = statistics.median(times[1:]), statistics.median(self._times[self._many][1:])
        self.useful = 1 if one <= many * (1 + self.tolerance) else self.cores
        self._change(min(self.useful, self.free()))

    def _change(self, threads: int) -> None:
        if threads != self.threads:
            self.threads = threads
            torch.set_num_threads(threads)
            self.history.append((self.steps, threads))
