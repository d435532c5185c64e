"""Training methods on small slices of real MNIST: registry, one backward for all terms, logs, init, resume."""

from __future__ import annotations

import copy
import json
import re

import numpy as np
import pytest
import torch

from nesy_gedi.assembly.config import PretrainConfig
from nesy_gedi.assembly.task import assemble, load_task
from nesy_gedi.cli import main
from nesy_gedi.commands.compare import label
from nesy_gedi.commands.pretrain import pretrain
from nesy_gedi.commands.run import run_task
from nesy_gedi.data.images import to_tensor
from nesy_gedi.data.mnist import default_cache_dir, load_mnist
from nesy_gedi.methods import METHODS, TrainBatch
from nesy_gedi.networks import build_network
from nesy_gedi.training.checkpoint import NETWORK
from nesy_gedi.training.learners import QueryLearner
from nesy_gedi.training.loop import Trainer
from nesy_gedi.training.rundir import RunDir

from .conftest import ROOT, comparable, interrupt_training_at
from .test_pretrain import MNIST_SMALL

TASK = ROOT / "tasks" / "mnist_add_gedi.yaml"
TINY = {
    "data.train_size": "64",
    "data.test_size": "20",
    "train.iterations": "4",
    "train.batch_size": "8",
    "train.checkpoint_every": "2",
    "sgld.steps": "2",
    "sgld.buffer_size": "64",
    "sgld.negatives": "16",
    "train.threads": "1",  # bit-identical reruns need a fixed thread count (threads.py adapts to the load)
}


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A few steps of `nesy-gedi pretrain` on MNIST with the joint task's network."""
    folder = tmp_path_factory.mktemp("pre")
    config = load_task(ROOT / "tasks" / "gedi_mnist.yaml", {**MNIST_SMALL, "train.iterations": "3"}, PretrainConfig)
    config.eval.ood = False
    pretrain(config, RunDir(folder), "test")
    return folder


def documented_methods() -> set[str]:
    text = (ROOT / "docs" / "methods.md").read_text()
    section = text.split("## Training methods", 1)[1].split("\n#", 1)[0]
    return set(re.findall(r"^\| `([a-z-]+)` \|", section, re.M))


def test_every_documented_method_is_registered_and_every_registered_one_documented():
    assert documented_methods() == set(METHODS)


