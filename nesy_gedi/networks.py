"""Perception networks by name.

Every architecture returns logits: the neural predicate reads their softmax, and self-supervised
objectives (GEDI's energy is -logsumexp of the same logits) read the logits themselves.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

ARCHITECTURES: dict[str, Callable[[int], nn.Module]] = {}


def register(name: str) -> Callable:
    def add(factory: Callable[[int], nn.Module]) -> Callable[[int], nn.Module]:
        ARCHITECTURES[name] = factory
        return factory

    return add


@register("mnist_lenet")
class MnistLeNet(nn.Module):
    """DeepProbLog's `MNIST_Net` (two conv layers, three linear ones) without its final softmax."""

    def __init__(self, n_outputs: int) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 6, 5),
            nn.MaxPool2d(2, 2),
            nn.ReLU(True),
            nn.Conv2d(6, 16, 5),
            nn.MaxPool2d(2, 2),
            nn.ReLU(True),
        )
        self.classifier = nn.Sequential(
            nn.Linear(16 * 4 * 4, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, n_outputs),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.encoder(x).flatten(1))


class PredicateHead(nn.Module):
    """What DeepProbLog calls for `nn(net, [X], Y, Domain)`: p(Y | X) over the domain, from the logits."""

    def __init__(self, logits_net: nn.Module) -> None:
        super().__init__()
        self.logits_net = logits_net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits_net(x), dim=-1)


def build_network(arch: str, n_outputs: int) -> nn.Module:
    """A fresh logits network; names are checked when the task is loaded."""
    return ARCHITECTURES[arch](n_outputs)
