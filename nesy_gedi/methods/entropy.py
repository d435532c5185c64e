"""`entropy`: query loss + λ · (1 − H(p̄)/log |domain|), rsbench's entropy regulariser.

p̄ is the batch mean of the concept distribution over the batch's images; the term is 0 when every
concept is used equally often and 1 when one concept takes everything (concept collapse).
"""

from __future__ import annotations

import torch
from pydantic import Field, NonNegativeFloat

from nesy_gedi.methods.base import Method, MethodArgs, TrainBatch, prefixed
from nesy_gedi.ssl.terms import marginal_entropy


class EntropyArgs(MethodArgs):
    weight: NonNegativeFloat = Field(1.0, description="λ: weight of the entropy term")


class Entropy(Method):
    Args = EntropyArgs

    def loss_terms(self, batch: TrainBatch) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        several = len(self.networks) > 1
        terms: dict[str, torch.Tensor] = {}
        for name in self.networks:
            term = self.args.weight * (1 - marginal_entropy(self.logits(batch, name)))
            terms.update(prefixed({"entropy": term}, name, several))
        return terms, {}
