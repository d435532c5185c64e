"""Bounds on grounding, so that a program that recurses without end (`count(N) :- M is N+1, count(M).`)
stops with a message instead of running for ever.

ProbLog's stack engine hands its debugger every message it processes. The watch installed as that
debugger ends a grounding that runs past `grounding_seconds` (checked every 1,024 messages). Every grounding
of a run goes through it (a query's label, which images a query's networks read, a circuit's ground
program, DeepProbLog's own solve). SDD compilation itself runs in C and
cannot be interrupted: a ground program that its time limit lets through is compiled to the end.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from nesy_gedi.errors import UserError


@dataclass(frozen=True)
class Limits:
    """The task's `limits:` section, as grounding reads it."""

    grounding_seconds: float = 30.0


class _Stopped(Exception):
    """Raised inside ProbLog's engine loop; turned into a UserError where the grounding was asked for."""


class _Watch:
    """ProbLog's debugger protocol, used only to stop a grounding past its limits."""

    interactive = False  # ProbLog's `trace/0` built-in sets it

    def __init__(self, limits: Limits) -> None:
        self.limits, self.deadline, self.messages = limits, math.inf, 0

    def process_message(self, *_: object) -> None:
        self.messages += 1
        if self.messages % 1024 == 0 and time.monotonic() > self.deadline:
            raise _Stopped(f"{self.limits.grounding_seconds:g} s (limits.grounding_seconds)")

    def call_create(self, *_: object, **__: object) -> None:
        pass

    def call_result(self, *_: object, **__: object) -> None:
        pass


@contextmanager
def bounded(engine: object, limits: Limits, where: str) -> Iterator[None]:
    """Ground with ProbLog `engine` inside the limits; past one, a UserError that says where (`where`: the
    program and the goal), which limit, and which key raises it."""
    watch = engine.debugger
    if not isinstance(watch, _Watch):
        watch = engine.debugger = _Watch(limits)
    outer, watch.limits = watch.deadline, limits
    watch.deadline = min(outer, time.monotonic() + limits.grounding_seconds)
    try:
        yield
    except _Stopped as stopped:
        engine.pointer, engine.cycle_root = 0, None  # the engine's stack holds the abandoned calls: drop them
        engine.shrink_stack()
        raise UserError(
            f"{where}: grounding stopped after {stopped}: the program may recurse without end (a rule that calls "
            "itself on a growing term, or an infinite domain); check its recursion has a base case the goal "
            "reaches, or raise the limit under `limits:` in the task if it only needs more"
        ) from None
    finally:
        watch.deadline = outer
