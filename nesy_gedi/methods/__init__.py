"""Training methods by name: one file each, listed here."""

from __future__ import annotations

from typing import Any

from torch import nn

from nesy_gedi.config import parse_method_args
from nesy_gedi.methods.base import Method, TrainBatch
from nesy_gedi.methods.dpl import DeepProbLog

METHODS: dict[str, type[Method]] = {
    "dpl": DeepProbLog,
}


def make_method(name: str, args: dict[str, Any], networks: dict[str, nn.Module]) -> Method:
    """The named method with its validated `method_args`."""
    cls = METHODS[name]
    parsed = parse_method_args(cls.Args, args, name)
    return cls(parsed, networks)


__all__ = ["METHODS", "Method", "TrainBatch", "make_method"]
