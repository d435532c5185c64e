"""`gedi`: query loss + λ · GEDI (generative + invariance + prior), joint from scratch."""

from __future__ import annotations

from nesy_gedi.methods.self_supervised import JointArgs, SelfSupervised
from nesy_gedi.ssl.objectives.gedi import GediArgs


class GediJointArgs(JointArgs, GediArgs):
    """λ and the data it sees, with GEDI's own arguments (README: pretraining keys)."""


class GediJoint(SelfSupervised):
    Args = GediJointArgs
    objective = "gedi"
