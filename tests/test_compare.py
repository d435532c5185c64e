"""`nesy-gedi compare`: methods × seeds in parallel processes, one table, finished runs reused."""

from __future__ import annotations

import csv

from nesy_gedi.cli import main
from nesy_gedi.commands.compare import sets_for

from .conftest import ROOT

TASK = ROOT / "tasks" / "mnist_add_gedi.yaml"
TINY = ["train.iterations=3", "data.train_size=32", "data.test_size=10", "train.batch_size=8"]


def test_compare_writes_its_table_and_reuses_finished_runs(tmp_path, capsys):
    out = tmp_path / "cmp"
    args = ["compare", str(TASK), "--methods", "dpl,entropy", "--seeds", "2", "--out", str(out)]
    args += [x for item in TINY for x in ("--set", item)]
    assert main(args) == 0
    progress = capsys.readouterr().err  # one bar over the grid: runs done / running / failed, time left
    assert "compare: 100%" in progress and "4/4" in progress and "done=4" in progress and "failed=0" in progress
    rows = list(csv.DictReader((out / "comparison.csv").open()))
    assert [(r["method"], r["seed"], r["status"]) for r in rows] == [
        ("dpl", "0", "finished"),
        ("dpl", "1", "finished"),
        ("entropy", "0", "finished"),
        ("entropy", "1", "finished"),
    ]
    table = (out / "comparison.md").read_text()
    assert "| dpl | 2/2 | 0 | 0 |" in table and "| entropy | 2/2 | 0 | 0 |" in table
    logs = {p.name: p.stat().st_mtime_ns for p in out.glob("*.log")}
    assert len(logs) == 4

    # a lost run is run again, the finished ones are reused untouched
    for path in (out / "entropy-seed1").iterdir():
        path.unlink()
    assert main(args) == 0
    again = {p.name: p.stat().st_mtime_ns for p in out.glob("*.log")}
    assert {k for k in logs if again[k] != logs[k]} == {"entropy-seed1.log"}
    assert "| entropy | 2/2 | 0 | 0 |" in (out / "comparison.md").read_text()

    # a run folder written before a key existed (its config lacks it) holds the same settings: reused
    config = out / "dpl-seed0" / "config.yaml"
    config.write_text("".join(line for line in config.read_text().splitlines(True) if "brightness" not in line))
    assert main(args) == 0, capsys.readouterr().err

    # other settings into the same folder: refused before anything runs, naming the difference
    table = (out / "comparison.md").read_text()
    assert main([*args, "--set", "train.lr=0.5"]) == 2
    assert "dpl-seed0 holds a run made with train.lr=0.001, and this comparison asks for train.lr=0.5" in (
        capsys.readouterr().err
    )
    assert (out / "comparison.md").read_text() == table


