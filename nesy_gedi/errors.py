"""The one exception type that reaches the user as a message instead of a traceback, and the wording of
validation errors, so that every message names the key the user wrote."""

from __future__ import annotations


class UserError(Exception):
    """Bad input the user can fix: the CLI prints the message and exits with status 2."""


def summary(exc: BaseException) -> str:
    """An exception in one line for a message: its type and the first line of its text (a bare `assert`
    has none)."""
    lines = str(exc).splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def describe(error: dict) -> str:
    """One pydantic error in words a task author understands."""
    if error["type"] == "extra_forbidden":
        return "no such key (check the spelling; docs/tasks.md lists every key)"
    if error["type"] == "missing":
        return "required key is missing"
    return f"{error['msg']} (got {error.get('input')!r})"
