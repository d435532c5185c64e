"""Query datasets: which MNIST images go into each query, and the query's label.

The standard construction (DeepProbLog's MNIST addition): shuffle the split's images with a seed and
take them in consecutive groups, so 60,000 training images give 30,000 two-image queries. A query set
is kept as index arrays into the verified MNIST arrays, never as copied images.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from problog.logic import Term

from nesy_gedi.data.mnist import Split
from nesy_gedi.errors import UserError


@dataclass(frozen=True)
class QuerySet:
    source: str
    """name of the tensor source the indices point into ("train" or "test")"""
    indices: np.ndarray
    """(queries, images per query) indices into the MNIST split"""
    labels: list[Term]
    """the program's answer for each query's true concepts"""

    def __len__(self) -> int:
        return len(self.labels)


def build_query_set(
    split: Split,
    source: str,
    images_per_query: int,
    size: int | None,
    seed: int,
    label_of: Callable[[Sequence[int]], Term],
    size_key: str,
) -> QuerySet:
    """Group the split's shuffled images into `size` queries (all that fit when None) and label them."""
    available = len(split.labels) // images_per_query
    size = available if size is None else size
    if size > available:
        raise UserError(
            f"{size_key}={size}, but the {source} split's {len(split.labels)} images make only {available} "
            f"queries of {images_per_query} images; lower {size_key}"
        )
    order = np.random.default_rng(seed).permutation(len(split.labels))
    indices = order[: size * images_per_query].reshape(size, images_per_query)
    labels = [label_of(split.labels[row].tolist()) for row in indices]
    return QuerySet(source, indices, labels)
