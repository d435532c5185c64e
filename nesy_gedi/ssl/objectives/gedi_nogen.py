"""`gedi-nogen`: invariance + prior, GEDI without its generative term (the author's `gedi_nogen` loss)."""

from nesy_gedi.ssl.objectives.gedi import Gedi


class GediNoGen(Gedi):
    terms = ("inv", "prior")
