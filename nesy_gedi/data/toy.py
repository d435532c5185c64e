"""The paper's 2-D toy data (its Table 2): scikit-learn's moons and circles, standardised with train statistics."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.datasets import make_circles, make_moons

DEFAULT_NOISE = {"moons": 0.1, "circles": 0.05}


@dataclass(frozen=True)
class Points:
    train: torch.Tensor
    """(N, 2) standardised points"""
    test: torch.Tensor
    test_labels: np.ndarray
    low: torch.Tensor
    """the input domain: the train points' bounding box with a 10 % margin"""
    high: torch.Tensor


def make_points(kind: str, n_train: int, n_test: int, noise: float | None, seed: int) -> Points:
    """Seeded train and test sets of `moons` or `circles` (GEDI_SPEC.md §9.2)."""
    noise = DEFAULT_NOISE[kind] if noise is None else noise

    def draw(n: int, offset: int) -> tuple[np.ndarray, np.ndarray]:
        if kind == "moons":
            return make_moons(n, noise=noise, random_state=seed * 2 + offset)
        return make_circles(n, noise=noise, factor=0.5, random_state=seed * 2 + offset)

    (x_train, _), (x_test, y_test) = draw(n_train, 0), draw(n_test, 1)
    mean, std = x_train.mean(0), x_train.std(0)
    train = torch.tensor((x_train - mean) / std, dtype=torch.float32)
    test = torch.tensor((x_test - mean) / std, dtype=torch.float32)
    low, high = train.min(0).values, train.max(0).values
    margin = 0.1 * (high - low)
    return Points(train, test, y_test.astype(np.int64), low - margin, high + margin)