def test_misspelt_method_is_a_clear_error(capsys, tmp_path):
    assert main(["run", str(TASK), "--set", "method=gedii", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown method 'gedii'; known: dpl, entropy, gedi, gedi-nogen, gedi-pretrained, recon, swav" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "override, expected",
    [
        ("method_args.gedi.w_genn=2", r"method_args.gedi.w_genn: no such key"),
        ("method_args.swav.weight=-1", r"method_args.swav.weight: Input should be greater than or equal to 0"),
        ("method_args.gedi.ssl_data=all", r"method_args.gedi.ssl_data: Input should be 'queries' or 'unlabeled'"),
        (
            "method_args={gedi: {weight: 1}, weight: 2}",
            r"method_args: mixes sections per method .* with plain arguments \(weight\)",
        ),
        ("method=gedi-pretrained", r"networks.mnist_net.*method 'gedi-pretrained' starts every network from a pre"),
    ],
)
def test_bad_method_arguments_are_one_clear_message(override, expected, capsys, tmp_path):
    sets = [x for k, v in TINY.items() for x in ("--set", f"{k}={v}")]
    assert main(["run", str(TASK), *sets, "--set", override, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert re.search(expected, err) and "Traceback" not in err, err


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_trains_a_few_steps_with_finite_terms(method, tmp_path, pretrained):
    sets = {**TINY, "method": method}
    if method == "gedi-pretrained":
        sets["networks.mnist_net.init"] = str(pretrained)
    metrics = run_task(load_task(TASK, sets), RunDir(tmp_path), "test")
    assert metrics["status"] == "finished" and 0 <= metrics["concept_accuracy"] <= 1
    rows = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert len(rows) == 4
    for row in rows:
        terms = {k: v for k, v in row.items() if k.startswith("loss_")}
        assert "loss_query" in terms and all(np.isfinite(v) for v in terms.values())
        # what is logged as the loss is what was back-propagated: the sum of the logged terms
        assert row["loss"] == pytest.approx(sum(terms.values()), rel=1e-5)
    if method in ("gedi", "gedi-pretrained", "gedi-nogen", "swav"):
        assert {"loss_inv", "loss_prior"} <= rows[0].keys() or "loss_swav" in rows[0]
    assert (tmp_path / "samples_mnist_net.png").is_file() == (method in ("gedi", "gedi-pretrained"))


def learner_for(engine: str, method: str) -> QueryLearner:
    """The learner `nesy-gedi run` would train, on the tiny task, with a network without batch norm
    (batch statistics would make two passes over the same batch differ)."""
    sets = {**TINY, "engine.kind": engine, "method": method, "networks.mnist_net.arch": "mnist_lenet"}
    return assemble(load_task(TASK, sets), torch.device("cpu"), default_cache_dir()).learner


@pytest.mark.parametrize("engine", ["compiled", "deepproblog"])
@pytest.mark.parametrize("method", ["gedi", "swav"])
def test_one_backward_gives_the_sum_of_the_separate_gradients(engine, method):
    learner = learner_for(engine, method)
    start = copy.deepcopy(learner.method.state_dict())  # RNG and replay buffer: every pass draws the same
    rows = np.arange(8)

    def gradients(keep) -> list[torch.Tensor]:
        learner.method.load_state_dict(copy.deepcopy(start))
        for net in learner.networks.values():
            net.zero_grad()
        terms, _ = learner.loss_terms(rows, 0)
        sum(v for k, v in terms.items() if keep(k)).backward()
        # SwAV's prototypes are the last layer's rows without its bias: that bias gets no gradient
        return [
            torch.zeros_like(p) if p.grad is None else p.grad.clone()
            for p in learner.networks["mnist_net"].parameters()
        ]

    query = gradients(lambda k: k == "query")
    ssl = gradients(lambda k: k != "query")
    both = gradients(lambda k: True)
    assert any(g.abs().sum() > 0 for g in ssl) and any(g.abs().sum() > 0 for g in query)
    for q, s, b in zip(query, ssl, both, strict=True):
        assert torch.allclose(b, q + s, atol=1e-6)


@pytest.mark.parametrize("naming, labels", [(True, 0), (False, 0), (True, 1)])
def test_gedi_pretrained_starts_from_the_checkpoint(tmp_path, task_file, pretrained, monkeypatch, naming, labels):
    """Its first-step outputs are the checkpoint's, in the order the program named them (naming.py); labelled
    images, when asked for, are recorded and keep the run out of the unsupervised classes."""
    saved = torch.load(pretrained / "checkpoint.pt", weights_only=False)["networks"][NETWORK]
    reference = build_network("mnist_lenet_bn", 10)
    reference.load_state_dict(saved)
    images = to_tensor(load_mnist().test.images[:32])
    seen: list[torch.Tensor] = []
    original = Trainer._train_step

    def recording(self, rows):
        if self.step == 0:
            net = self.learner.networks["mnist_net"].eval()
            with torch.no_grad():
                seen.append(net(images))
        return original(self, rows)

    monkeypatch.setattr(Trainer, "_train_step", recording)
    sets = {
        "method": "gedi-pretrained",
        "networks.mnist_net.init": str(pretrained),
        "networks.mnist_net.naming": str(naming).lower(),
        "networks.mnist_net.naming_labels": str(labels),
    }
    metrics = run_task(load_task(TASK, {**TINY, **sets}), RunDir(tmp_path), "test")
    order = list(range(10))
    if naming:
        order = np.argsort(metrics["naming"]["permutations"]["mnist_net"]).tolist()
        assert bool(metrics["naming"]["labelled_images"]) is bool(labels)
        assert metrics["grounding"] != ("grounded" if labels else "grounded with labels")
        assert label("gedi-pretrained", [metrics]).endswith(" labels") is bool(labels)
    else:
        assert "naming" not in metrics
    with torch.no_grad():  # float32 within rounding: a permuted weight matrix may take another kernel path
        torch.testing.assert_close(seen[0], reference.eval()(images)[:, order], rtol=1e-5, atol=1e-5)


def test_interrupted_joint_run_resumes_to_the_same_result(tmp_path, monkeypatch):
    config = load_task(TASK, TINY)
    whole = run_task(config, RunDir(tmp_path / "whole"), "test")
    interrupt_training_at(monkeypatch, 2, lambda: run_task(config, RunDir(tmp_path / "cut"), "test"))
    resumed = run_task(load_task(tmp_path / "cut" / "config.yaml"), RunDir(tmp_path / "cut"), "test", resume=True)
    assert comparable(resumed) == comparable(whole)
    # the logs agree row by row too: the SGLD chains and the views' RNG were restored
    rows = [(tmp_path / d / "train_log.jsonl").read_text().splitlines() for d in ("whole", "cut")]
    strip = [[{k: v for k, v in json.loads(r).items() if k != "seconds"} for r in rs] for rs in rows]
    assert strip[0] == strip[1]


def test_unlabeled_ssl_data_draws_its_own_batch_from_the_task_pool():
    learner = learner_for("compiled", "gedi")
    method = learner.method
    method.args = method.args.model_copy(update={"ssl_data": "unlabeled", "ssl_batch_size": 24})
    batch = TrainBatch(images=learner.images(np.arange(8)), step=0)
    drawn = method._inputs(batch, "mnist_net")
    assert drawn.shape == (24, 1, 28, 28)
    pool = method.context.pools["mnist_net"].flatten(1)
    assert all((pool == image.flatten()).all(-1).any() for image in drawn)  # every image is from the pool
    assert len(pool) == len(np.unique(learner.train_set.indices))  # the pool: the task's training images
    terms, _ = method.loss_terms(batch)
    assert all(torch.isfinite(v) for v in terms.values())


@pytest.mark.parametrize("which, moved", [("all", True), ("queries", False)])
def test_batch_statistics_setting_decides_what_moves_batch_norm(which, moved):
    task = assemble(
        load_task(TASK, {**TINY, "method_args.gedi.batch_statistics": which}),
        torch.device("cpu"),
        default_cache_dir(),
    )
    net = task.method.networks["mnist_net"].train()
    norm = net.encoder[1]
    before = norm.running_mean.clone()
    task.method.loss_terms(TrainBatch(images={"mnist_net": task.tensors["mnist_train"][:16]}, step=0))
    assert (not torch.equal(norm.running_mean, before)) == moved
    assert norm.momentum == 0.1  # restored


@pytest.mark.parametrize("method, shown", [("gedi", True), ("gedi-nogen", False), ("swav", False)])
def test_joint_progress_bar_shows_the_energy_gap_of_generative_methods(method, shown):
    assert ("energy_gap" in learner_for("compiled", method).progress) == shown


def test_weight_zero_runs_no_objective(monkeypatch):
    """λ = 0 (the pipeline with the joint term off) adds no term and costs no views or SGLD chains."""
    learner = learner_for("compiled", "gedi")
    method = learner.method
    batch = TrainBatch(images=learner.images(np.arange(8)), step=0)
    assert method.loss_terms(batch)[0]  # λ = 1: GEDI's terms
    method.args = method.args.model_copy(update={"weight": 0.0})
    objective = method.objectives["mnist_net"]
    monkeypatch.setattr(objective, "loss_terms", lambda *a: pytest.fail("the objective ran at λ = 0"))
    assert method.loss_terms(batch) == ({}, {})


@pytest.mark.parametrize("engine", ["compiled", "deepproblog"])
@pytest.mark.parametrize("method", ["dpl", "entropy", "recon"])
def test_a_training_step_calls_each_network_once(engine, method):
    """The learner gathers the step's images once and calls the network once; the engine and the method's
    terms read its outputs."""
    learner = learner_for(engine, method)
    calls = []
    learner.method.networks["mnist_net"].register_forward_hook(lambda module, args, out: calls.append(len(args[0])))
    learner.loss_terms(np.arange(8), 0)
    assert calls == [16]  # 8 queries of 2 images


def test_a_batch_normalised_network_reads_one_image_queries_under_deepproblog(tmp_path):
    """DeepProbLog's engine asks a network per query; ours are called on the whole batch first, so a
    batch-normalised network trains on single-image queries under `engine.kind: deepproblog` too."""
    sets = {
        **TINY,
        "engine.kind": "deepproblog",
        "networks.mnist_net.arch": "mnist_lenet_bn",
        "data.train_size": "40",
        "data.test_size": "10",
    }
    config = load_task(ROOT / "tasks" / "mnist_digit.yaml", {k: v for k, v in sets.items() if not k.startswith("sgld")})
    metrics = run_task(config, RunDir(tmp_path / "run"), command="test")
    assert np.isfinite(metrics["id"]["acc_y"])
