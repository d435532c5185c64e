"""`gedi-nogen`: query loss + λ · (invariance + prior), GEDI without its generative term."""

from __future__ import annotations

from nesy_gedi.methods.gedi import GediJointArgs
from nesy_gedi.methods.self_supervised import SelfSupervised


class GediNoGenJoint(SelfSupervised):
    Args = GediJointArgs
    objective = "gedi-nogen"
