"""Self-supervised objectives by name: one file each, listed here."""

from __future__ import annotations

from typing import Any

from torch import nn

from nesy_gedi.args import parsed
from nesy_gedi.ssl.objectives.base import Objective, SSLContext
from nesy_gedi.ssl.objectives.gedi import Gedi
from nesy_gedi.ssl.objectives.gedi_nogen import GediNoGen
from nesy_gedi.ssl.objectives.inv_only import InvOnly
from nesy_gedi.ssl.objectives.jem import Jem
from nesy_gedi.ssl.objectives.prior_only import PriorOnly
from nesy_gedi.ssl.objectives.swav import Swav

OBJECTIVES: dict[str, type[Objective]] = {
    "gedi": Gedi,
    "jem": Jem,
    "gedi-nogen": GediNoGen,
    "inv-only": InvOnly,
    "prior-only": PriorOnly,
    "swav": Swav,
}


def make_objective(name: str, args: dict[str, Any], network: nn.Module, context: SSLContext) -> Objective:
    """The named objective with its validated arguments (`method_args`, or its section of them)."""
    return OBJECTIVES[name](parsed(args, name, OBJECTIVES), network, context)


__all__ = ["OBJECTIVES", "Objective", "SSLContext", "make_objective"]
