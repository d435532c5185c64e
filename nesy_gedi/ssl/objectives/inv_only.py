"""`inv-only`: the invariance term alone; its optimum is a constant one-hot predictor (collapse)."""

from nesy_gedi.ssl.objectives.gedi import Gedi


class InvOnly(Gedi):
    terms = ("inv",)
