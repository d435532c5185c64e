"""TensorBoard event files in every run folder, read back with TensorBoard's own event reader."""

from __future__ import annotations

import json

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from nesy_gedi.assembly.task import load_task
from nesy_gedi.commands.pretrain import pretrain
from nesy_gedi.commands.run import run_task
from nesy_gedi.training.rundir import RunDir

from .conftest import ROOT, interrupt_training_at
from .test_methods import TASK, TINY
from .test_pretrain import MNIST_SMALL


def events(folder) -> EventAccumulator:
    found = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    found.Reload()
    return found


def logged(folder) -> list[dict]:
    return [json.loads(line) for line in (folder / "train_log.jsonl").read_text().splitlines()]


def test_a_run_writes_every_logged_value_its_metrics_and_pictures(tmp_path):
    metrics = run_task(load_task(TASK, TINY), RunDir(tmp_path), "test")
    found, rows = events(tmp_path), logged(tmp_path)
    for key in ("loss", "loss_query", "loss_gen", "energy_gap", "lr"):  # loss terms, energies, learning rate
        written = found.Scalars(f"train/{key}")
        assert [e.step for e in written] == [r["step"] for r in rows]
        assert [e.value for e in written] == pytest.approx([r[key] for r in rows], rel=1e-6)  # stored as float32
    [final] = found.Scalars("metrics/concept_accuracy")
    assert final.step == 4 and final.value == pytest.approx(metrics["concept_accuracy"], rel=1e-6)
    assert found.Scalars("metrics/id/concepts/mnist_net/nmi")[0].value == pytest.approx(metrics["nmi"], rel=1e-6)
    assert set(found.Tags()["images"]) == {"confusion_mnist_net", "samples_mnist_net"}


def test_a_resumed_run_logs_each_step_once(tmp_path, monkeypatch):
    config = load_task(TASK, TINY)
    interrupt_training_at(monkeypatch, 3, lambda: run_task(config, RunDir(tmp_path), "test"))
    run_task(load_task(tmp_path / "config.yaml"), RunDir(tmp_path), "test", resume=True)
    steps = [e.step for e in events(tmp_path).Scalars("train/loss")]
    assert steps == [r["step"] for r in logged(tmp_path)] == [1, 2, 3, 4]


def test_a_pretraining_run_writes_its_energies_and_samples(tmp_path):
    config = load_task(ROOT / "tasks" / "gedi_mnist.yaml", {**MNIST_SMALL, "train.restarts": "1", "eval.ood": "false"})
    pretrain(config, RunDir(tmp_path), "test")
    found = events(tmp_path)
    assert {"train/loss_gen", "train/energy_gap", "metrics/nmi"} <= set(found.Tags()["scalars"])
    assert "samples" in " ".join(found.Tags()["images"])
