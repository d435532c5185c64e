"""Concept supervision (`networks.<name>.concept_labels: k`): a few training images with their true concept.

When the program cannot pin down what a network's outputs mean (a bijective shortcut, clusters that merge
garments), the honest question is how few labelled images per concept ground it (rsbench's `c_sup`). k
distinct training images per domain value are drawn once with the run's seed (never from the test split)
and each training step adds `concept_weight` × the cross-entropy of a few of them, drawn from (seed, step),
to any method's loss. The network reads them in the step's one call on its query images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from nesy_gedi.data.queries import QuerySet


@dataclass(frozen=True)
class ConceptLabels:
    """One network's labelled training images."""

    per_value: int
    """k: images asked for per domain value"""
    indices: np.ndarray
    """the images' indices in the network's training source (recorded in the run's `queries.npz`)"""
    concepts: torch.Tensor
    """their true concepts, (n,)"""
    images: torch.Tensor
    """the images themselves, (n, C, H, W)"""
    weight: float

    def batch(self, seed: int, step: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """`size` of the labelled images (all of them if fewer) for this step, drawn from (seed, step) alone so
        that a resumed run draws what the uninterrupted one would."""
        if size >= len(self.concepts):
            return self.images, self.concepts
        rows = np.random.default_rng([seed, 3, step]).choice(len(self.concepts), size=size, replace=False)
        which = torch.as_tensor(rows, device=self.concepts.device)
        return self.images[which], self.concepts[which]

    def summary(self) -> dict:
        counts = torch.bincount(self.concepts.cpu()).tolist()
        return {"per_value": self.per_value, "images": len(self.concepts), "per_concept": counts, "weight": self.weight}


def choose_concept_labels(
    train_set: QuerySet,
    tensors: dict[str, torch.Tensor],
    readers: dict[str, list[int]],
    sizes: dict[str, int],
    wanted: dict[str, tuple[int, float]],
    seed: int,
) -> dict[str, ConceptLabels]:
    """Per network with `concept_labels` k > 0 (`wanted`: network -> (k, weight)), k training images of each
    of its domain values, drawn with the run's seed (a stream of their own, the same whatever else runs)."""
    chosen = {}
    for number, (network, (k, weight)) in enumerate(sorted(wanted.items())):
        if k == 0:
            continue
        read = readers[network]
        picked = train_set.labelled(read, sizes[network], k, np.random.default_rng([seed, 2, number]))
        indices = train_set.indices[:, read].ravel()[picked]
        source = tensors[train_set.tensors[read[0]]]
        concepts = torch.as_tensor(train_set.concepts[:, read].ravel()[picked], device=source.device)
        images = source[torch.as_tensor(indices, device=source.device)]
        chosen[network] = ConceptLabels(k, indices, concepts, images, weight)
    return chosen
