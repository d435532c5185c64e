"""A registry entry's arguments from a task's `method_args`: its own section, validated against its own
model, every mistake named by key. Shared by training methods and pretraining objectives.

`method_args` holds either the arguments of the task's method, or one section per method name, so that
one task serves `--set method=...` for every method (a method without a section takes its defaults)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from nesy_gedi.errors import UserError, describe


def parse_args(model: type[BaseModel], args: dict[str, Any], name: str, key: str = "method_args") -> Any:
    """Arguments (standing at `key` in the task) validated against `model`, errors named by key."""
    try:
        return model.model_validate(args)
    except ValidationError as exc:
        problems = "; ".join(f"{key}.{'.'.join(map(str, e['loc']))}: {describe(e)}" for e in exc.errors())
        raise UserError(f"method '{name}': {problems}") from None


def section(args: dict[str, Any], name: str, registry: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """The arguments of entry `name` and the key they stand at: all of `method_args`, or its section."""
    sections = [key for key in args if key in registry]
    if not sections:
        return args, "method_args"
    if len(sections) != len(args):
        others = ", ".join(sorted(set(args) - set(sections)))
        raise UserError(
            f"method_args: mixes sections per method ({', '.join(sections)}) with plain arguments ({others}); "
            "put every argument under its method's name"
        )
    own = args.get(name) or {}
    if not isinstance(own, dict):
        raise UserError(f"method_args.{name}: expected a mapping of argument names to values")
    return own, f"method_args.{name}"


def parsed(args: dict[str, Any], name: str, registry: Mapping[str, Any]) -> Any:
    """Entry `name`'s validated arguments (`registry[name].Args`)."""
    own, key = section(args, name, registry)
    return parse_args(registry[name].Args, own, name, key)


def check_args(args: dict[str, Any], name: str, registry: Mapping[str, Any]) -> None:
    """Validate the arguments of `name` and of every section, so that a typo in another method's section
    shows when the task is loaded, not when a comparison reaches that method."""
    for entry in dict.fromkeys([name, *(key for key in args if key in registry)]):
        parsed(args, entry, registry)
