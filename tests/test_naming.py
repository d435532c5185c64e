"""Naming pretrained clusters by the program (`networks.<name>.naming`), on networks whose clusters are a
known permutation of the true digits."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest
import torch
from torch import nn

from nesy_gedi.analysis.naming import (
    _exhaustive,
    _is_bijective_shortcut,
    _Scorer,
    _search,
    _through_shortcuts,
    name_clusters,
)
from nesy_gedi.analysis.shortcuts import find_shortcuts
from nesy_gedi.assembly.task import load_task
from nesy_gedi.data.queries import QuerySet
from nesy_gedi.logic.program import Program
from nesy_gedi.logic.query import QueryTemplate

from .conftest import ROOT


class Scrambled(nn.Module):
    """Reads the digit written in an image's first pixel; cluster k holds the digit order[k]: clean but
    unnamed clusters, as a pretraining run leaves them."""

    def __init__(self, order: list[int]) -> None:
        super().__init__()
        self.head = nn.Linear(len(order), len(order))
        with torch.no_grad():
            self.head.weight.copy_(10 * torch.eye(len(order))[order])
            self.head.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(nn.functional.one_hot(x[:, 0, 0, 0].long(), len(self.head.weight)).float())


def named(
    task: str, order: list[int], misread: int = 0, labels: int = 0, seed: int = 0, claimed: list[int] | None = None
) -> tuple[Scrambled, object, torch.Tensor]:
    """Name the clusters of 10 queries per training pair of the task, the first `misread` images in the
    wrong cluster (impure clusters), with `labels` labelled images per digit; `claimed`: the true concepts the
    query set records for digit d are claimed[d] (labels that lie)."""
    config = load_task(ROOT / "tasks" / task)
    template = QueryTemplate(Program(config.program), **config.query.model_dump())
    combos = [tuple(c) for c in config.data.combinations] * 10
    digits = torch.tensor([d for c in combos for d in c])
    images = torch.zeros(len(digits), 1, 28, 28)
    images[:, 0, 0, 0] = digits.float()
    images[:misread, 0, 0, 0] = (digits[:misread] + 1) % len(order)
    indices = np.arange(len(digits)).reshape(len(combos), 2)
    concepts = np.array(combos) if claimed is None else np.array(claimed)[np.array(combos)]
    train = QuerySet("train", ("t", "t"), indices, concepts, [template.label(list(c)) for c in combos])
    net = Scrambled(order)
    naming = name_clusters(
        {"mnist_net": net},
        {"mnist_net": net.head},
        {"mnist_net": len(order)},
        template,
        train,
        config.data.combinations,
        {"t": images},
        seed=seed,
        labels={"mnist_net": labels},
    )
    return net, naming, images


def test_clean_clusters_of_mnist_half_get_their_only_naming():
    """MNIST-Half has no bijective shortcut: the program names clean clusters correctly, without a tie."""
    net, naming, images = named("mnist_half.yaml", [3, 0, 4, 1, 2])
    assert naming.explained == 1.0 and naming.rivals == []
    assert naming.permutations["mnist_net"] == (3, 0, 4, 1, 2)
    assert torch.equal(net(images).argmax(-1), images[:, 0, 0, 0].long())


def test_a_bijective_shortcut_is_a_rival_of_impure_clusters_too():
    """With images in the wrong cluster the two namings need not tie exactly; both are kept."""
    net, naming, images = named("mnist_evenodd.yaml", [7, 2, 9, 0, 5, 1, 8, 3, 6, 4], misread=1)
    assert 0.99 < naming.explained < 1.0 and len(naming.rivals) == 1 and naming.rivals[0][2] is True
    rival = naming.rivals[0][0]["mnist_net"]
    assert {naming.permutations["mnist_net"], rival} == {
        (7, 2, 9, 0, 5, 1, 8, 3, 6, 4),
        tuple((d + 5) % 10 for d in (7, 2, 9, 0, 5, 1, 8, 3, 6, 4)),
    }


def test_a_bijective_shortcut_shows_as_a_tie():
    """MNIST-EvenOdd's bijective shortcut d -> (d + 5) mod 10 explains every training pair as well."""
    order = [7, 2, 9, 0, 5, 1, 8, 3, 6, 4]
    net, naming, images = named("mnist_evenodd.yaml", order)
    assert naming.explained == 1.0 and [(share, shortcut) for _, share, shortcut, _ in naming.rivals] == [(1.0, True)]
    assert naming.search == "exhaustive"
    found = net(images).argmax(-1)
    digits = images[:, 0, 0, 0].long()  # no image misread here
    assert torch.equal(found, digits) or torch.equal(found, (digits + 5) % 10)


