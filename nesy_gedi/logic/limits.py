"""Bounds on grounding and compilation, so that a program that recurses without end
(`count(N) :- M is N+1, count(M).`) or whose ground program is too large to compile stops with a message
instead of running for ever.

ProbLog's stack engine hands its debugger every message it processes. The watch installed as that
debugger ends a grounding that runs past `grounding_seconds` (checked every 1,024 messages). Every grounding
of a run goes through it (a query's label, which images a query's networks read, a circuit's ground
program, DeepProbLog's own solve). The SDD that follows is built by ProbLog one apply (conjoin or disjoin
of two SDDs, in C) at a time; inside the same bound each apply first checks `compile_seconds`, counted from
the first apply of its SDD manager (one per ground program), so compilation stops between two applies (one
apply itself is not interrupted).

Both limits count the CPU seconds of the grounding thread, not the wall clock: other work on the machine (two
side-by-side runs, a test suite next to a sweep) does not use them up, where a wall-clock limit stopped a
circuit that compiles in time on an idle machine.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from problog.sdd_formula import SDDManager

from nesy_gedi.errors import UserError


@dataclass(frozen=True)
class Limits:
    """The task's `limits:` section, as grounding reads it."""

    grounding_seconds: float = 30.0
    compile_seconds: float = 30.0


class _Stopped(Exception):
    """Raised inside ProbLog's engine loop; turned into a UserError where the grounding was asked for."""


class _CompileStopped(Exception):
    """Raised between two SDD applies; turned into a UserError where the compilation was asked for."""


class _Applies:
    """ProbLog's SDD applies, each checked against the innermost bound's compilation deadline while a bound
    is open (the manager's methods are restored when the outermost bound closes)."""

    def __init__(self) -> None:
        self.depth, self.count, self.deadline, self.limits = 0, 0, math.inf, Limits()
        self.manager: SDDManager | None = None
        self.saved: dict[str, object] = {}

    def check(self, manager: SDDManager) -> None:
        """One compilation is one SDD manager's applies (ProbLog makes a manager per ground program): its
        deadline starts at the manager's first apply, so a batch of queries solved in one bound (DeepProbLog's
        engine) gets the limit per query, not for the batch."""
        now = time.thread_time()
        if manager is not self.manager:
            self.manager, self.deadline, self.count = manager, now + self.limits.compile_seconds, 0
        self.count += 1
        if now > self.deadline:
            raise _CompileStopped(
                f"{self.limits.compile_seconds:g} CPU seconds (limits.compile_seconds), {self.count:,} applies"
            )

    def open(self) -> None:
        if self.depth == 0:
            for name in ("conjoin2", "disjoin2"):
                self.saved[name] = plain = getattr(SDDManager, name)
                setattr(SDDManager, name, self._checked(plain))
        self.depth += 1

    def close(self) -> None:
        self.depth -= 1
        if self.depth == 0:
            for name, plain in self.saved.items():
                setattr(SDDManager, name, plain)

    def _checked(self, plain: Callable) -> Callable:
        def apply(manager: SDDManager, a: object, b: object) -> object:
            self.check(manager)
            return plain(manager, a, b)

        return apply


_APPLIES = _Applies()


class _Watch:
    """ProbLog's debugger protocol, used only to stop a grounding past its limits."""

    interactive = False  # ProbLog's `trace/0` built-in sets it

    def __init__(self, limits: Limits) -> None:
        self.limits, self.deadline, self.messages = limits, math.inf, 0

    def process_message(self, *_: object) -> None:
        self.messages += 1
        if self.messages % 1024 == 0 and time.thread_time() > self.deadline:
            raise _Stopped(f"{self.limits.grounding_seconds:g} CPU seconds (limits.grounding_seconds)")

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
    watch.deadline = min(outer, time.thread_time() + limits.grounding_seconds)
    applies = (_APPLIES.limits, _APPLIES.deadline, _APPLIES.count, _APPLIES.manager)
    _APPLIES.limits, _APPLIES.manager = limits, None
    _APPLIES.open()
    try:
        yield
    except _CompileStopped as stopped:
        raise UserError(
            f"{where}: compilation to an SDD stopped after {stopped}: the ground program is too large to compile "
            "exactly in that time; ask a smaller query (fewer inputs, smaller domains), or raise the limit under "
            "`limits:` in the task if it only needs more"
        ) from None
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
        _APPLIES.close()
        _APPLIES.limits, _APPLIES.deadline, _APPLIES.count, _APPLIES.manager = applies
