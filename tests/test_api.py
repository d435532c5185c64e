"""The Python API, the program as a torch module, tasks over two sources, and networks from user code."""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from deepproblog.query import Query
from PIL import Image
from problog.logic import Constant, Term, Var

import nesy_gedi
from nesy_gedi.cli import main
from nesy_gedi.errors import UserError
from nesy_gedi.logic.program import Program

from .conftest import ROOT
from .test_compiled_engine import TRUE_FALSE, Lookup, engines

SMALL = {"data": {"train_size": 64, "test_size": 32}, "train": {"iterations": 4, "batch_size": 8}}


@pytest.fixture
def float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def test_program_module_equals_deepproblog_probabilities_and_gradients(float64):
    program = Program(ROOT / "programs" / "mnist_addition.pl")
    module = nesy_gedi.ProgramModule(program, "addition(A, B, Sum)", "Sum", {"A": "image", "B": "image"})
    dpl, _ = engines(program, {"mnist_net": 10}, 12)
    table = dpl.networks["mnist_net"].table
    queries = []
    for i in range(6):
        substitution = {Term(p): Term("tensor", Term("train", Constant(2 * i + k))) for k, p in enumerate("ab")}
        queries.append(Query(Term("addition", Term("a"), Term("b"), Var("S")), substitution, output_ind=(2,)))
    solved = dpl.solve(queries)
    p_dpl = torch.stack(
        [torch.stack([torch.as_tensor(r.result.get(Term("addition", *q.substitute().query.args[:2], a), 0.0))
                      for a in module.answers]) for r, q in zip(solved, queries, strict=True)]
    )  # fmt: skip
    mine = Lookup(12, 10)
    mine.table.data.copy_(table.data)
    pairs = torch.arange(12).view(6, 2)
    p_ours = module({"A": torch.softmax(mine(pairs[:, 0]), -1), "B": torch.softmax(mine(pairs[:, 1]), -1)})
    assert torch.allclose(p_ours, p_dpl.detach(), atol=1e-6, rtol=0)
    # gradients of the log-probability of each pair's most probable sum, through both
    best = p_dpl.detach().argmax(1)
    p_dpl[torch.arange(6), best].log().sum().backward()
    p_ours[torch.arange(6), best].log().sum().backward()
    assert torch.allclose(table.grad, mine.table.grad, atol=1e-6, rtol=0)


def test_program_module_of_a_true_false_query_with_two_networks(tmp_path, float64):
    path = tmp_path / "p.pl"
    path.write_text(TRUE_FALSE)
    module = nesy_gedi.ProgramModule(path, "agree(A, B)", None, {"A": "image", "B": "image"})
    assert [str(a) for a in module.answers] == ["true"]
    dpl, _ = engines(Program(path), {"digit_net": 10, "parity_net": 2}, 4)
    made = [
        Query(Term("agree", Term("x0"), Term("x1")),
              {Term(f"x{k}"): Term("tensor", Term("train", Constant(2 * i + k))) for k in range(2)}, output_ind=())
        for i in range(2)
    ]  # fmt: skip
    expected = dpl.probabilities(made)
    digits, parity = dpl.networks["digit_net"], dpl.networks["parity_net"]
    ids = torch.arange(4).view(2, 2)
    inputs = {
        (net, name): torch.softmax(table(ids[:, k]), -1)
        for net, table in (("digit_net", digits), ("parity_net", parity))
        for k, name in enumerate("AB")
    }
    assert torch.allclose(module(inputs)[:, 0], expected, atol=1e-6, rtol=0)


def test_load_task_train_and_resume_from_python(tmp_path):
    task = nesy_gedi.load_task(ROOT / "tasks" / "mnist_add.yaml", seed=2, **SMALL, overrides={"eval.batch_size": 16})
    assert (task.config.seed, task.config.train.iterations, task.config.eval.batch_size) == (2, 4, 16)
    metrics = task.train(out=tmp_path / "run")
    assert metrics["status"] == "finished" and (tmp_path / "run" / "metrics.json").is_file()
    with pytest.raises(UserError, match="this run has finished"):
        nesy_gedi.resume(tmp_path / "run")
    with pytest.raises(UserError, match="unknown method"):
        nesy_gedi.load_task(ROOT / "tasks" / "mnist_add.yaml", method="nope")


