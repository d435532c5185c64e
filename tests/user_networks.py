"""Networks a user might bring, imported by path in tests (`arch: tests.user_networks:...`)."""

from __future__ import annotations

import torch
from torch import nn


def tiny_mlp(n_outputs: int) -> nn.Module:
    """A user's own network: logits, with `features` and `head` for the methods that use them."""

    class TinyMlp(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU())
            self.head = nn.Linear(64, n_outputs)

        def features(self, x: torch.Tensor) -> torch.Tensor:
            return self.body(x)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.body(x))

    return TinyMlp()


def headless(n_outputs: int) -> nn.Module:
    """Logits without a `head` attribute: fine for training, not for naming pretrained clusters."""
    return nn.Sequential(nn.Flatten(), nn.Linear(784, n_outputs))


def wrong_shape(n_outputs: int) -> nn.Module:
    """Returns one output too many."""
    return nn.Sequential(nn.Flatten(), nn.Linear(784, n_outputs + 1))


def integer_logits(n_outputs: int) -> nn.Module:
    """Rounds its logits to integers: the right shape, but nothing a softmax or a gradient can use."""

    class Rounding(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Flatten(), nn.Linear(784, n_outputs))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.body(x).long()

    return Rounding()


def asserting(n_outputs: int) -> nn.Module:
    """A forward that fails a bare `assert` (no message) on the images it is given."""

    class Asserting(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Flatten(), nn.Linear(784, n_outputs))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            assert x.shape[1] == 3
            return self.body(x)

    return Asserting()
