"""Concept supervision (`networks.<name>.concept_labels`): which images, how they train, how a run is classed."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nesy_gedi.assembly.task import assemble, load_data, load_task
from nesy_gedi.commands.run import run_task
from nesy_gedi.data.mnist import default_cache_dir
from nesy_gedi.training.rundir import RunDir

from .conftest import ROOT

SMALL = {
    "data.train_size": "400",
    "data.test_size": "50",
    "train.iterations": "30",
    "train.checkpoint_every": "30",
    "train.threads": "1",
}


def labelled(k: int, seed: int = 0) -> tuple:
    config = load_task(ROOT / "tasks" / "mnist_add.yaml", {**SMALL, "networks.mnist_net.concept_labels": str(k)})
    config.seed = seed
    return config, load_data(config, torch.device("cpu"), default_cache_dir())


def test_k_training_images_per_value_chosen_by_the_seed(mnist):
    config, data = labelled(3)
    chosen = data.concept_labels["mnist_net"]
    assert chosen.per_value == 3 and torch.bincount(chosen.concepts, minlength=10).tolist() == [3] * 10
    assert len(set(chosen.indices.tolist())) == 30  # distinct images
    train_images = set(data.train_set.indices.ravel().tolist())
    assert set(chosen.indices.tolist()) <= train_images  # from the training queries' images: never the test split
    assert data.train_set.tensors[0].endswith("_train")
    true = mnist.train.labels[chosen.indices]  # the concepts are the images' true digits
    assert np.array_equal(true, chosen.concepts.numpy())
    assert torch.equal(chosen.images, data.tensors[data.train_set.tensors[0]][torch.as_tensor(chosen.indices)])
    again = labelled(3)[1].concept_labels["mnist_net"]
    other = labelled(3, seed=1)[1].concept_labels["mnist_net"]
    assert np.array_equal(again.indices, chosen.indices) and not np.array_equal(other.indices, chosen.indices)
    assert labelled(0)[1].concept_labels == {}


def test_the_term_is_the_weighted_cross_entropy_of_labelled_images_read_in_the_one_call(mnist):
    config, _ = labelled(2)
    config.networks["mnist_net"].concept_weight = 0.5
    task = assemble(config, torch.device("cpu"), default_cache_dir())
    chosen = task.learner.concept_labels["mnist_net"]
    calls = []
    net = task.engine.networks["mnist_net"]
    net.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    rows = np.arange(4)  # 4 queries: 8 images, so 8 of the 20 labelled ones
    terms, _ = task.learner.loss_terms(rows, step=7)
    assert calls == [16]  # one call: the queries' 8 images and 8 labelled images
    images, concepts = chosen.batch(config.seed, 7, 8)
    assert len(concepts) == 8 and set(concepts.tolist()) <= set(chosen.concepts.tolist())
    assert (images[:, None] == chosen.images[None]).flatten(2).all(-1).any(1).all()  # each one of the chosen
    with torch.no_grad():
        net.eval()  # compare without batch-norm noise: the mnist_lenet of this task has none
        expected = 0.5 * F.cross_entropy(net(images), concepts)
    assert float(terms["concepts_mnist_net"].detach()) == pytest.approx(float(expected), rel=1e-5)
    big = chosen.batch(config.seed, 7, 100)  # more asked than labelled: all of them
    assert torch.equal(big[1], chosen.concepts)


def test_a_run_with_concept_labels_is_classed_and_recorded_as_such(mnist, tmp_path):
    config = load_task(
        ROOT / "tasks" / "mnist_add.yaml",
        {**SMALL, "networks.mnist_net.concept_labels": "2", "eval.grounded_at": "0.0"},
    )
    metrics = run_task(config, RunDir(tmp_path), command="test")
    assert metrics["grounding"] == "grounded with labels"
    assert metrics["concept_labels_used"] == 20
    assert metrics["concept_labels"]["mnist_net"]["per_concept"] == [2] * 10
    saved = np.load(tmp_path / "queries.npz")
    assert len(saved["concept_labels_mnist_net"]) == 20
    logged = json.loads((tmp_path / "train_log.jsonl").read_text().splitlines()[-1])
    assert "loss_concepts_mnist_net" in logged
    assert "concept_labels_used" in (tmp_path / "report.md").read_text()
