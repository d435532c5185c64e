"""Training on small slices of real MNIST: the loss is DeepProbLog's, runs learn, repeat and resume."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
import torch
from deepproblog.engines import ExactEngine
from deepproblog.model import Model
from deepproblog.network import Network
from deepproblog.train import TrainObject
from problog.logic import Constant

from nesy_gedi.assembly.task import load_task
from nesy_gedi.commands.run import run_task
from nesy_gedi.data.images import to_tensor
from nesy_gedi.logic.deepproblog_engine import DeepProbLogEngine
from nesy_gedi.logic.program import Program
from nesy_gedi.logic.query import QueryTemplate
from nesy_gedi.networks import build_network
from nesy_gedi.training.learners import symbolic_loss
from nesy_gedi.training.rundir import RunDir

from .conftest import ROOT, comparable, interrupt_training_at, without_start_seconds

# 800 steps on 1,600 queries: past the plateau where DeepProbLog's digits are still undecided (~20 s)
TINY = {
    "data.train_size": "1600",
    "data.test_size": "100",
    "train.iterations": "800",
    "train.schedule": "constant",
    "train.checkpoint_every": "200",
    "train.threads": "1",  # bit-identical reruns need a fixed thread count (threads.py adapts to the load)
}


def test_symbolic_loss_equals_deepproblog_cross_entropy(mnist):
    torch.manual_seed(0)
    program = Program(ROOT / "programs" / "mnist_addition.pl")
    template = QueryTemplate(program, "addition(A,B,S)", "S", {"A": "image", "B": "image"})
    net = build_network("mnist_lenet", 10)
    engine = DeepProbLogEngine(program, {"mnist_net": net}, {"train": to_tensor(mnist.train.images)})
    queries = [
        template.query(["train", "train"], [2 * i, 2 * i + 1], template.label(mnist.train.labels[2 * i : 2 * i + 2]))
        for i in range(8)
    ]

    ours = symbolic_loss(engine.log_probabilities(queries))
    ours.backward()
    our_grads = [p.grad.clone() for p in net.parameters()]

    net.zero_grad()  # DeepProbLog itself, its networks reading the images: an oracle independent of the engine
    head = torch.nn.Sequential(net, torch.nn.Softmax(-1))  # what DeepProbLog calls: p(digit | image)
    model = Model(program.text, [Network(head, "mnist_net", batching=True)], load=False)
    model.set_engine(ExactEngine(model), cache=True)
    images = to_tensor(mnist.train.images)
    model.add_tensor_source("train", {(Constant(i),): images[i] for i in range(16)})
    theirs = TrainObject(model).get_loss(queries, model.solver.semiring.cross_entropy)
    assert float(ours) == pytest.approx(theirs, rel=1e-6)
    for mine, dpl in zip(our_grads, (p.grad for p in net.parameters()), strict=True):
        assert torch.allclose(mine, dpl, atol=1e-7)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    config = load_task(ROOT / "tasks" / "mnist_add.yaml", TINY)
    metrics = run_task(config, RunDir(folder), command="test")
    return folder, metrics


def test_tiny_run_learns_and_writes_its_folder(tiny_run):
    folder, metrics = tiny_run
    for name in (
        "config.yaml",
        "versions.json",
        "metrics.json",
        "checkpoint.pt",
        "train_log.jsonl",
        "confusion_mnist_net.png",
        "report.md",
        "queries.npz",
    ):
        assert (folder / name).is_file(), name
    saved = json.loads((folder / "metrics.json").read_text())
    assert saved["task_accuracy"] == metrics["task_accuracy"]
    assert {"task_accuracy", "concept_accuracy", "nmi", "train_seconds"} <= saved.keys()
    assert saved["compile_seconds"] > 0  # the compiled engine's circuits, fresh or from the cache
    assert saved["peak_memory_mb"] > 100  # torch alone takes more
    # chance: 0.1 for a digit; the most frequent sum (9) is about 0.1 of the queries
    assert metrics["concept_accuracy"] > 0.5
    assert metrics["task_accuracy"] > 0.4
    assert len((folder / "train_log.jsonl").read_text().splitlines()) == metrics["train_steps"] == 800


def test_same_seed_same_metrics(tiny_run, tmp_path):
    config = load_task(ROOT / "tasks" / "mnist_add.yaml", TINY)
    assert comparable(run_task(config, RunDir(tmp_path), command="test")) == comparable(tiny_run[1])


def test_interrupted_run_resumes_to_the_same_result(tiny_run, tmp_path, monkeypatch):
    config = load_task(ROOT / "tasks" / "mnist_add.yaml", TINY)
    interrupt_training_at(monkeypatch, 400, lambda: run_task(config, RunDir(tmp_path), command="test"))
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["step"] == 400
    resumed = run_task(load_task(tmp_path / "config.yaml"), RunDir(tmp_path), command="test", resume=True)
    assert comparable(resumed) == comparable(tiny_run[1])
    assert len((tmp_path / "train_log.jsonl").read_text().splitlines()) == 800


def test_both_engines_train_alike(tiny_run, tmp_path):
    """The compiled engine (default) and DeepProbLog's own engine give the same run, up to float32 rounding."""
    config = load_task(ROOT / "tasks" / "mnist_add.yaml", {**TINY, "engine.kind": "deepproblog"})
    theirs = run_task(config, RunDir(tmp_path), command="test")
    ours = tiny_run[1]
    assert ours["concept_accuracy"] == pytest.approx(theirs["concept_accuracy"], abs=0.02)
    assert ours["task_accuracy"] == pytest.approx(theirs["task_accuracy"], abs=0.05)


