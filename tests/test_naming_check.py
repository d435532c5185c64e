"""The pipeline checks the naming of pretrained clusters before it trains (naming_check.py): a weak
pretraining is pretrained again or its run says plainly that the naming was not to be trusted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import nesy_gedi
from nesy_gedi.analysis.naming import name_clusters
from nesy_gedi.analysis.naming_check import check_naming
from nesy_gedi.assembly.task import load_task, sampler
from nesy_gedi.cli import main
from nesy_gedi.commands.compare import _runs_table
from nesy_gedi.data.images import to_tensor
from nesy_gedi.data.queries import QuerySet
from nesy_gedi.logic.program import Program
from nesy_gedi.logic.query import QueryTemplate
from nesy_gedi.networks import build_network
from nesy_gedi.training.checkpoint import PRETRAINED, export_network
from nesy_gedi.training.rundir import RunDir

from .conftest import ROOT
from .test_naming import Scrambled
from .test_pipeline import RUN, pipeline_task

MERGED = {1: 7, 4: 9, 3: 5}
"""three pairs of digits, each read as one"""


@pytest.fixture(scope="module")
def merged_pretraining(tmp_path_factory, mnist) -> Path:
    """A pretraining run folder whose network reads 1 as 7, 4 as 9 and 3 as 5 (trained on real MNIST with
    those labels): clusters that merge digits, as a weak pretraining leaves them."""
    torch.manual_seed(0)
    net = build_network("mnist_lenet", 10)
    x = to_tensor(mnist.train.images[:6000])
    y = torch.tensor([MERGED.get(int(d), int(d)) for d in mnist.train.labels[:6000]])
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
    for step in range(300):
        rows = torch.arange(step * 64, (step + 1) * 64) % len(x)
        loss = torch.nn.functional.cross_entropy(net(x[rows]), y[rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    folder = tmp_path_factory.mktemp("merged")
    export_network(RunDir(folder), PRETRAINED, net, "mnist_lenet", 10)
    return folder


def test_a_naming_of_merged_digits_is_flagged_in_summary_metrics_and_report(task_file, merged_pretraining, capsys):
    path = task_file()
    data = yaml.safe_load(path.read_text())
    data["networks"]["mnist_net"] = {"arch": "mnist_lenet", "init": str(merged_pretraining)}
    data["data"] = {"train_size": 400, "test_size": 50}
    data["train"] = {"iterations": 2, "batch_size": 8}
    path.write_text(yaml.safe_dump(data))
    out = path.parent / "run"
    assert main(["run", str(path), "--out", str(out), "--set", "train.threads=1"]) == 0
    printed = capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    check = metrics["naming_check_details"]
    # about 3 digits in 10 misread: about half the pairs' sums wrong
    assert not check["passed"] and check["per_image"] < 0.85 and check["ceiling"] == 1.0
    assert metrics["naming_explained"] == check["explained"] < 0.75
    assert metrics["naming_check"].startswith("TOO IMPURE") and "TOO IMPURE" in printed
    assert "Warning: the pretrained clusters were too impure" in (out / "report.md").read_text()


def test_the_pipeline_pretrains_again_keeps_the_best_naming_and_counts_every_attempt(task_file, tmp_path):
    path = pipeline_task(task_file, threshold=0.99, attempts=2)  # tiny pretrainings never reach 0.99
    metrics = nesy_gedi.load_task(path, seed=0, **RUN).train(out=tmp_path / "a")
    attempts = metrics["pretraining_attempt_details"]
    assert metrics["pretraining_attempts"] == 2 == len(attempts)
    assert attempts[0]["pretraining"]["mnist_net"]["seed"] == 0 != attempts[1]["pretraining"]["mnist_net"]["seed"]
    best = max(attempts, key=lambda a: a["per_image"])
    assert metrics["pretraining"] == best["pretraining"] and metrics["naming_explained"] == best["explained"]
    seconds = sum(a["pretraining"]["mnist_net"]["train_seconds"] for a in attempts)
    assert metrics["pretrain_seconds"] == pytest.approx(seconds)  # every attempt is part of the cost
    assert not metrics["naming_check_details"]["passed"] and metrics["naming_check"].startswith("TOO IMPURE")
    again = nesy_gedi.load_task(path, seed=0, **RUN).train(out=tmp_path / "b")  # replayed from the cache
    assert [a["pretraining"]["mnist_net"]["reused"] for a in again["pretraining_attempt_details"]] == [True, True]
    assert again["naming_explained"] == metrics["naming_explained"]


def test_labels_sampled_from_the_programs_noise_are_not_taken_for_impure_clusters():
    """Clean clusters on MNIST-NoisyAdd (one label in ten is the sum plus one): the naming explains about
    90 % of the queries, which the labels allow, so it is trusted at a threshold that 90 % alone would miss."""
    config = load_task(ROOT / "tasks" / "mnist_noisy_add.yaml")
    template = QueryTemplate(Program(config.program), **config.query.model_dump())
    rng = np.random.default_rng(0)
    digits = rng.integers(0, 10, size=(600, 2))
    images = torch.zeros(digits.size, 1, 28, 28)
    images[:, 0, 0, 0] = torch.tensor(digits.ravel()).float()
    draw = sampler(template, 0, 0)
    train = QuerySet("train", ("t", "t"), np.arange(digits.size).reshape(-1, 2), digits, [draw(c) for c in digits])
    order = rng.permutation(10).tolist()
    net = Scrambled(order)
    naming = name_clusters(
        {"mnist_net": net}, {"mnist_net": net.head}, {"mnist_net": 10}, template, train, None, {"t": images}, 0,
        sampled=True,
    )  # fmt: skip
    assert naming.expected_ceiling == pytest.approx(0.9) and naming.explained == pytest.approx(0.9, abs=0.04)
    check = check_naming(naming, template, train, "sampled", {"mnist_net": 0.96})
    assert check.passed and check.per_image > 0.97
    assert naming.explained ** (1 / 2) < 0.96  # without the ceiling the noise alone would fail it


def test_the_comparison_table_shows_what_namings_explain_and_the_attempts():
    def run(explained: float, passed: bool, attempts: int) -> dict:
        details = {"passed": passed}
        return {
            "status": "finished",
            "grounding": "grounded" if passed else "shortcut",
            "train_seconds": 1.0,
            "naming_explained": explained,
            "naming_check_details": details,
            "pretraining_attempts": attempts,
        }

    table = _runs_table({"gedi-pretrained[gedi]": [run(0.95, True, 1), run(0.61, False, 3), run(0.9, True, 2)]})
    header, _, row = table.splitlines()
    assert "naming explains" in header and "too impure to trust" in header and "pretrainings per run" in header
    assert row.endswith("| 90.0% (min 61.0%) | 1/3 | 1–3 |")
    assert "naming explains" not in _runs_table({"dpl": [{"status": "finished", "train_seconds": 1.0}]})
