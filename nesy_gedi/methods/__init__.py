"""Training methods by name: one file each, listed here."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from torch import nn

from nesy_gedi.errors import UserError
from nesy_gedi.methods.base import Method, TrainBatch
from nesy_gedi.methods.dpl import DeepProbLog

METHODS: dict[str, type[Method]] = {
    "dpl": DeepProbLog,
}


def make_method(name: str, args: dict[str, Any], networks: dict[str, nn.Module]) -> Method:
    """The named method with its validated `method_args`."""
    cls = METHODS[name]
    try:
        parsed = cls.Args.model_validate(args)
    except ValidationError as exc:
        problems = "; ".join(f"method_args.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise UserError(f"method '{name}': {problems}") from None
    return cls(parsed, networks)


__all__ = ["METHODS", "Method", "TrainBatch", "make_method"]