ORDER = [7, 2, 9, 0, 5, 1, 8, 3, 6, 4]


def test_one_label_per_digit_picks_the_intended_naming_among_exact_rivals():
    """MNIST-EvenOdd: the intended naming and d -> (d + 5) mod 10 tie on the queries; without labels the seed
    chooses (seeds 0-2 fall on both sides), one labelled image per digit picks the intended naming on each
    of them, and the rival stays reported."""
    unsupervised = {named("mnist_evenodd.yaml", ORDER, seed=s)[1].permutations["mnist_net"] for s in range(3)}
    assert len(unsupervised) == 2
    for seed in range(3):
        net, naming, images = named("mnist_evenodd.yaml", ORDER, labels=1, seed=seed)
        assert naming.permutations["mnist_net"] == tuple(ORDER) and naming.explained == 1.0
        assert naming.labels == {"mnist_net": 10} and naming.label_agreement == 1.0
        [(rival, share, shortcut, agreement)] = naming.rivals
        assert rival["mnist_net"] == tuple((d + 5) % 10 for d in ORDER) and share == 1.0 and shortcut is True
        assert agreement == 0.0
        assert torch.equal(net(images).argmax(-1), images[:, 0, 0, 0].long())
    summary = naming.summary()
    assert summary["labelled_images"] == {"mnist_net": 10} and summary["rivals"][0]["label_agreement"] == 0.0


def test_labels_choose_only_among_namings_the_program_cannot_tell_apart():
    """Labels that claim the shifted digits pick the shifted naming on MNIST-EvenOdd (a tie the program cannot
    break), but on MNIST-Half, where the program has one best naming, lying labels do not override it."""
    shifted = [(d + 5) % 10 for d in range(10)]
    _, naming, _ = named("mnist_evenodd.yaml", ORDER, labels=1, claimed=shifted)
    assert naming.permutations["mnist_net"] == tuple((d + 5) % 10 for d in ORDER) and naming.label_agreement == 1.0
    half = [3, 0, 4, 1, 2]
    _, naming, _ = named("mnist_half.yaml", half, labels=2, claimed=[1, 2, 3, 4, 0])
    assert naming.permutations["mnist_net"] == tuple(half) and naming.rivals == []
    assert naming.labels == {"mnist_net": 10} and naming.label_agreement == 0.0


def test_labels_without_a_pretrained_network_are_one_clear_message(capsys):
    from nesy_gedi.cli import main

    assert main(["run", str(ROOT / "tasks" / "mnist_half.yaml"), "--set", "networks.mnist_net.naming_labels=1"]) == 2
    assert "networks.mnist_net.naming_labels" in capsys.readouterr().err


@pytest.mark.parametrize("naming", [True, False])
def test_the_naming_switch_is_a_task_key(tmp_path, naming):
    config = load_task(ROOT / "tasks" / "mnist_half.yaml", {"networks.mnist_net.naming": str(naming).lower()})
    assert config.networks["mnist_net"].naming is naming


def test_the_best_naming_is_also_tried_through_each_bijective_shortcut():
    """A local search can miss the shortcut's naming (it did on MNIST-EvenOdd seed 0); composing the best
    naming with the task's bijective shortcuts finds it whatever the search did."""
    config = load_task(ROOT / "tasks" / "mnist_evenodd.yaml")
    template = QueryTemplate(Program(config.program), **config.query.model_dump())
    sizes = {"mnist_net": 10}
    shortcuts = find_shortcuts(template.program, template, sizes, [tuple(c) for c in config.data.combinations])
    naming = {"mnist_net": (7, 2, 9, 0, 5, 1, 8, 3, 6, 4)}
    composed = _through_shortcuts(naming, shortcuts, sizes, ["mnist_net"])
    assert composed == [{"mnist_net": tuple((v + 5) % 10 for v in naming["mnist_net"])}]


