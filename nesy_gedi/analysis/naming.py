"""Naming pretrained clusters: which output of a pretrained network stands for which domain value.

A `nesy-gedi pretrain` run leaves its clusters in an arbitrary order, and the query loss alone, started
from clean but unnamed clusters, is free to bend them into a shortcut rather than rename them (MNIST-Half,
docs/results.md). So before training, a network started from a pretraining run (`networks.<name>.init`,
`naming: true`) has its outputs permuted: the permutation under which the program, reading every training
image as its most probable cluster, answers the most training queries right. The permutation is applied to
the network's last layer, so training, checkpoints and metrics all see named clusters.

The search is exact where it can be: when one network is named, its domain has at most 10 values and a
query gives it at most 3 images, every naming (10! at most) is scored at once from a table of cluster-tuple
counts per label, so the best naming is certain (hill climbing, which this replaced there, stopped in a
local optimum on a restricted addition task). Otherwise best-improvement hill climbing over swaps from the
identity and seeded random starts searches, and for a restricted task (`data.combinations`) the best naming
followed by each bijective shortcut is scored too.

With clean clusters and no bijective shortcut (`nesy-gedi shortcuts`), only the intended naming explains
every training query. A bijective shortcut explains them equally well: exactly with clean clusters (the
seed then chooses among the tied namings), within the clusters' impurity otherwise. Every naming within
`RIVAL_MARGIN` of the best is reported as a rival, and called a bijective shortcut only when it is one (the
map from the chosen naming to the rival keeps the program's answer on every training combination).

A few labels break such ties (`networks.<name>.naming_labels: k`): k training images per domain value, drawn
with the run's seed, are read with their true concepts, and among the namings within `RIVAL_MARGIN` of the
best the one that reads the most of them right is chosen (then the most queries answered, then the seed).
They choose among namings only; they never enter a loss.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from problog.logic import Term

from nesy_gedi.analysis.metrics import batched_logits
from nesy_gedi.analysis.shortcuts import Shortcuts, find_shortcuts, training_combinations
from nesy_gedi.data.queries import QuerySet
from nesy_gedi.logic.query import QueryTemplate

Permutations = dict[str, tuple[int, ...]]
"""per network: the domain value given to each cluster"""
RIVAL_MARGIN = 0.01
"""a naming that explains at most this share of the training queries fewer than the best is a rival"""
EXHAUSTIVE = (10, 3)
"""every naming is scored when one network is named, its domain has at most 10 values (10! namings) and a
query gives it at most 3 images; larger problems fall back to hill climbing"""
RIVALS_KEPT = 20
"""the most rivals reported"""


@dataclass(frozen=True)
class Naming:
    permutations: Permutations
    explained: float
    """share of the training queries the program answers right under the chosen naming"""
    rivals: list[tuple[Permutations, float, bool | None, float | None]]
    """other namings within RIVAL_MARGIN of it, with their shares, whether each is the chosen naming followed
    by a bijective shortcut of the task (None: not checked, several networks named) and the share of the
    labelled images it reads right (None: no labels), best first"""
    search: str
    """`exhaustive` (every naming scored: the best is certain) or `hill climbing` (a heuristic)"""
    labels: dict[str, int]
    """labelled images used per network (`naming_labels` × domain values, fewer where the training images
    lack a value); empty: unsupervised"""
    label_agreement: float | None
    """share of the labelled images the chosen naming reads as their label (None: no labels)"""
    expected_ceiling: float
    """share of the training queries whose label the program's most probable answer can be, under the chosen
    naming's reading: 1 unless the labels are drawn from the program's own distribution, where it is the mean
    probability of the most probable answer (no concept label needed)"""

    def summary(self) -> dict:
        def plain(perms: Permutations) -> dict:
            return {n: list(p) for n, p in perms.items()}

        return {
            "permutations": plain(self.permutations),
            "explained": self.explained,
            "search": self.search,
            "labelled_images": self.labels,
            "label_agreement": self.label_agreement,
            "expected_ceiling": self.expected_ceiling,
            "rivals": [
                {"permutations": plain(p), "explained": e, "bijective_shortcut": b, "label_agreement": a}
                for p, e, b, a in self.rivals
            ],
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


def _permutation_blocks(size: int) -> Iterator[np.ndarray]:
    """Every permutation of range(size), in blocks that share the first value (9! rows each for 10)."""
    for first in range(size):
        rest = [v for v in range(size) if v != first]
        block = np.array(list(itertools.permutations(rest)), dtype=np.int64).reshape(-1, size - 1)
        yield np.column_stack([np.full(len(block), first), block])


def _exhaustive(
    counts: Counter, template: QueryTemplate, network: str, size: int, read: list[int], width: int
) -> dict[tuple, int] | None:
    """Every naming of a lone network scored at once: per distinct tuple of clusters its queries read, a
    table of right answers for every tuple of concepts (the program's most probable answer against each
    label), summed over the tuples for all size! namings. The namings within `width` queries of the best
    (at most RIVALS_KEPT + 1), with their numbers of right answers; None when the problem is too large."""
    if size > EXHAUSTIVE[0] or len(read) > EXHAUSTIVE[1]:
        return None
    labels_of: dict[tuple, Counter] = {}
    for (key, label), count in counts.items():
        labels_of.setdefault(tuple(key[0][p] for p in read), Counter())[str(label)] += count
    concept_tuples = list(itertools.product(range(size), repeat=len(read)))
    answer = []
    for tup in concept_tuples:
        values = [0] * template.images_per_query
        for p, v in zip(read, tup, strict=True):
            values[p] = v
        answer.append(str(template.prediction(values, {network: values})))
    tables = {t: np.array([labels[a] for a in answer], dtype=np.int64) for t, labels in labels_of.items()}
    powers = size ** np.arange(len(read) - 1, -1, -1)
    kept: dict[tuple, int] = {}
    for perms in _permutation_blocks(size):
        right = np.zeros(len(perms), dtype=np.int64)
        for tup, table in tables.items():
            right += table[perms[:, list(tup)] @ powers]
        best = max(right.max(), max(kept.values(), default=0))
        rows = np.flatnonzero(right >= best - width)
        rows = rows[np.argsort(-right[rows], kind="stable")[: RIVALS_KEPT + 1]]
        for row in rows:
            kept[tuple(perms[row].tolist())] = int(right[row])
        top = max(kept.values())
        kept = dict(sorted(((p, r) for p, r in kept.items() if r >= top - width), key=lambda x: -x[1]))
        kept = dict(list(kept.items())[: RIVALS_KEPT + 1])
    return kept


def _is_bijective_shortcut(
    template: QueryTemplate, network: str, chosen: tuple[int, ...], rival: tuple[int, ...], combinations: list
) -> bool:
    """Whether the rival is the chosen naming followed by a bijective shortcut: the map chosen value ->
    rival value keeps the program's outcome on every training combination (as `nesy-gedi shortcuts`)."""
    alpha = dict(zip(chosen, rival, strict=True))
    return all(
        template.outcome(list(c), {network: [alpha[v] for v in c]}) == template.outcome(list(c)) for c in combinations
    )


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


