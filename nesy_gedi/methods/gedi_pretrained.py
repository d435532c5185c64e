"""`gedi-pretrained`: every network starts from a `nesy-gedi pretrain` run, then query loss + λ · GEDI
(λ = 0 allowed: the program then only names the pretrained clusters)."""

from __future__ import annotations

from nesy_gedi.methods.gedi import GediJoint


class GediPretrained(GediJoint):
    needs_pretrained = True
