"""Query datasets: which MNIST images go into each query, and the query's label.

The standard construction (DeepProbLog's MNIST addition): shuffle the split's images with a seed and
take them in consecutive groups, so 60,000 training images give 30,000 two-image queries; `balance`
keeps as many queries of every label (a true/false task's queries half true). A restricted
task (rsbench's MNIST-EvenOdd, MNIST-Half) lists the allowed tuples of true concepts instead
(`data.combinations`): the queries are spread evenly over those tuples, each image drawn from the
split's images of its concept; its out-of-distribution split uses the other tuples over the same
concepts. A query set is kept as index arrays into the verified MNIST arrays, never as copied images.
"""

from __future__ import annotations

import itertools
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


def ood_combinations(combinations: Sequence[Sequence[int]]) -> list[tuple[int, ...]]:
    """Every tuple over the concepts that occur in `combinations`, except those tuples themselves."""
    values = sorted({v for c in combinations for v in c})
    allowed = {tuple(c) for c in combinations}
    return [t for t in itertools.product(values, repeat=len(combinations[0])) if t not in allowed]


def build_query_set(
    split: Split,
    source: str,
    images_per_query: int,
    size: int | None,
    seed: int,
    label_of: Callable[[Sequence[int]], Term],
    size_key: str,
    combinations: Sequence[Sequence[int]] | None = None,
    balance: bool = False,
) -> QuerySet:
    """`size` labelled queries: consecutive groups of the split's shuffled images (all that fit when
    `size` is None; with `balance`, as many of every label), or, with `combinations`, images of the listed
    true-concept tuples, evenly spread. `label_of` is called once per query, in query order."""
    if combinations is not None:
        return _restricted(split, source, combinations, size, seed, label_of, size_key)
    available = len(split.labels) // images_per_query
    order = np.random.default_rng(seed).permutation(len(split.labels))
    groups = order[: available * images_per_query].reshape(available, images_per_query)
    if balance:
        return _balanced(groups, split, source, size, label_of, size_key)
    size = available if size is None else size
    if size > available:
        raise UserError(
            f"{size_key}={size}, but the {source} split's {len(split.labels)} images make only {available} "
            f"queries of {images_per_query} images; lower {size_key}"
        )
    indices = groups[:size]
    labels = [label_of(split.labels[row].tolist()) for row in indices]
    return QuerySet(source, indices, labels)


def _balanced(
    groups: np.ndarray,
    split: Split,
    source: str,
    size: int | None,
    label_of: Callable[[Sequence[int]], Term],
    size_key: str,
) -> QuerySet:
    """The first groups of each label, as many of every label (size // labels, the remainder to the
    labels first seen), in the shuffled order."""
    labels = [label_of(split.labels[row].tolist()) for row in groups]
    by_label: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(str(label), []).append(i)
    fewest = min(len(rows) for rows in by_label.values())
    size = fewest * len(by_label) if size is None else size
    wanted = [size // len(by_label) + (k < size % len(by_label)) for k in range(len(by_label))]
    if max(wanted) > fewest:
        rarest = min(by_label, key=lambda label: len(by_label[label]))
        raise UserError(
            f"{size_key}={size}: balanced over {len(by_label)} labels needs {max(wanted)} queries of each, but the "
            f"{source} split gives only {fewest} of label {rarest}; lower {size_key}"
        )
    keep = sorted(i for rows, n in zip(by_label.values(), wanted, strict=True) for i in rows[:n])
    return QuerySet(source, groups[keep], [labels[i] for i in keep])


def _restricted(
    split: Split,
    source: str,
    combinations: Sequence[Sequence[int]],
    size: int | None,
    seed: int,
    label_of: Callable[[Sequence[int]], Term],
    size_key: str,
) -> QuerySet:
    if size is None:
        raise UserError(f"{size_key}: a task with data.combinations needs an explicit number of queries")
    rng = np.random.default_rng(seed)
    pools = {int(v): rng.permutation(np.flatnonzero(split.labels == v)) for v in {v for c in combinations for v in c}}
    for value, pool in pools.items():
        if len(pool) == 0:
            raise UserError(f"data.combinations: the {source} split has no image of concept {value}")
    taken = dict.fromkeys(pools, 0)

    def draw(value: int) -> int:
        """The next image of this concept; a concept with fewer images than asked for reuses them in order."""
        pool = pools[value]
        index = pool[taken[value] % len(pool)]
        taken[value] += 1
        return int(index)

    per = [size // len(combinations) + (i < size % len(combinations)) for i in range(len(combinations))]
    tuples = [tuple(c) for c, n in zip(combinations, per, strict=True) for _ in range(n)]
    tuples = [tuples[i] for i in rng.permutation(len(tuples))]
    indices = np.array([[draw(v) for v in t] for t in tuples], dtype=np.int64).reshape(size, -1)
    labels = [label_of(list(t)) for t in tuples]
    return QuerySet(source, indices, labels)
