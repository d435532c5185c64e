"""Training methods by name: one file each, listed here."""

from __future__ import annotations

from typing import Any

from torch import nn

from nesy_gedi.args import parsed
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


def make_method(name: str, args: dict[str, Any], networks: dict[str, nn.Module], context: MethodContext) -> Method:
    """The named method with its validated `method_args`."""
    return METHODS[name](parsed(args, name, METHODS), networks, context)


__all__ = ["METHODS", "Method", "MethodContext", "TrainBatch", "make_method"]
