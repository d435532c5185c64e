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


class ReconArgs(MethodArgs):
    weight: NonNegativeFloat = Field(1.0, description="λ: weight of the reconstruction term")
    hidden: PositiveInt = Field(256, description="width of the decoder's hidden layer")


class Decoder(nn.Module):
    """Concept distribution (c) -> hidden -> image in [-1, 1]."""

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
        shape = context.pool.shape[1:]
        for name, net in networks.items():
            concepts = net.head.out_features
            self.modules[f"{name}_decoder"] = Decoder(concepts, args.hidden, shape).to(context.pool.device)

    def loss_terms(self, batch: TrainBatch) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        several = len(self.networks) > 1
        terms: dict[str, torch.Tensor] = {}
        for name, net in self.networks.items():
            rebuilt = self.modules[f"{name}_decoder"](torch.softmax(net(batch.images), -1))
            error = (rebuilt - batch.images).pow(2).mean()
            terms.update(prefixed({"recon": self.args.weight * error}, name, several))
        return terms, {}