def test_training_from_python_leaves_the_caller_as_it_found_it(tmp_path, capsys):
    """Threads, random states and warning filters as before; no bars with progress=False; the trained
    networks handed back, equal to the exported ones."""
    task = nesy_gedi.load_task(ROOT / "tasks" / "mnist_add.yaml", **SMALL, overrides={"train.threads": 1})
    torch.set_num_threads(2)
    torch.manual_seed(123)
    filters, state = list(warnings.filters), torch.get_rng_state()
    capsys.readouterr()
    trained = task.train(out=tmp_path / "run", progress=False)
    assert "train:" not in capsys.readouterr().err
    assert torch.get_num_threads() == 2 and torch.equal(torch.get_rng_state(), state)
    assert warnings.filters == filters
    net = trained.networks["mnist_net"]
    assert not net.training and trained["status"] == "finished"
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        assert net(x).shape == (3, 10)


def test_the_api_example_runs(tmp_path):
    spec = importlib.util.spec_from_file_location("python_api", ROOT / "examples" / "python_api.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    metrics = example.task_from_python(20, tmp_path / "run")
    assert metrics["status"] == "finished"
    assert 0.0 <= example.program_in_your_loop(40) <= 1.0


def test_a_task_over_two_sources_trains_on_real_mnist_and_fashion_mnist(tmp_path):
    task = nesy_gedi.load_task(ROOT / "tasks" / "mnist_fashion_stock.yaml", **SMALL)
    metrics = task.train(out=tmp_path / "run")
    assert metrics["status"] == "finished"
    assert set(metrics["id"]["concepts"]) == {"digit_net", "item_net"}
    item = metrics["id"]["concepts"]["item_net"]["confusion"]
    assert sum(map(sum, item)) == 32  # the item network is scored on the Fashion images alone
    assert "fashion" in metrics["data_source"] and "mnist" in metrics["data_source"]
    per_network = metrics["concept_accuracy_per_network"]
    assert per_network == {n: m["concept_accuracy"] for n, m in metrics["id"]["concepts"].items()}
    assert "| concept_accuracy_per_network | digit_net " in (tmp_path / "run" / "report.md").read_text()


def user_task(task_file, **network):
    return task_file(networks={"mnist_net": network}, data={"train_size": 32, "test_size": 16})


def test_a_network_from_user_code_by_import_path(task_file, tmp_path):
    path = user_task(task_file, arch="tests.user_networks:tiny_mlp")
    metrics = nesy_gedi.load_task(path, train={"iterations": 3}).train(out=tmp_path / "run")
    assert metrics["status"] == "finished"


def _bad_sources(folder: Path) -> None:
    """Sources and a program with one mistake each, next to the task file."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (6, 28, 28), dtype=np.uint8)
    three = {"train_labels": np.array([0, 1, 2] * 2), "test_labels": np.array([0, 1, 2] * 2)}
    np.savez(folder / "three.npz", train_images=images, test_images=images, **three)
    empty = {"train_labels": np.arange(6) % 10, "test_labels": np.zeros(0, dtype=np.int64)}
    np.savez(folder / "empty_test.npz", train_images=images, test_images=images[:0], **empty)
    high = np.arange(90, 96)  # 96 classes, none of them 0-9, the classes the domain reads
    np.savez(folder / "high.npz", train_images=images, test_images=images, train_labels=high, test_labels=high)
    ten, no_three = np.arange(10), np.array([0, 1, 2, 4, 5, 6, 7, 8, 9, 9])
    pair = rng.integers(0, 255, (10, 28, 28), dtype=np.uint8)
    np.savez(folder / "no_three.npz", train_images=pair, test_images=pair, train_labels=no_three, test_labels=ten)
    for part, classes in (("train", "012345678"), ("test", "013456789")):
        for name in classes:
            (folder / "folder" / part / name).mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[0]).save(folder / "folder" / part / name / "a.png")
    (folder / "loop.pl").write_text(
        "nn(mnist_net,[X],Y,[0,1,2,3,4,5,6,7,8,9]) :: digit(X,Y).\naddition(X,Y,Z) :- addition(X,Y,Z).\n"
    )


@pytest.mark.parametrize(
    "edit, expected",
    [
        ({"networks": {"mnist_net": {"arch": "tests.user_networks:nothing"}}}, r"cannot import tests.user_networks"),
        ({"networks": {"mnist_net": {"arch": "tests.user_networks:wrong_shape"}}}, r"must return logits of shape"),
        ({"networks": {"mnist_net": {"arch": "tests.user_networks:integer_logits"}}}, r"torch.int64; they must be"),
        ({"networks": {"mnist_net": {"arch": "small_cnn"}}}, r"small_cnn cannot read inputs of shape \(1, 28, 28\)"),
        (
            {"networks": {"mnist_net": {"arch": "tests.user_networks:asserting"}}},
            r"asserting cannot read inputs of shape \(1, 28, 28\) \(AssertionError\)",
        ),
        (
            {
                "networks": {
                    "mnist_net": {"arch": "mnist_lenet", "classes": ["0", "1", "x", "3", "4", "5", "6", "7", "8", "9"]}
                }
            },
            r"networks.mnist_net.classes: 'x' is not a class of source 'mnist'",
        ),  # fmt: skip
        ({"data": {"sources": {"mnist": {"kind": "mnist_plus"}}}}, r"unknown source kind 'mnist_plus'"),
        (
            {"data": {"sources": {"mine": {"kind": "npz", "path": "missing.npz"}}}},
            r"missing.npz: npz file not found",
        ),
        (
            {"query": {"term": "addition(A, B, Sum)", "output": "Sum", "inputs": {"A": "image", "B": {"source": "x"}}}},
            r"key 'query.inputs.B.source': source 'x' is not in data.sources \(mnist\)",
        ),
        (  # a garment network left reading digits: its input forgot `source`
            {"data": {"sources": {"digits": {"kind": "mnist"}, "garments": {"kind": "fashion_mnist"}}}},
            r"key 'data.sources.garments': no query input reads source 'garments' .* reads the first, 'digits'",
        ),
        (
            {"data": {"sources": {"mine": {"kind": "npz", "path": "three.npz"}}}},
            r"networks.mnist_net: its domain has 10 values but source 'mine' has 3 classes \(0, 1, 2\)",
        ),
        (
            {"data": {"sources": {"mine": {"kind": "npz", "path": "high.npz"}}}},
            r"networks.mnist_net: source 'mine' has no training image for domain value\(s\) 0 \(class '0'\), 1 ",
        ),
        (
            {"data": {"sources": {"mine": {"kind": "npz", "path": "no_three.npz"}}}},
            r"source 'mine' has no training image for domain value\(s\) 3 \(class '3'\); give the source",
        ),
        (
            {"data": {"sources": {"mine": {"kind": "npz", "path": "empty_test.npz"}}}},
            r"empty_test.npz: test_images is empty",
        ),
        (
            {"data": {"sources": {"mine": {"kind": "folder", "path": "folder"}}}},
            r"folder/test: lacks 2 and has 9, which train/ lacks",
        ),
        (  # garment names over digits: the program's item network, but no garment source to read
            {
                "program": str(ROOT / "programs" / "mnist_fashion_stock.pl"),
                "query": {"term": "footwear(A, B, N)", "output": "N", "inputs": {"A": "image", "B": "image"}},
                "networks": {"digit_net": {"arch": "mnist_lenet"}, "item_net": {"arch": "mnist_lenet"}},
            },
            r"networks.item_net: its domain values \(tshirt, .*\) are not the classes of source 'mnist' .* add it to "
            r"data.sources and name it in query.inputs",
        ),
        (
            {"program": "loop.pl"},
            r"query.term: addition\(A, B, Sum\) reaches no neural predicate .* for any concepts",
        ),
    ],
)
def test_bad_sources_mappings_and_networks_are_one_message(task_file, capsys, tmp_path, edit, expected):
    path = task_file()
    _bad_sources(tmp_path)
    data = yaml.safe_load(path.read_text())
    for key, value in edit.items():
        data[key] = {**data.get(key, {}), **value} if key == "data" else value
    path.write_text(yaml.safe_dump(data))
    code = main(["run", str(path), "--set", "train.iterations=1", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert __import__("re").search(expected, err), err
    assert not (tmp_path / "run").exists()


def test_the_wheel_ships_the_tasks_and_programs_and_a_shipped_task_loads_by_name(tmp_path, monkeypatch):
    import subprocess
    import sys
    import zipfile

    from nesy_gedi.assembly import config as config_module

    build = [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q", "-w"]
    subprocess.run([*build, str(tmp_path / "wheel")], check=True, capture_output=True)
    wheel = zipfile.ZipFile(next((tmp_path / "wheel").glob("nesy_gedi-*.whl")))
    names = wheel.namelist()
    assert any(n.endswith("licenses/LICENSE") for n in names)
    data = [n for n in names if "/data/share/nesy_gedi/" in n]
    assert {n.split("/share/nesy_gedi/")[1] for n in data} >= {"tasks/mnist_add.yaml", "programs/mnist_addition.pl"}
    for name in data:  # the wheel's share/ as pip lays it out under the environment's prefix
        target = tmp_path / "prefix" / name.split("/data/", 1)[1]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(wheel.read(name))
    monkeypatch.setattr(config_module, "SHIPPED", [tmp_path / "prefix" / "share" / "nesy_gedi" / "tasks"])
    task = nesy_gedi.load_task("mnist_add")
    assert task.config.program == str(tmp_path / "prefix" / "share" / "nesy_gedi" / "programs" / "mnist_addition.pl")