def _labelled_images(
    clusters: np.ndarray, train_set: QuerySet, read: list[int], size: int, k: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """k distinct training images per domain value (fewer if the training queries hold fewer), drawn with
    `rng`: their clusters and true concepts."""
    chosen = train_set.labelled(read, size, k, rng)
    return clusters[:, read].ravel()[chosen], train_set.concepts[:, read].ravel()[chosen]


def name_clusters(
    predicates: dict[str, torch.nn.Module],
    heads: dict[str, torch.nn.Linear],
    sizes: dict[str, int],
    template: QueryTemplate,
    train_set: QuerySet,
    combinations: list | None,
    tensors: dict[str, torch.Tensor],
    seed: int,
    labels: dict[str, int] | None = None,
    restarts: int = 20,
    sampled: bool = False,
) -> Naming:
    """Find the naming of the clusters of the networks in `heads` under which the program, reading each
    training image as the output its predicate makes most probable, answers the most training queries (the
    other networks are read as they are); apply it to the rows of those networks' last layers. For a
    restricted task the best naming followed by each bijective shortcut is scored too. `labels`: per network,
    k labelled images per domain value that choose among the namings within RIVAL_MARGIN of the best.
    `sampled`: the labels are drawn from the program's distribution (their expected ceiling is computed)."""
    names = sorted(predicates)
    readers = template.readers
    clusters = {}
    for n in names:  # each network's clusters on the positions it reads (the others are never asked: 0)
        read = readers[n]
        clusters[n] = np.zeros(train_set.indices.shape, dtype=np.int64)
        found = _clusters(predicates[n], train_set.images(tensors, read))
        clusters[n][:, read] = found.reshape(len(train_set), len(read))
    counts: Counter[tuple[tuple, Term]] = Counter(
        (tuple(tuple(clusters[n][q].tolist()) for n in names), label) for q, label in enumerate(train_set.labels)
    )
    rng = np.random.default_rng(seed)
    movable = sorted(heads)
    width = int(RIVAL_MARGIN * len(train_set))
    lone = movable == names and len(names) == 1  # one network named, no other read as it is
    every = _exhaustive(counts, template, names[0], sizes[names[0]], readers[names[0]], width) if lone else None
    search = "exhaustive" if every is not None else "hill climbing"
    found = {(perm,): right for perm, right in every.items()} if every is not None else None
    if found is None:
        score = _Scorer(counts, names, template)
        found = _search(score, sizes, movable, rng, restarts)
        best = dict(zip(movable, max(found, key=found.get), strict=True))
        if combinations:
            shortcuts = find_shortcuts(template.program, template, sizes, [tuple(c) for c in combinations])
            for perm in _through_shortcuts(best, shortcuts, sizes, movable):
                found[tuple(perm[n] for n in movable)] = score(perm)
    most = max(found.values())
    draw = np.random.default_rng([seed, 1])  # the labelled images: their own stream, the same for every naming
    labelled = {
        n: _labelled_images(clusters[n], train_set, readers[n], sizes[n], k, draw)
        for n in movable
        if (k := (labels or {}).get(n, 0))
    }
    total = sum(len(concepts) for _, concepts in labelled.values())

    def agreement(pick: tuple) -> float | None:
        if not total:
            return None
        perm = dict(zip(movable, pick, strict=True))
        return sum(int((np.array(perm[n])[c] == v).sum()) for n, (c, v) in labelled.items()) / total

    close = {p: right for p, right in found.items() if right >= most - RIVAL_MARGIN * len(train_set)}
    # labels rank the namings the program cannot tell apart; among namings equal in labels and queries
    # answered, the seed chooses: over seeds, each is taken as often
    rank = {p: (agreement(p) or 0.0, right) for p, right in close.items()}
    tied = [p for p in close if rank[p] == max(rank.values())]
    pick = tied[rng.integers(len(tied))]
    chosen = dict(zip(movable, pick, strict=True))
    others = sorted(((p, right) for p, right in close.items() if p != pick), key=lambda item: -item[1])
    trained = training_combinations(template, sizes, combinations)
    rivals = [
        (
            dict(zip(movable, p, strict=True)),
            right / len(train_set),
            _is_bijective_shortcut(template, movable[0], pick[0], p[0], trained) if lone else None,
            agreement(p),
        )
        for p, right in others[:RIVALS_KEPT]
    ]
    used = {n: len(concepts) for n, (_, concepts) in labelled.items()}
    ceiling = _expected_ceiling(counts, names, {**_identity(sizes), **chosen}, template) if sampled else 1.0
    naming = Naming(chosen, found[pick] / len(train_set), rivals, search, used, agreement(pick), ceiling)
    apply_naming(naming, heads)
    return naming


@torch.no_grad()
def apply_naming(naming: Naming, heads: dict[str, torch.nn.Linear]) -> None:
    """Permute the rows of each named network's last layer, so that output i stands for domain value i. A
    naming depends only on the pretrained weights and the run's seed, so every start of a run (restarts)
    takes the one found once."""
    for n, head in heads.items():
        order = torch.as_tensor(np.argsort(naming.permutations[n]), device=head.weight.device)
        head.weight.copy_(head.weight[order])
        head.bias.copy_(head.bias[order])


def _expected_ceiling(counts: Counter, names: list[str], perm: Permutations, template: QueryTemplate) -> float:
    """Mean over the training queries of the probability of the program's most probable answer, each query
    read through `perm`: the share of labels drawn from the program's distribution that any naming can
    explain."""
    if not template.program.probabilistic:
        return 1.0
    best: dict[tuple, float] = {}
    total = 0.0
    for (clusters, _), count in counts.items():
        if clusters not in best:
            predicted = {n: [perm[n][k] for k in ks] for n, ks in zip(names, clusters, strict=True)}
            found = template.distribution(predicted[names[0]], predicted)
            best[clusters] = max(found.values()) / sum(found.values())
        total += best[clusters] * count
    return total / sum(counts.values())


def describe(naming: Naming) -> str:
    lines = [f"naming {n}: cluster -> value {list(p)}" for n, p in naming.permutations.items()]
    lines.append(f"the program answers {naming.explained:.1%} of the training queries under this naming")
    lines.append(
        f"search: {naming.search}" + (" (the best naming is certain)" if naming.search == "exhaustive" else "")
    )
    if naming.labels:
        images = ", ".join(f"{n}: {m}" for n, m in naming.labels.items())
        lines.append(
            f"labelled images ({images}) chose among the namings within {RIVAL_MARGIN:.0%} of the best: this one "
            f"reads {naming.label_agreement:.0%} of them as labelled"
        )
    for perms, explained, shortcut, agrees in naming.rivals:
        rival = f"rival naming {'; '.join(f'{n}: {list(p)}' for n, p in perms.items())} answers {explained:.1%}"
        rival += f" and reads {agrees:.0%} of the labelled images right: " if agrees is not None else ": "
        doubt = "the labels chose between them" if naming.labels else "grounding is a guess"
        if shortcut:
            rival += "it is this naming followed by a bijective shortcut (`nesy-gedi shortcuts`): the program "
            rival += f"cannot tell them apart, so {doubt}"
        elif shortcut is None:
            rival += "the program may not tell them apart (`nesy-gedi shortcuts`), so "
            rival += "the labels chose" if naming.labels else "the naming is uncertain"
        else:
            rival += "no shortcut of the task, but the clusters are too impure to rule it out: "
            rival += "the labels chose" if naming.labels else "the naming is uncertain"
        lines.append(rival)
    return "\n".join(lines)