def noisy_counts(program: str, combos: list[tuple], domain: int, seed: int) -> tuple[Counter, QueryTemplate]:
    """Cluster-tuple counts of 10 queries per training pair, clusters a permutation of the digits with 30 %
    of the images in a random cluster (as naming.py builds them from a network's outputs)."""
    template = QueryTemplate(
        Program(ROOT / "programs" / program), "addition(A, B, S)", "S", {"A": "image", "B": "image"}
    )
    rng = np.random.default_rng(seed)
    order = rng.permutation(domain)
    counts: Counter = Counter()
    for c in combos:
        for _ in range(10):
            clusters = tuple(int(order[d] if rng.random() > 0.3 else rng.integers(domain)) for d in c)
            counts[((clusters,), template.label(list(c)))] += 1
    return counts, template


def test_exhaustive_naming_finds_the_best_where_hill_climbing_from_the_identity_stops_short():
    """MNIST-Chains' pairs, impure clusters (seed 1): best-improvement swaps from the identity stop at a
    naming answering 50 of 140 queries; scoring every naming finds one answering 72."""
    combos = [
        (0, 0),
        (1, 2),
        (2, 1),
        (2, 3),
        (3, 2),
        (4, 5),
        (5, 4),
        (4, 6),
        (6, 4),
        (7, 8),
        (8, 7),
        (7, 9),
        (9, 7),
        (9, 9),
    ]
    counts, template = noisy_counts("mnist_addition.pl", combos, 10, seed=1)
    score = _Scorer(counts, ["mnist_net"], template)
    climbed = max(_search(score, {"mnist_net": 10}, ["mnist_net"], np.random.default_rng(0), 1).values())
    every = _exhaustive(counts, template, "mnist_net", 10, [0, 1], 0)
    best = max(every.values())
    assert (climbed, best) == (50, 72)
    assert all(score({"mnist_net": perm}) == right for perm, right in every.items())  # the tables agree


def test_exhaustive_naming_equals_brute_force_over_every_naming():
    combos = [(0, 0), (0, 1), (1, 0), (2, 3), (3, 2), (2, 4), (4, 2)]
    for seed in range(3):
        counts, template = noisy_counts("mnist_half_addition.pl", combos, 5, seed)
        score = _Scorer(counts, ["mnist_net"], template)
        brute = max(score({"mnist_net": perm}) for perm in itertools.permutations(range(5)))
        assert max(_exhaustive(counts, template, "mnist_net", 5, [0, 1], 0).values()) == brute


def test_a_rival_is_called_a_bijective_shortcut_only_when_it_is_one():
    evenodd = load_task(ROOT / "tasks" / "mnist_evenodd.yaml")
    template = QueryTemplate(Program(evenodd.program), **evenodd.query.model_dump())
    named = (7, 2, 9, 0, 5, 1, 8, 3, 6, 4)
    shifted = tuple((v + 5) % 10 for v in named)
    swapped = (2, 7, 9, 0, 5, 1, 8, 3, 6, 4)  # two digits exchanged: no shortcut of EvenOdd
    combos = [tuple(c) for c in evenodd.data.combinations]
    assert _is_bijective_shortcut(template, "mnist_net", named, shifted, combos)
    assert not _is_bijective_shortcut(template, "mnist_net", named, swapped, combos)


def test_two_pretrained_networks_are_named_together():
    """A two-network task whose networks both start from pretraining (digits beside garments): the naming
    searches both networks' permutations at once (the single-network exhaustive search does not apply)."""
    program = Program(ROOT / "programs" / "mnist_fashion_afford.pl")
    template = QueryTemplate(program, "afford(A, B)", None, {"A": "image", "B": "image"})
    rng = np.random.default_rng(0)
    combos = [(int(d), int(g)) for d, g in rng.integers(0, 10, (400, 2))]
    images = torch.zeros(2 * len(combos), 1, 28, 28)
    images[:, 0, 0, 0] = torch.tensor([v for c in combos for v in c]).float()
    indices = np.arange(2 * len(combos)).reshape(len(combos), 2)
    train = QuerySet("train", ("t", "t"), indices, np.array(combos), [template.label(list(c)) for c in combos])
    digit, item = Scrambled([3, 1, 4, 0, 5, 9, 2, 6, 8, 7]), Scrambled([9, 8, 7, 6, 5, 4, 3, 2, 1, 0])
    naming = name_clusters(
        {"digit_net": digit, "item_net": item},
        {"digit_net": digit.head, "item_net": item.head},
        {"digit_net": 10, "item_net": 10},
        template,
        train,
        None,
        {"t": images},
        seed=0,
    )
    assert naming.explained == 1.0
    assert set(naming.permutations) == {"digit_net", "item_net"}
