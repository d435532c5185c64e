"""Query datasets: which images go into each query, and the query's label.

Each image position of a query reads one tensor source (an image source's training or test split, e.g.
`mnist_train`) and maps that source's class labels to the concepts of the networks that read it
(`Position`). The standard construction (DeepProbLog's MNIST addition): shuffle a source's images with a
seed and take them in consecutive groups, so 60,000 training images give 30,000 two-image queries;
`balance` keeps as many queries of every label (a true/false task's queries half true). A restricted
task (rsbench's MNIST-EvenOdd, MNIST-Half) lists the allowed tuples of true concepts instead
(`data.combinations`): the queries are spread evenly over those tuples, each image drawn from the
split's images of its concept; its out-of-distribution split uses the other tuples over the same
concepts. A query set is kept as index arrays into the verified image arrays, never as copied images.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from problog.logic import Term

from nesy_gedi.errors import UserError


@dataclass(frozen=True)
class Position:
    """Where the images of one query position come from."""

    tensor: str
    """the tensor source, `<source>_<split>`"""
    labels: np.ndarray
    """the class label of every image of that split"""
    concept: np.ndarray
    """class label -> concept index of the networks reading this position; -1: outside their domain"""

    def concepts(self, indices: np.ndarray) -> np.ndarray:
        return self.concept[self.labels[indices]]


@dataclass(frozen=True)
class QuerySet:
    split: str
    """`train` or `test`: which split of each source the indices point into"""
    tensors: tuple[str, ...]
    """the tensor source of each position"""
    indices: np.ndarray
    """(queries, images per query) image indices"""
    concepts: np.ndarray
    """(queries, images per query) true concept of every image"""
    labels: list[Term]
    """each query's label"""

    def __len__(self) -> int:
        return len(self.labels)

    def images(
        self,
        tensors: dict[str, torch.Tensor],
        positions: list[int],
        rows: np.ndarray | slice = slice(None),
        unique: bool = False,
    ) -> torch.Tensor:
        """The images at these positions (of one source, as a network reads one) of these queries, query by
        query, or each image once with `unique`."""
        source = tensors[self.tensors[positions[0]]]
        index = self.indices[rows][:, positions]
        index = np.unique(index) if unique else index.ravel()
        return source[torch.as_tensor(index, device=source.device)]

    def labelled(self, positions: list[int], size: int, k: int, rng: np.random.Generator) -> np.ndarray:
        """k distinct images per concept 0..size-1 (fewer where these queries hold fewer) among the images at
        these positions, drawn with `rng`: as sorted indices into `indices[:, positions].ravel()` (so into
        `concepts[:, positions].ravel()` too). An image read by several queries counts once."""
        index, concept = self.indices[:, positions].ravel(), self.concepts[:, positions].ravel()
        _, first = np.unique(index, return_index=True)
        chosen = []
        for value in range(size):
            images = first[concept[first] == value]
            chosen.extend(rng.choice(images, size=min(k, len(images)), replace=False).tolist())
        return np.array(sorted(chosen), dtype=np.int64)

    def take(self, rows: np.ndarray | slice) -> QuerySet:
        chosen = np.arange(len(self))[rows]
        return QuerySet(
            self.split, self.tensors, self.indices[chosen], self.concepts[chosen], [self.labels[i] for i in chosen]
        )


def _groups(positions: Sequence[Position]) -> dict[str, list[int]]:
    """Positions by tensor source, in order of first appearance."""
    groups: dict[str, list[int]] = {}
    for p, position in enumerate(positions):
        groups.setdefault(position.tensor, []).append(p)
    return groups


def _labelled(
    split: str, positions: Sequence[Position], indices: np.ndarray, label_of: Callable[[Sequence[int]], Term]
) -> QuerySet:
    concepts = np.stack([pos.concepts(indices[:, p]) for p, pos in enumerate(positions)], 1).reshape(indices.shape)
    labels = [label_of(row.tolist()) for row in concepts]
    return QuerySet(split, tuple(p.tensor for p in positions), indices, concepts, labels)


def ood_combinations(combinations: Sequence[Sequence[int]]) -> list[tuple[int, ...]]:
    """Every tuple over the concepts that occur in `combinations`, except those tuples themselves."""
    values = sorted({v for c in combinations for v in c})
    allowed = {tuple(c) for c in combinations}
    return [t for t in itertools.product(values, repeat=len(combinations[0])) if t not in allowed]


