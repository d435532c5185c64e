"""Query sets of restricted tasks (rsbench's MNIST-EvenOdd and MNIST-Half) built from the YAML alone."""

from __future__ import annotations

from collections import Counter

import pytest

from nesy_gedi.assembly.task import build_queries, load_task
from nesy_gedi.cli import main

from .conftest import ROOT


@pytest.mark.parametrize(
    "task, sizes, pairs, ood_pairs",
    [("mnist_evenodd", (6720, 960, 5040), 16, 84), ("mnist_half", (2940, 420, 1080), 7, 18)],
)
def test_restricted_splits_follow_rsbench(task, sizes, pairs, ood_pairs, mnist):
    config = load_task(ROOT / "tasks" / f"{task}.yaml")
    sets = build_queries(config)[2]
    assert tuple(len(sets[k]) for k in ("train", "id", "ood")) == sizes
    allowed = {tuple(c) for c in config.data.combinations}
    for name, split in (("train", mnist.train), ("id", mnist.test), ("ood", mnist.test)):
        digits = Counter(tuple(split.labels[row]) for row in sets[name].indices)
        assert (set(digits) == allowed) == (name != "ood") and (not set(digits) & allowed) == (name == "ood")
        assert len(digits) == (ood_pairs if name == "ood" else pairs)
        assert len(set(digits.values())) == 1  # evenly spread: 420 / 60 / 60 per pair
        assert all(
            str(label) == str(sum(split.labels[row]))
            for row, label in zip(sets[name].indices, sets[name].labels, strict=True)
        )
    assert len(set(sets["train"].indices.ravel())) == sets["train"].indices.size  # no training image twice


def test_a_combination_of_the_wrong_length_is_a_clear_error(capsys, tmp_path):
    code = main(
        [
            "run",
            str(ROOT / "tasks" / "mnist_half.yaml"),
            "--set",
            "data.combinations=[[0, 1, 2]]",
            "--out",
            str(tmp_path),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "data.combinations=[[0, 1, 2]]: [0, 1, 2] has 3 concepts; a query has 2 images" in err
