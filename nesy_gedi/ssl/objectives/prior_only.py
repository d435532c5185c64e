"""`prior-only`: the uniform-prior term alone; balanced assignments that may ignore the input."""

from nesy_gedi.ssl.objectives.gedi import Gedi


class PriorOnly(Gedi):
    terms = ("prior",)
