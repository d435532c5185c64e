"""`swav`: query loss + λ · SwAV; the neural predicate reads SwAV's prototype scores / its temperature."""

from __future__ import annotations

from nesy_gedi.methods.self_supervised import JointArgs, SelfSupervised
from nesy_gedi.ssl.objectives.swav import SwavArgs


class SwavJointArgs(JointArgs, SwavArgs):
    """λ and the data it sees, with SwAV's own arguments."""


class SwavJoint(SelfSupervised):
    Args = SwavJointArgs
    objective = "swav"
