"""Training methods by name: one file each, listed here."""

from __future__ import annotations

from typing import Any

from torch import nn

from nesy_gedi.config import parse_method_args
from nesy_gedi.errors import UserError
from nesy_gedi.methods.base import Method, MethodContext, TrainBatch
from nesy_gedi.methods.dpl import DeepProbLog
from nesy_gedi.methods.entropy import Entropy
from nesy_gedi.methods.gedi import GediJoint
from nesy_gedi.methods.gedi_nogen import GediNoGenJoint
from nesy_gedi.methods.gedi_pretrained import GediPretrained
from nesy_gedi.methods.recon import Recon
from nesy_gedi.methods.swav import SwavJoint

METHODS: dict[str, type[Method]] = {
    "dpl": DeepProbLog,
    "gedi": GediJoint,
    "gedi-pretrained": GediPretrained,
    "gedi-nogen": GediNoGenJoint,
    "swav": SwavJoint,
    "entropy": Entropy,
    "recon": Recon,
}


def method_args_for(args: dict[str, Any], name: str) -> tuple[dict[str, Any], str]:
    """The arguments of method `name` and where they stand: `method_args` holds either that method's
    arguments, or one section per method name (so one task serves `--set method=...` for every method)."""
    sections = [key for key in args if key in METHODS]
    if not sections:
        return args, "method_args"
    if len(sections) != len(args):
        others = ", ".join(sorted(set(args) - set(sections)))
        raise UserError(
            f"method_args: mixes sections per method ({', '.join(sections)}) with plain arguments ({others}); "
            "put every argument under its method's name"
        )
    return args.get(name) or {}, f"method_args.{name}"


def _parsed(args: dict[str, Any], name: str) -> Any:
    own, key = method_args_for(args, name)
    if not isinstance(own, dict):
        raise UserError(f"{key}: expected a mapping of argument names to values")
    return parse_method_args(METHODS[name].Args, own, name, key)


def check_method_args(args: dict[str, Any], method: str) -> None:
    """Validate the task's method arguments when it is loaded: those of `method`, and every section, so
    that a typo in another method's section shows before a comparison reaches it."""
    for name in dict.fromkeys([method, *(key for key in args if key in METHODS)]):
        _parsed(args, name)


def make_method(name: str, args: dict[str, Any], networks: dict[str, nn.Module], context: MethodContext) -> Method:
    """The named method with its validated `method_args`."""
    return METHODS[name](_parsed(args, name), networks, context)


__all__ = ["METHODS", "Method", "MethodContext", "TrainBatch", "check_method_args", "make_method"]
