"""Perception networks by name.

Every architecture returns logits: the neural predicate reads their softmax, and self-supervised
objectives (GEDI's energy is -logsumexp of the same logits) read the logits themselves. Each also
exposes `features(x)` and its last layer `head`, which SwAV uses as prototypes.
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

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The 84-d representation before the last layer (SwAV compares it with the last layer's rows)."""
        return self.classifier[:-1](self.encoder(x).flatten(1))

    @property
    def head(self) -> nn.Linear:
        return self.classifier[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.encoder(x).flatten(1))


@register("mnist_lenet_bn")
class MnistLeNetBN(MnistLeNet):
    """The same layers with batch normalisation after each convolution and hidden linear layer.

    Clustering objectives need it: without it the DeepProbLog net sits for thousands of steps at the
    uniform-output saddle of the invariance and prior terms, then locks into clusters of stroke style
    (NMI 0.48 after 3,000 steps, against 0.87 after 1,000 with it; docs/results.md). Generative terms
    evaluate it in eval mode (running statistics), so an energy is a function of one input alone.
    """

    def __init__(self, n_outputs: int) -> None:
        super().__init__(n_outputs)
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 6, 5),
            nn.BatchNorm2d(6),
            nn.ReLU(True),
            nn.MaxPool2d(2, 2),
            nn.Conv2d(6, 16, 5),
            nn.BatchNorm2d(16),
            nn.ReLU(True),
            nn.MaxPool2d(2, 2),
        )
        self.classifier = nn.Sequential(
            nn.Linear(16 * 4 * 4, 120),
            nn.BatchNorm1d(120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.BatchNorm1d(84),
            nn.ReLU(),
            nn.Linear(84, n_outputs),
        )


@register("mlp_2d")
class Mlp2d(nn.Module):
    """2 -> 128 -> 128 -> c with SiLU: smooth, so SGLD gets useful input gradients (GEDI_SPEC.md §9.2)."""

    def __init__(self, n_outputs: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(2, 128), nn.SiLU(), nn.Linear(128, 128), nn.SiLU())
        self.head = nn.Linear(128, n_outputs)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


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
