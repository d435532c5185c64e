"""`recon`: query loss + λ · reconstruction of each image from its concept distribution (rsbench's
reconstruction mitigation, without a style latent).

A small decoder maps the network's softmax over the domain to an image; the mean squared error to the
input is the term. Concepts that merge two digits cannot reconstruct both, so merged shortcuts cost.
"""

from __future__ import annotations

import torch
from pydantic import Field, NonNegativeFloat, PositiveInt
from torch import nn

from nesy_gedi.methods.base import Method, MethodArgs, MethodContext, TrainBatch, prefixed
from nesy_gedi.networks import head_of


class ReconArgs(MethodArgs):
    weight: NonNegativeFloat = Field(1.0, description="λ: weight of the reconstruction term")
    hidden: PositiveInt = Field(256, description="width of the decoder's hidden layer")


class Decoder(nn.Module):
    """Concept distribution (c) -> hidden -> image in [-1, 1], of the network's own input shape."""

    def __init__(self, concepts: int, hidden: int, shape: torch.Size) -> None:
        super().__init__()
        self.shape = shape
        self.layers = nn.Sequential(nn.Linear(concepts, hidden), nn.ReLU(), nn.Linear(hidden, shape.numel()), nn.Tanh())

    def forward(self, probabilities: torch.Tensor) -> torch.Tensor:
        return self.layers(probabilities).view(-1, *self.shape)


class Recon(Method):
    Args = ReconArgs

    def __init__(self, args: ReconArgs, networks: dict[str, nn.Module], context: MethodContext) -> None:
        super().__init__(args, networks, context)
        for name, net in networks.items():
            pool = context.pools[name]
            concepts = head_of(net, name).out_features
            self.modules[f"{name}_decoder"] = Decoder(concepts, args.hidden, pool.shape[1:]).to(pool.device)

    def loss_terms(self, batch: TrainBatch) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        several = len(self.networks) > 1
        terms: dict[str, torch.Tensor] = {}
        for name in self.networks:
            images = batch.images[name]
            rebuilt = self.modules[f"{name}_decoder"](torch.softmax(self.logits(batch, name), -1))
            error = (rebuilt - images).pow(2).mean()
            terms.update(prefixed({"recon": self.args.weight * error}, name, several))
        return terms, {}
