"""The engine benchmark still builds its queries with the current API (it broke once, unnoticed, when
query() changed) and its two engines agree on them."""

from __future__ import annotations

import importlib

import torch

from nesy_gedi.data.images import to_tensor

from .conftest import ROOT


def test_engine_benchmark_builds_queries_both_engines_answer_alike(mnist, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    monkeypatch.chdir(ROOT)
    bench = importlib.import_module("engines")
    images, labels = to_tensor(mnist.train.images[:16]), mnist.train.labels[:16]
    engines, base, queries = bench.setup("mnist_multi_addition_carry.pl", 2, 2, 4, images, labels, "answers")
    assert len(base) == 2 and len(queries) == 4
    with torch.no_grad():
        dpl = engines["deepproblog"].probabilities(base)
        ours = engines["compiled"].probabilities(base)
    assert torch.allclose(dpl, ours, atol=1e-5) and (ours > 0).all()


def test_the_floor_benchmark_times_the_same_computation(monkeypatch):
    """bench/floor.py's plain-torch step computes the toolkit's query loss (it asserts so before timing)."""
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    floor = importlib.import_module("floor")
    for n in (1, 4):
        ours, plain = floor.measure(n, batch=4, rounds=1, steps=1)
        assert ours > 0 and plain > 0
