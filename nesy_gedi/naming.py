"""Naming pretrained clusters: which output of a pretrained network stands for which domain value.

A `nesy-gedi pretrain` run leaves its clusters in an arbitrary order, and the query loss alone, started
from clean but unnamed clusters, is free to bend them into a shortcut rather than rename them (MNIST-Half,
docs/results.md). So before training, a network started from a pretraining run (`networks.<name>.init`,
`naming: true`) has its outputs permuted: the permutation under which the program, reading every training
image as its most probable cluster, answers the most training queries right. The permutation is applied to
the network's last layer, so training, checkpoints and metrics all see named clusters.

With clean clusters and no bijective shortcut (`nesy-gedi shortcuts`), only the intended naming explains
every training query. A bijective shortcut explains them equally well: exactly with clean clusters (the
seed then chooses among the tied namings), within the clusters' impurity otherwise. Every naming the
search finds within `RIVAL_MARGIN` of the best is reported as a rival: the program cannot tell it apart.
For a restricted task (`data.combinations`) the search also tries the best naming through each bijective
shortcut, which a local search can miss; for an unrestricted one, counting shortcuts over every tuple of
the domain can take long (10^4 tuples for 4 images per query), so the search alone decides.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch
from problog.logic import Term

from nesy_gedi.data.queries import QuerySet
from nesy_gedi.logic.query import QueryTemplate
from nesy_gedi.metrics import batched_logits
from nesy_gedi.shortcuts import Shortcuts, find_shortcuts

Permutations = dict[str, tuple[int, ...]]
"""per network: the domain value given to each cluster"""
RIVAL_MARGIN = 0.01
"""a naming that explains at most this share of the training queries fewer than the best is a rival"""


@dataclass(frozen=True)
class Naming:
    permutations: Permutations
    explained: float
    """share of the training queries the program answers right under the chosen naming"""
    rivals: list[tuple[Permutations, float]]
    """other namings found within RIVAL_MARGIN of it, with their shares, best first"""

    def summary(self) -> dict:
        def plain(perms: Permutations) -> dict:
            return {n: list(p) for n, p in perms.items()}

        return {
            "permutations": plain(self.permutations),
            "explained": self.explained,
            "rivals": [{"permutations": plain(p), "explained": e} for p, e in self.rivals],
        }


@torch.no_grad()
def _clusters(net: torch.nn.Module, images: torch.Tensor) -> np.ndarray:
    """Each image's most probable output, in eval mode (the pretraining run's statistics)."""
    was_training = net.training
    found = batched_logits(net, images).argmax(-1).numpy()
    net.train(was_training)
    return found


def _identity(sizes: dict[str, int]) -> Permutations:
    return {n: tuple(range(s)) for n, s in sizes.items()}


class _Scorer:
    """Training queries the program answers right (its most probable answer is the label) when each cluster
    k of network n reads as perm[n][k]."""

    def __init__(self, counts: Counter, names: list[str], template: QueryTemplate) -> None:
        self.counts, self.names, self.template = counts, names, template
        self.known: dict[tuple, int] = {}

    def __call__(self, perm: Permutations) -> int:
        key = tuple(perm[n] for n in self.names)
        if key not in self.known:
            right = 0
            for (clusters, label), count in self.counts.items():
                predicted = {n: [perm[n][k] for k in ks] for n, ks in zip(self.names, clusters, strict=True)}
                if self.template.prediction(predicted[self.names[0]], predicted) == label:
                    right += count
            self.known[key] = right
        return self.known[key]


def _search(
    score: _Scorer, sizes: dict[str, int], movable: list[str], rng: np.random.Generator, restarts: int
) -> dict[tuple, int]:
    """Best-improvement hill climbing over swaps of two values of one movable network, from the identity and
    from seeded random permutations; returns the naming each start ends in (movable networks' permutations)
    with its number of queries answered right."""
    best: dict[tuple, int] = {}
    for restart in range(restarts):
        perm = _identity(sizes)
        if restart:
            perm.update({n: tuple(rng.permutation(sizes[n]).tolist()) for n in movable})
        current = score(perm)
        while True:
            moves = []
            for n in movable:
                for i in range(sizes[n]):
                    for j in range(i + 1, sizes[n]):
                        swapped = list(perm[n])
                        swapped[i], swapped[j] = swapped[j], swapped[i]
                        moves.append({**perm, n: tuple(swapped)})
            top = max(moves, key=score)
            if score(top) <= current:
                break
            perm, current = top, score(top)
        best[tuple(perm[n] for n in movable)] = current
    return best


def _through_shortcuts(
    naming: Permutations, shortcuts: Shortcuts, sizes: dict[str, int], movable: list[str]
) -> list[Permutations]:
    """The naming followed by each bijective shortcut of the task: namings the program cannot tell from it
    (with clean clusters they answer exactly as many queries), which a local search can miss."""
    composed = []
    for alpha in shortcuts.bijective:
        to = {n: dict(zip(shortcuts.values, alpha[n], strict=True)) for n in alpha}
        perm = _identity(sizes)
        perm.update({n: tuple(to[n].get(v, v) for v in naming[n]) for n in movable})
        composed.append(perm)
    return composed


def name_clusters(
    predicates: dict[str, torch.nn.Module],
    heads: dict[str, torch.nn.Linear],
    sizes: dict[str, int],
    template: QueryTemplate,
    train_set: QuerySet,
    combinations: list | None,
    tensors: dict[str, torch.Tensor],
    seed: int,
    restarts: int = 20,
) -> Naming:
    """Find the naming of the clusters of the networks in `heads` under which the program, reading each
    training image as the output its predicate makes most probable, answers the most training queries (the
    other networks are read as they are); apply it to the rows of those networks' last layers. For a
    restricted task the best naming followed by each bijective shortcut is scored too."""
    names = sorted(predicates)
    readers = template.readers
    clusters = {}
    for n in names:  # each network's clusters on the positions it reads (the others are never asked: 0)
        read = readers[n]
        source = tensors[train_set.tensors[read[0]]]
        flat = torch.as_tensor(train_set.indices[:, read].ravel(), device=source.device)
        clusters[n] = np.zeros(train_set.indices.shape, dtype=np.int64)
        clusters[n][:, read] = _clusters(predicates[n], source[flat]).reshape(len(train_set), len(read))
    counts: Counter[tuple[tuple, Term]] = Counter(
        (tuple(tuple(clusters[n][q].tolist()) for n in names), label) for q, label in enumerate(train_set.labels)
    )
    rng = np.random.default_rng(seed)
    movable = sorted(heads)
    score = _Scorer(counts, names, template)
    found = _search(score, sizes, movable, rng, restarts)
    best = dict(zip(movable, max(found, key=found.get), strict=True))
    if combinations:
        shortcuts = find_shortcuts(template.program, template, sizes, [tuple(c) for c in combinations])
        for perm in _through_shortcuts(best, shortcuts, sizes, movable):
            found[tuple(perm[n] for n in movable)] = score(perm)
    most = max(found.values())
    # among namings that answer exactly as many queries, the seed chooses: over seeds, each is taken as often
    tied = [p for p, right in found.items() if right == most]
    pick = tied[rng.integers(len(tied))]
    chosen = dict(zip(movable, pick, strict=True))
    rivals = [
        (dict(zip(movable, p, strict=True)), right / len(train_set))
        for p, right in sorted(found.items(), key=lambda item: -item[1])
        if p != pick and right >= most - RIVAL_MARGIN * len(train_set)
    ]
    with torch.no_grad():
        for n, head in heads.items():
            order = torch.as_tensor(np.argsort(chosen[n]), device=head.weight.device)
            head.weight.copy_(head.weight[order])
            head.bias.copy_(head.bias[order])
    return Naming(chosen, most / len(train_set), rivals)


def describe(naming: Naming) -> str:
    lines = [f"naming {n}: cluster -> value {list(p)}" for n, p in naming.permutations.items()]
    lines.append(f"the program answers {naming.explained:.1%} of the training queries under this naming")
    for perms, explained in naming.rivals:
        lines.append(
            f"rival naming {'; '.join(f'{n}: {list(p)}' for n, p in perms.items())} answers {explained:.1%}: "
            "the program cannot tell it apart (a bijective shortcut, `nesy-gedi shortcuts`), so grounding is a guess"
        )
    return "\n".join(lines)
