"""Perception networks by name, or the user's own by import path (`package.module:factory`).

Every architecture returns logits: the neural predicate reads their softmax, and self-supervised
objectives (GEDI's energy is -logsumexp of the same logits) read the logits themselves. Each also
exposes `features(x)` and its last layer `head`, which SwAV uses as prototypes and naming permutes; a
user's network needs them only for the methods that use them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import torch
from torch import nn

from nesy_gedi.errors import UserError, summary

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

    def __init__(self, n_outputs: int, channels: tuple[int, int] = (6, 16), hidden: tuple[int, ...] = (120, 84)):
        super().__init__(n_outputs)
        first, second = channels
        self.encoder = nn.Sequential(
            nn.Conv2d(1, first, 5),
            nn.BatchNorm2d(first),
            nn.ReLU(True),
            nn.MaxPool2d(2, 2),
            nn.Conv2d(first, second, 5),
            nn.BatchNorm2d(second),
            nn.ReLU(True),
            nn.MaxPool2d(2, 2),
        )
        layers, width = [], second * 4 * 4
        for units in hidden:
            layers += [nn.Linear(width, units), nn.BatchNorm1d(units), nn.ReLU()]
            width = units
        self.classifier = nn.Sequential(*layers, nn.Linear(width, n_outputs))


@register("mnist_lenet_wide")
def mnist_lenet_wide(n_outputs: int) -> nn.Module:
    """The batch-normalised LeNet, wider: 16 and 32 channels, one hidden layer of 128 units.

    About 3 times its computation per image, for tasks where every digit error counts (a 15-digit sum
    needs all 30 digits right, docs/results.md)."""
    return MnistLeNetBN(n_outputs, (16, 32), (128,))


def _lenet_layers(n_outputs: int, norm: str, activation: type[nn.Module]) -> tuple[nn.Sequential, nn.Sequential]:
    """DeepProbLog's LeNet layers with a normalisation that is a function of one input (`group`: GroupNorm
    after the convolutions, LayerNorm after the hidden linear layers) or `spectral` normalisation of every
    weight but the head's (Du & Mordatch), so that an energy never depends on the rest of a batch."""

    def conv(cin: int, cout: int) -> list[nn.Module]:
        layer = nn.Conv2d(cin, cout, 5)
        if norm == "spectral":
            return [nn.utils.parametrizations.spectral_norm(layer)]
        return [layer, nn.GroupNorm(2, cout)]

    def linear(fin: int, fout: int) -> list[nn.Module]:
        layer = nn.Linear(fin, fout)
        if norm == "spectral":
            return [nn.utils.parametrizations.spectral_norm(layer)]
        return [layer, nn.LayerNorm(fout)]

    encoder = nn.Sequential(
        *conv(1, 6), activation(), nn.MaxPool2d(2, 2), *conv(6, 16), activation(), nn.MaxPool2d(2, 2)
    )
    classifier = nn.Sequential(
        *linear(16 * 4 * 4, 120), activation(), *linear(120, 84), activation(), nn.Linear(84, n_outputs)
    )
    return encoder, classifier


class MnistLeNetNormed(MnistLeNet):
    def __init__(self, n_outputs: int, norm: str, activation: type[nn.Module]) -> None:
        super().__init__(n_outputs)
        self.encoder, self.classifier = _lenet_layers(n_outputs, norm, activation)


@register("mnist_lenet_gn")
def mnist_lenet_gn(n_outputs: int) -> nn.Module:
    """DeepProbLog's net with group/layer normalisation: an energy is a function of one input (GEDI)."""
    return MnistLeNetNormed(n_outputs, "group", nn.ReLU)


@register("mnist_lenet_gn_silu")
def mnist_lenet_gn_silu(n_outputs: int) -> nn.Module:
    """`mnist_lenet_gn` with SiLU activations: smooth input gradients for the SGLD sampler."""
    return MnistLeNetNormed(n_outputs, "group", nn.SiLU)


