"""`jem`: the generative term alone (JEM's p(x) loss on the cluster logits); it defines no clusters."""

from nesy_gedi.ssl.objectives.gedi import Gedi


class Jem(Gedi):
    terms = ("gen",)