def test_compare_with_an_unknown_method_is_a_clear_error(tmp_path, capsys):
    code = main(["compare", str(TASK), "--methods", "dpl,gedy", "--seeds", "1", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "unknown method 'gedy'" in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())


def test_method_prefixed_settings_reach_that_method_only():
    sets = ["train.iterations=3", "gedi-pretrained:networks.mnist_net.init=pre", "gedi:method_args.gedi.weight=2"]
    assert sets_for("dpl", sets) == ["train.iterations=3"]
    assert sets_for("gedi-pretrained", sets) == ["train.iterations=3", "networks.mnist_net.init=pre"]
    assert sets_for("gedi", sets) == ["train.iterations=3", "method_args.gedi.weight=2"]


def test_a_prefix_that_is_not_a_compared_method_is_a_clear_error(tmp_path, capsys):
    args = ["compare", str(TASK), "--methods", "dpl", "--seeds", "1", "--out", str(tmp_path / "c")]
    assert main([*args, "--set", "gedi:method_args.gedi.weight=2"]) == 2
    err = capsys.readouterr().err
    assert "'gedi' is not one of the compared methods (dpl)" in err and "Traceback" not in err


def test_compare_serves_a_pretraining_grid(tmp_path, capsys):
    """A pretraining task runs `nesy-gedi pretrain` per method and seed and tabulates cluster scores."""
    out = tmp_path / "cmp"
    args = ["compare", str(ROOT / "tasks" / "gedi_moons.yaml"), "--methods", "gedi,swav", "--seeds", "2"]
    args += ["--out", str(out), "--set", "train.iterations=20", "--set", "sgld.steps=2"]
    assert main(args) == 0
    rows = list(csv.DictReader((out / "comparison.csv").open()))
    assert [(r["method"], r["status"]) for r in rows] == [("gedi", "finished")] * 2 + [("swav", "finished")] * 2
    assert all(0 <= float(r["nmi"]) <= 1 and 0.5 <= float(r["cluster_accuracy"]) <= 1 for r in rows)
    table = (out / "comparison.md").read_text()
    assert "| method | finished | nmi | cluster_accuracy | diverged | train s |" in table  # points: no OOD
    assert "| gedi | 2/2 |" in table
    assert (out / "swav-seed1" / "network.pt").is_file()


def test_compare_and_shortcuts_on_a_true_false_task_and_a_noisy_program(tmp_path, capsys):
    for task in ("mnist_less", "mnist_noisy_add"):
        out = tmp_path / task
        args = ["compare", str(ROOT / "tasks" / f"{task}.yaml"), "--methods", "dpl", "--seeds", "1", "--out", str(out)]
        assert main([*args, *(x for item in TINY for x in ("--set", item))]) == 0
        assert "| dpl | 1/1 |" in (out / "comparison.md").read_text()
    capsys.readouterr()
    assert main(["shortcuts", str(ROOT / "tasks" / "mnist_less.yaml")]) == 0
    assert "shortcuts: 0 (bijective: 0)" in capsys.readouterr().out


def test_the_label_budget_grid_writes_its_table_and_plot(tmp_path, capsys):
    """dpl at 0 and 2 concept labels per digit, 2 seeds; naming labels refused for dpl (no pretrained network)
    and said so in the report."""
    out = tmp_path / "budget"
    args = ["compare", str(TASK), "--methods", "dpl", "--seeds", "2", "--out", str(out), "--labels", "2,0"]
    args += ["--label-use", "concept,naming", *[x for item in TINY for x in ("--set", item)]]
    assert main(args) == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [
        "dpl-concept2-seed0",
        "dpl-concept2-seed1",
        "dpl-seed0",
        "dpl-seed1",
    ]
    rows = list(csv.DictReader((out / "label_budget.csv").open()))
    assert [(r["method"], r["labels"], r["per concept"], r["labelled images used"], r["finished"]) for r in rows] == [
        ("dpl", "none", "0", "0", "2/2"),
        ("dpl", "concept", "2", "20", "2/2"),
    ]
    assert "Acc(C) mnist_net" in rows[0]
    assert (out / "label_budget.png").stat().st_size > 1000
    report = (out / "comparison.md").read_text()
    assert "## Label budget" in report and "Fewest labels per concept" in report
    assert "dpl with naming labels" in report and "naming_labels" in report  # refused, and why
    assert "dpl + 20 concept labels" in report  # the labelled runs are their own rows, never mixed with dpl's


def test_the_fewest_labels_count_the_unlabelled_point_in_every_use():
    from nesy_gedi.analysis.budget import Point, fewest

    def run(accuracy: float) -> dict:
        concepts = {"a": {"concept_accuracy": accuracy}, "b": {"concept_accuracy": 0.99}}
        return {"status": "finished", "task_accuracy": 0.9, "grounding": "shortcut", "id": {"concepts": concepts}}

    points = [Point("m", "concept", 0, [run(0.5)]), Point("m", "concept", 5, [run(0.9), run(0.8)])]
    points.append(Point("m", "naming", 1, [run(0.88)]))
    assert fewest(points, 0.86) == {("m", "concept"): None, ("m", "naming"): 1}  # 5 labels: mean Acc(C) of a 0.85
    assert fewest(points, 0.84) == {("m", "concept"): 5, ("m", "naming"): 1}
    assert fewest([Point("m", "concept", 0, [run(0.95)]), *points[1:]], 0.85)[("m", "naming")] == 0
    # a use with no labelled point of its method (refused, as naming labels for dpl) gets no curve
    refused = [Point("d", "naming", 0, [run(0.5)]), Point("d", "concept", 5, [run(0.9)])]
    assert fewest(refused, 0.85) == {("d", "concept"): 5}
    assert fewest(refused[:1], 0.85) == {("d", "naming"): None}  # --labels 0 alone: the one point still counts