@register("mnist_lenet_sn")
def mnist_lenet_sn(n_outputs: int) -> nn.Module:
    """DeepProbLog's net with spectral normalisation of its hidden weights (Du & Mordatch's EBMs)."""
    return MnistLeNetNormed(n_outputs, "spectral", nn.ReLU)


@register("small_cnn")
class SmallCnn(nn.Module):
    """A small CNN for 3x32x32 colour images (CIFAR-10, SVHN): three conv blocks with batch normalisation,
    global average pooling, a 128-d feature and a linear head."""

    def __init__(self, n_outputs: int, channels: int = 3) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(True))

        self.encoder = nn.Sequential(
            block(channels, 32), nn.MaxPool2d(2), block(32, 64), nn.MaxPool2d(2), block(64, 128),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )  # fmt: skip
        self.head = nn.Linear(128, n_outputs)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


@register("small_cnn_gray")
def small_cnn_gray(n_outputs: int) -> nn.Module:
    """`small_cnn` for one-channel 28x28 images (garments): wider than LeNet, with global pooling."""
    return SmallCnn(n_outputs, channels=1)


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


def _factory(arch: str, key: str) -> Callable[[int], nn.Module]:
    """A registered architecture, or `package.module:factory` imported from the user's code."""
    if arch in ARCHITECTURES:
        return ARCHITECTURES[arch]
    module, sep, name = arch.partition(":")
    if not sep or not module or not name:
        raise UserError(
            f"{key}: unknown architecture '{arch}'; known: {', '.join(sorted(ARCHITECTURES))}, or your own as "
            "`package.module:factory`"
        )
    try:
        factory = getattr(importlib.import_module(module), name)
    except Exception as exc:  # ImportError, a syntax error in the user's module, a missing name: all one message
        raise UserError(f"{key}: cannot import {arch} ({type(exc).__name__}: {exc})") from None
    if not callable(factory):
        raise UserError(f"{key}: {arch} is not callable; give a factory(n_outputs) -> nn.Module")
    return factory


def known_architecture(arch: str) -> bool:
    """A registered name, or an import path (checked when the network is built)."""
    return arch in ARCHITECTURES or ":" in arch


def build_network(arch: str, n_outputs: int, shape: tuple[int, ...] | None = None, name: str = "network") -> nn.Module:
    """A fresh logits network. With the input `shape` (C, H, W), one test pass checks that it reads such
    inputs and returns (batch, n_outputs) logits; each problem is one message naming the key."""
    key = f"networks.{name}.arch" if name != "network" else "network.arch"
    try:
        network = _factory(arch, key)(n_outputs)
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"{key}: {arch}({n_outputs}) failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(network, nn.Module):
        raise UserError(f"{key}: {arch}({n_outputs}) returned {type(network).__name__}, not a torch nn.Module")
    if shape is not None:
        was = network.training
        network.eval()
        try:
            with torch.no_grad():
                out = network(torch.zeros(2, *shape))
        except Exception as exc:
            raise UserError(
                f"{key}: {arch} cannot read inputs of shape {tuple(shape)} ({summary(exc)}); choose an architecture "
                "for these images"
            ) from None
        finally:
            network.train(was)
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, n_outputs):
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise UserError(
                f"{key}: {arch} returned {got} for 2 inputs; it must return logits of shape (2, {n_outputs})"
            )
        if not out.is_floating_point():
            raise UserError(
                f"{key}: {arch} returned logits of type {out.dtype}; they must be floating point (do not round "
                "or cast them to integers in forward)"
            )
    return network


def head_of(network: nn.Module, name: str) -> nn.Linear:
    """The network's last linear layer (naming permutes its rows)."""
    head = getattr(network, "head", None)
    if not isinstance(head, nn.Linear):
        raise UserError(
            f"networks.{name}: naming a pretrained network's clusters permutes its last layer, which it must expose "
            "as `head` (an nn.Linear); add it, or set naming: false"
        )
    return head