def build_query_set(
    positions: Sequence[Position],
    split: str,
    size: int | None,
    seed: int,
    label_of: Callable[[Sequence[int]], Term],
    size_key: str,
    combinations: Sequence[Sequence[int]] | None = None,
    balance: bool = False,
) -> QuerySet:
    """`size` labelled queries: consecutive groups of each source's shuffled images (those with a concept;
    all queries that fit when `size` is None; with `balance`, as many of every label), or, with
    `combinations`, images of the listed true-concept tuples, evenly spread. `label_of` is called once per
    query, in query order."""
    if combinations is not None:
        return _restricted(positions, split, combinations, size, seed, label_of, size_key)
    groups = _groups(positions)
    orders = {}
    for k, (tensor, members) in enumerate(groups.items()):
        pool = np.flatnonzero(positions[members[0]].concept[positions[members[0]].labels] >= 0)
        rng = np.random.default_rng(seed if k == 0 else [seed, k])
        orders[tensor] = pool[rng.permutation(len(pool))]
    available = min(len(orders[t]) // len(members) for t, members in groups.items())
    indices = np.zeros((available, len(positions)), dtype=np.int64)
    for tensor, members in groups.items():
        indices[:, members] = orders[tensor][: available * len(members)].reshape(available, len(members))
    if balance:
        return _balanced(_labelled(split, positions, indices, label_of), size, size_key)
    size = available if size is None else size
    if size > available:
        images = ", ".join(f"{len(orders[t])} images of {t}" for t in groups)
        raise UserError(
            f"{size_key}={size}, but the {images} make only {available} queries of {len(positions)} images; "
            f"lower {size_key}"
        )
    return _labelled(split, positions, indices[:size], label_of)


def _balanced(every: QuerySet, size: int | None, size_key: str) -> QuerySet:
    """The first queries of each label, as many of every label (size // labels, the remainder to the
    labels first seen), in the shuffled order."""
    by_label: dict[str, list[int]] = {}
    for i, label in enumerate(every.labels):
        by_label.setdefault(str(label), []).append(i)
    fewest = min(len(rows) for rows in by_label.values())
    size = fewest * len(by_label) if size is None else size
    wanted = [size // len(by_label) + (k < size % len(by_label)) for k in range(len(by_label))]
    if max(wanted) > fewest:
        rarest = min(by_label, key=lambda label: len(by_label[label]))
        raise UserError(
            f"{size_key}={size}: balanced over {len(by_label)} labels needs {max(wanted)} queries of each, but the "
            f"{every.split} images give only {fewest} of label {rarest}; lower {size_key}"
        )
    keep = sorted(i for rows, n in zip(by_label.values(), wanted, strict=True) for i in rows[:n])
    return every.take(np.array(keep, dtype=np.int64))


def _restricted(
    positions: Sequence[Position],
    split: str,
    combinations: Sequence[Sequence[int]],
    size: int | None,
    seed: int,
    label_of: Callable[[Sequence[int]], Term],
    size_key: str,
) -> QuerySet:
    if size is None:
        raise UserError(f"{size_key}: a task with data.combinations needs an explicit number of queries")
    rng = np.random.default_rng(seed)
    pools: dict[tuple[str, int], np.ndarray] = {}
    for tensor, members in _groups(positions).items():
        position = positions[members[0]]
        for value in {c[p] for c in combinations for p in members}:
            found = np.flatnonzero(position.concept[position.labels] == value)
            if len(found) == 0:
                raise UserError(f"data.combinations: the {split} images of {tensor} have no image of concept {value}")
            pools[(tensor, int(value))] = rng.permutation(found)
    taken = dict.fromkeys(pools, 0)

    def draw(tensor: str, value: int) -> int:
        """The next image of this concept; a concept with fewer images than asked for reuses them in order."""
        pool = pools[(tensor, value)]
        index = pool[taken[(tensor, value)] % len(pool)]
        taken[(tensor, value)] += 1
        return int(index)

    per = [size // len(combinations) + (i < size % len(combinations)) for i in range(len(combinations))]
    tuples = [tuple(c) for c, n in zip(combinations, per, strict=True) for _ in range(n)]
    tuples = [tuples[i] for i in rng.permutation(len(tuples))]
    indices = np.array(
        [[draw(positions[p].tensor, v) for p, v in enumerate(t)] for t in tuples], dtype=np.int64
    ).reshape(size, -1)
    return _labelled(split, positions, indices, label_of)