# three starts of 20 steps, the chosen one continued to 60 (every start's 20 losses rank it: the window is 50)
RESTARTS = {**TINY, "train.iterations": "60", "train.restarts": "3", "train.restart_steps": "20"}


@pytest.fixture(scope="module")
def restarted_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("restarted")
    return folder, run_task(load_task(ROOT / "tasks" / "mnist_add.yaml", RESTARTS), RunDir(folder), command="test")


def test_restarts_of_a_program_task_continue_the_start_with_the_lowest_loss(restarted_run):
    folder, metrics = restarted_run
    starts, chosen = metrics["restarts"]["starts"], metrics["restarts"]["chosen"]
    assert starts[0]["seed"] == 0 and len({start["seed"] for start in starts}) == 3
    assert len({start["loss"] for start in starts}) == 3  # other initialisations and batch orders
    for i, start in enumerate(starts):
        rows = RunDir(folder / "restarts" / str(i)).read_log()
        assert [row["step"] for row in rows] == list(range(1, 21))
        assert start["loss"] == pytest.approx(sum(row["loss"] for row in rows) / 20)
    assert starts[chosen]["loss"] == min(start["loss"] for start in starts)
    log = RunDir(folder).read_log()
    assert [row["step"] for row in log] == list(range(1, 61))
    assert log[:20] == RunDir(folder / "restarts" / str(chosen)).read_log()
    assert metrics["train_seconds"] >= sum(start["seconds"] for start in starts)  # discarded starts count
    plain = load_task(ROOT / "tasks" / "mnist_add.yaml", TINY)
    assert metrics["train_queries"] == plain.data.train_size  # the data is the run's seed's, whatever the start


def test_restarts_of_a_program_task_are_reproducible_and_resume(restarted_run, tmp_path, monkeypatch):
    config = load_task(ROOT / "tasks" / "mnist_add.yaml", RESTARTS)
    again = run_task(config, RunDir(tmp_path / "again"), command="test")
    assert without_start_seconds(again) == without_start_seconds(restarted_run[1])
    resumed_folder = tmp_path / "resumed"
    interrupt_training_at(monkeypatch, 10, lambda: run_task(config, RunDir(resumed_folder), command="test"))
    resumed = run_task(load_task(resumed_folder / "config.yaml"), RunDir(resumed_folder), "test", resume=True)
    assert without_start_seconds(resumed) == without_start_seconds(restarted_run[1])


def test_ctrl_c_pressed_twice_prints_no_traceback(tmp_path):
    """Two SIGINTs in quick succession: exit status 130, the resume hint, no traceback, a whole checkpoint."""
    out = tmp_path / "run"
    args = ["--set", "data.train_size=64", "--set", "data.test_size=8", "--set", "train.iterations=1000000"]
    process = subprocess.Popen(
        [sys.executable, "-m", "nesy_gedi", "run", str(ROOT / "tasks" / "mnist_add.yaml"), *args, "--out", str(out)],
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        # Ctrl-C as a terminal gives it: a suite started in the background by a shell (`make test &`) has
        # SIGINT ignored, the child would inherit that and rightly ignore the test's Ctrl-C
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    seen = ""
    while "train:" not in seen:  # training has started
        seen += process.stderr.read(1)
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    try:
        rest = process.communicate(timeout=120)[1]
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail("the run went on after two Ctrl-C")
    assert process.returncode == 130
    assert "Traceback" not in seen + rest and "--resume" in rest
    torch.load(out / "checkpoint.pt")


def test_an_interrupted_run_from_python_leaves_ctrl_c_as_it_was(tmp_path, monkeypatch):
    """main([...]) of an interrupted run returns 130 and restores SIGINT: left ignored, every process the
    caller starts later (the Ctrl-C test's own run) would inherit Ctrl-C ignored."""
    from nesy_gedi.cli import main
    from nesy_gedi.training.loop import Trainer

    before = signal.getsignal(signal.SIGINT)

    def interrupting(self, rows):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "_train_step", interrupting)
    args = ["run", str(ROOT / "tasks" / "mnist_add.yaml"), "--set", "data.train_size=64", "--set", "data.test_size=8"]
    assert main([*args, "--out", str(tmp_path / "run")]) == 130
    assert signal.getsignal(signal.SIGINT) is before
