"""Pretraining as part of a method: per seed, cached by content, reused, never trained twice."""

from __future__ import annotations

import uuid

import torch
import yaml

import nesy_gedi
from nesy_gedi.commands.compare import label

from .conftest import ROOT

PRETRAIN = {
    "train.restarts": 1,
    "train.iterations": 15,
    "train.batch_size": 64,
    "data.train_size": 1000,
    "data.test_size": 200,
    "sgld.steps": 2,
    "sgld.buffer_size": 256,
    "eval.ood": False,
}
RUN = {"data": {"train_size": 32, "test_size": 16}, "train": {"iterations": 2, "batch_size": 8}}


def pipeline_task(task_file, threshold: float = 0.0, attempts: int = 3, **extra) -> object:
    """MNIST addition whose network is GEDI-pretrained first (a name unique to this test session, so the
    cache holds no run of it yet). The tiny pretraining's clusters are weak: `threshold` 0 accepts them."""
    path = task_file()
    data = yaml.safe_load(path.read_text())
    sets = {**PRETRAIN, "name": f"pipeline-test-{uuid.uuid4().hex[:8]}", **extra}
    data["networks"]["mnist_net"] = {
        "arch": "mnist_lenet_bn",
        "naming_threshold": threshold,
        "pretrain": {
            "task": str(ROOT / "tasks" / "gedi_mnist.yaml"),
            "method": "gedi-nogen",
            "set": sets,
            "attempts": attempts,
        },
    }
    data["method"] = "gedi-pretrained"
    path.write_text(yaml.safe_dump(data))
    return path


def test_each_seed_pretrains_once_and_every_run_reuses_it(task_file, tmp_path):
    path = pipeline_task(task_file)
    first = nesy_gedi.load_task(path, seed=0, **RUN).train(out=tmp_path / "a")
    record = first["pretraining"]["mnist_net"]
    assert record["reused"] is False and record["method"] == "gedi-nogen" and record["seed"] == 0
    assert first["pretrain_seconds"] == record["train_seconds"] > 0  # the method's cost includes it
    again = nesy_gedi.load_task(path, seed=0, **RUN).train(out=tmp_path / "b")
    assert again["pretraining"]["mnist_net"] == {**record, "reused": True}  # the same run, not trained again
    other = nesy_gedi.load_task(path, seed=1, **RUN).train(out=tmp_path / "c")["pretraining"]["mnist_net"]
    assert other["reused"] is False and other["folder"] != record["folder"]
    weights = [torch.load(f"{r['folder']}/network.pt", weights_only=True)["state_dict"] for r in (record, other)]
    assert any(not torch.equal(weights[0][k], weights[1][k]) for k in weights[0])  # seeds pretrain differently
    assert label("gedi-pretrained", [first, again]) == "gedi-pretrained[gedi-nogen]"


def test_a_changed_pretraining_is_not_reused(task_file, tmp_path):
    path = pipeline_task(task_file)
    first = nesy_gedi.load_task(path, **RUN).train(out=tmp_path / "a")["pretraining"]["mnist_net"]
    data = yaml.safe_load(path.read_text())
    data["networks"]["mnist_net"]["pretrain"]["set"]["train.iterations"] = 16
    path.write_text(yaml.safe_dump(data))
    changed = nesy_gedi.load_task(path, **RUN).train(out=tmp_path / "b")["pretraining"]["mnist_net"]
    assert changed["reused"] is False and changed["folder"] != first["folder"]


def test_pretrain_and_init_together_is_one_clear_message(task_file, tmp_path, capsys):
    path = pipeline_task(task_file)
    data = yaml.safe_load(path.read_text())
    data["networks"]["mnist_net"]["init"] = str(tmp_path)
    path.write_text(yaml.safe_dump(data))
    from nesy_gedi.cli import main

    assert main(["run", str(path)]) == 2
    assert "give `pretrain` or `init`, not both" in capsys.readouterr().err


def test_the_pretraining_runs_with_the_runs_threads_and_serves_any_thread_count(task_file, tmp_path):
    """A run's `train.threads` reaches its pretraining (two jobs side by side must not each take every core),
    and being an execution setting, not content, it does not split the cache."""
    path = pipeline_task(task_file)
    one = {**RUN, "train": {**RUN["train"], "threads": 1}}
    first = nesy_gedi.load_task(path, **one).train(out=tmp_path / "a")["pretraining"]["mnist_net"]
    resolved = yaml.safe_load((ROOT / first["folder"] / "config.yaml").read_text())
    assert resolved["train"]["threads"] == 1 and first["reused"] is False
    two = {**RUN, "train": {**RUN["train"], "threads": 2}}
    again = nesy_gedi.load_task(path, **two).train(out=tmp_path / "b")["pretraining"]["mnist_net"]
    assert again == {**first, "reused": True}


def test_the_check_loads_the_pretraining_with_its_set(task_file, tmp_path, capsys):
    """The task check loads the pretraining exactly as the pipeline will: with its `set`, so `method_args: {}`
    makes `swav` take a GEDI pretraining task, and a misspelled key of `set` is refused before any run."""
    path = pipeline_task(task_file, **{"method_args": {}})
    data = yaml.safe_load(path.read_text())
    data["networks"]["mnist_net"]["pretrain"]["method"] = "swav"
    path.write_text(yaml.safe_dump(data))
    assert nesy_gedi.load_task(path, **RUN).config.networks["mnist_net"].pretrain.method == "swav"
    data["networks"]["mnist_net"]["pretrain"]["set"]["train.iteratons"] = 3
    path.write_text(yaml.safe_dump(data))
    from nesy_gedi.cli import main

    assert main(["run", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "networks.mnist_net.pretrain" in err and "train.iteratons" in err and "no such key" in err
    assert not (tmp_path / "run").exists()


def test_a_pretraining_is_keyed_by_every_source_file_of_the_package(tmp_path, monkeypatch):
    """An edit anywhere in the package (an objective, a network, the data) makes a new pretraining key, not
    only an edit of the commands."""
    import shutil

    from nesy_gedi.commands import pipeline

    assert pipeline.PACKAGE.name == "nesy_gedi"
    copy = tmp_path / "nesy_gedi"
    shutil.copytree(pipeline.PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(pipeline, "PACKAGE", copy)
    before = pipeline.code_version()
    (copy / "ssl" / "sgld.py").write_text((copy / "ssl" / "sgld.py").read_text() + "\n# an edit\n")
    assert pipeline.code_version() != before
