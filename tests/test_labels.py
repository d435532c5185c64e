"""Programs the project has not seen: true/false queries, labels sampled from a program's own noise, and
labels from the user's query files."""

from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import pytest
import torch
import yaml
from problog.logic import Constant

from nesy_gedi.assembly.task import build_queries, load_task
from nesy_gedi.cli import main
from nesy_gedi.commands.run import run_task
from nesy_gedi.data.queries import Position
from nesy_gedi.data.query_files import read_query_file
from nesy_gedi.errors import UserError
from nesy_gedi.logic.program import FALSE, TRUE, Program
from nesy_gedi.logic.query import QueryTemplate
from nesy_gedi.training.learners import symbolic_loss
from nesy_gedi.training.rundir import RunDir

from .conftest import ROOT

DIGIT = "nn(mnist_net, [X], Y, [0,1,2,3,4,5,6,7,8,9]) :: digit(X, Y).\n"
PARITY = (
    DIGIT + "odd_sum(X, Y) :- digit(X, A), digit(Y, B), 1 is (A + B) mod 2.\neven_sum(X, Y) :- \\+ odd_sum(X, Y).\n"
)
NOISY = DIGIT + "t(0.25)::flip.\nadd(X, Y, Z) :- digit(X, A), digit(Y, B), \\+ flip, Z is A + B.\n"
NOISY += "add(X, Y, Z) :- digit(X, A), digit(Y, B), flip, Z is 100.\n"
PAIR = {"A": "image", "B": "image"}


def program(tmp_path, text: str) -> Program:
    path = tmp_path / "p.pl"
    path.write_text(text)
    return Program(path)


def test_negative_examples_take_the_loss_on_one_minus_p():
    p = torch.tensor([0.9, 0.2, 0.7], requires_grad=True)
    loss = symbolic_loss(p.log(), torch.tensor([1.0, 0.0, 0.0]))
    assert float(loss.detach()) == pytest.approx(-(math.log(0.9) + math.log(0.8) + math.log(0.3)) / 3, rel=1e-6)
    assert float(symbolic_loss(p[:1].log(), torch.tensor([1.0]))) == pytest.approx(-math.log(0.9), rel=1e-6)


def test_a_true_false_query_is_labelled_true_or_false_by_the_program_with_negation(tmp_path):
    template = QueryTemplate(program(tmp_path, PARITY), "even_sum(A, B)", None, PAIR)
    assert template.boolean and template.labels() == {"true", "false"}
    assert template.label([3, 5]) == TRUE and template.label([2, 5]) == FALSE
    query = template.query(["train", "train"], [4, 7], FALSE)
    assert query.p == 0.0 and query.output_ind == () and str(query.query) == "even_sum(a,b)"
    assert template.query(["train", "train"], [4, 7], TRUE).p == 1.0


@pytest.mark.parametrize(
    "term, output, expected",
    [
        ("even_sum(A, B)", "A", r"query.output: 'A' is also an input"),
        ("sum_of(A, B)", None, r"does not define sum_of/2; it defines digit/2, even_sum/2, odd_sum/2"),
        ("even_sum(A, C)", None, r"variable\(s\) C of 'even_sum\(A, C\)' are neither inputs nor the output"),
    ],
)
def test_a_query_the_program_cannot_ask_is_a_clear_error(tmp_path, term, output, expected):
    with pytest.raises(UserError, match=expected):
        QueryTemplate(program(tmp_path, PARITY), term, output, {"A": "image"} if "C" in term else PAIR)


def test_probabilistic_facts_give_a_distribution_and_program_labels_say_to_sample(tmp_path):
    template = QueryTemplate(program(tmp_path, NOISY), "add(A, B, Z)", "Z", PAIR)
    found = template.distribution([3, 4])
    assert found == {Constant(7): pytest.approx(0.75), Constant(100): pytest.approx(0.25)}
    assert template.prediction([3, 4]) == Constant(7)
    with pytest.raises(UserError, match=r"uncertain \(7: 0.75, 100: 0.25\).*data.labels: sampled"):
        template.label([3, 4])
    assert "100" in template.labels() and "18" in template.labels() and "19" not in template.labels()


def noisy_task(tmp_path, task_file, **data):
    return task_file(
        program=NOISY,
        query={"term": "add(A, B, Z)", "output": "Z", "inputs": PAIR},
        data={"labels": "sampled", **data},
    )


def test_sampled_labels_carry_exactly_the_programs_noise(tmp_path, task_file, mnist):
    config = load_task(noisy_task(tmp_path, task_file, train_size=4000, test_size=100))
    first = build_queries(config)[2]
    again = build_queries(config)[2]
    assert [str(x) for x in first["train"].labels] == [str(x) for x in again["train"].labels]  # same seed
    flipped = Counter(str(label) == "100" for label in first["train"].labels)[True] / 4000
    assert flipped == pytest.approx(0.25, abs=0.025)  # 3 standard deviations of a binomial(4000, 0.25) share
    sums = [int(mnist.train.labels[row].sum()) for row in first["train"].indices]
    assert all(str(label) in (str(s), "100") for label, s in zip(first["train"].labels, sums, strict=True))
    other = load_task(noisy_task(tmp_path, task_file, train_size=4000, test_size=100), {"seed": "1"})
    moved = build_queries(other)[2]["train"].labels
    assert [str(x) for x in moved] != [str(x) for x in first["train"].labels]


def test_program_labels_of_a_noisy_program_name_the_fix(tmp_path, task_file, capsys):
    path = noisy_task(tmp_path, task_file, train_size=10, test_size=10)
    text = path.read_text().replace("labels: sampled", "labels: program")
    path.write_text(text)
    assert main(["run", str(path), "--set", "train.iterations=1", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "uncertain" in err and "data.labels: sampled" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_balanced_true_false_queries(tmp_path, task_file, mnist):
    path = task_file(
        program=PARITY.replace(
            "even_sum(X, Y) :- \\+ odd_sum(X, Y).", "less(X, Y) :- digit(X, A), digit(Y, B), A < B."
        ),
        query={"term": "less(A, B)", "inputs": PAIR},
        data={"balance": True, "train_size": 600, "test_size": 201},
    )
    config = load_task(path)
    sets = build_queries(config)[2]
    assert Counter(map(str, sets["train"].labels)) == {"true": 300, "false": 300}
    assert Counter(map(str, sets["id"].labels)) == {"true": 101, "false": 100}
    for row, label in zip(sets["train"].indices, sets["train"].labels, strict=True):
        a, b = mnist.train.labels[row]
        assert (label == TRUE) == (a < b)


def test_a_small_less_run_beats_the_majority_class(tmp_path):
    """Real MNIST: 2,000 balanced true/false pairs, 150 steps; the majority class is 50 %."""
    sets = {"data.train_size": "2000", "data.test_size": "400", "train.iterations": "150", "train.threads": "2"}
    metrics = run_task(load_task(ROOT / "tasks" / "mnist_less.yaml", sets), RunDir(tmp_path), "test")
    assert metrics["status"] == "finished" and metrics["task_accuracy"] > 0.75


# ---- query files --------------------------------------------------------------------------------------------


def positions(labels: np.ndarray, count: int) -> list[Position]:
    """`count` positions reading the same split, classes = concepts."""
    return [Position("mnist_test", labels, np.arange(10))] * count


def write_rows(path, rows: list[dict]) -> None:
    if path.suffix == ".csv":
        keys = list(rows[0])
        path.write_text(",".join(keys) + "\n" + "".join(",".join(str(r[k]) for k in keys) + "\n" for r in rows))
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_query_files_round_trip(tmp_path, suffix, mnist):
    inputs = {"A": 2, "B": 1}
    template = QueryTemplate(Program(ROOT / "programs" / "mnist_multi_addition.pl"), "addition(A, B, S)", "S", inputs)
    rows = []
    for q in range(5):
        a, b = [4 * q, 4 * q + 1], [4 * q + 2]
        total = int(mnist.test.labels[a[0]]) * 10 + int(mnist.test.labels[a[1]]) + int(mnist.test.labels[b[0]])
        rows.append({"A": " ".join(map(str, a)) if suffix == ".csv" else a, "B": b[0], "label": total})
    write_rows(path := tmp_path / f"q{suffix}", rows)
    found = read_query_file(path, "test", template.counts, positions(mnist.test.labels, 3), template.labels(), False)
    assert found.indices.tolist() == [[4 * q, 4 * q + 1, 4 * q + 2] for q in range(5)]
    assert [str(x) for x in found.labels] == [str(r["label"]) for r in rows]
    if suffix == ".csv":  # saved by Excel as "CSV UTF-8": a byte-order mark before the header
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
        again = read_query_file(
            path, "test", template.counts, positions(mnist.test.labels, 3), template.labels(), False
        )
        assert again.indices.tolist() == found.indices.tolist()


@pytest.mark.parametrize(
    "content, expected",
    [
        ("A,B,label\n0,1,7\n2,99999,5\n", r"q.csv:3: image index 99999 does not exist: mnist_test has 10000 images"),
        ("A,B,label\n0,1,7\n2,3,19\n", r"q.csv:3: label '19' is not an answer the program can give"),
        ("A,B,label\n0,1,7\n2,3\n", r"q.csv:3: this row has another number of fields than the header"),
        ("A,C,label\n0,1,7\n", r"q.csv:2: expected the keys A, B, label .*missing B"),
        ("A,B,label\n0,x,7\n", r"q.csv:2: 'B' needs 1 whole-number image index, got 'x'"),
        (b"A,B,label\n\xff\xfe\n", r"q.csv: not a text file"),
    ],
)
def test_malformed_query_files_name_the_file_and_line(tmp_path, content, expected):
    path = tmp_path / "q.csv"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    template = QueryTemplate(Program(ROOT / "programs" / "mnist_addition.pl"), "addition(A, B, S)", "S", PAIR)
    with pytest.raises(UserError, match=expected):
        read_query_file(path, "test", template.counts, positions(np.zeros(10_000, int), 2), template.labels(), False)


def test_malformed_json_lines_name_the_line(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text('{"A": 0, "B": 1, "label": 7}\n{"A": 0, "B": \n')
    with pytest.raises(UserError, match=r"q.jsonl:2: not valid JSON"):
        read_query_file(path, "train", {"A": 1, "B": 1}, positions(np.zeros(60_000, int), 2), {"7"}, False)


def file_task(tmp_path, task_file, mnist, suffix=".csv"):
    """Addition from query files whose labels come from MNIST's labels (not the program), one in ten wrong."""
    rng = np.random.default_rng(0)
    for split, images, n in (("train", mnist.train, 600), ("test", mnist.test, 200)):
        pairs = rng.choice(len(images.labels), size=(n, 2), replace=False)
        sums = images.labels[pairs].sum(1)
        noisy = np.where(np.arange(n) % 10 == 0, (sums + 1) % 19, sums)
        write_rows(
            tmp_path / f"{split}{suffix}",
            [{"A": int(a), "B": int(b), "label": int(s)} for (a, b), s in zip(pairs, noisy, strict=True)],
        )
    return task_file(data={"labels": "files", "query_files": {"train": f"train{suffix}", "test": f"test{suffix}"}})


def test_a_users_query_files_run_compare_and_count_shortcuts(tmp_path, task_file, mnist, capsys):
    path = file_task(tmp_path, task_file, mnist)
    config = load_task(path, {"train.iterations": "30", "train.batch_size": "8"})
    metrics = run_task(config, RunDir(tmp_path / "run"), "test")
    assert metrics["train_queries"] == 600 and metrics["id_queries"] == 200
    assert metrics["task_accuracy_ceiling"] == pytest.approx(0.9)  # the files' own label noise
    assert metrics["train_labels_disagreeing"] == 60 and metrics["train_label_noise"] == pytest.approx(0.1)
    assert "| train_labels_disagreeing | 60 |" in (tmp_path / "run" / "report.md").read_text()
    out = tmp_path / "cmp"
    sets = ["--set", "train.iterations=5", "--set", "train.batch_size=8"]
    assert main(["compare", str(path), "--methods", "dpl,entropy", "--seeds", "1", "--out", str(out), *sets]) == 0
    assert "| dpl | 1/1 |" in (out / "comparison.md").read_text()
    capsys.readouterr()
    assert main(["shortcuts", str(path)]) == 0
    printed = capsys.readouterr().out
    assert "training combinations of true concepts" in printed and "shortcuts: 0 (bijective: 0)" in printed


def test_query_file_keys_must_agree(tmp_path, task_file, capsys):
    path = task_file(data={"labels": "files"})
    assert main(["run", str(path)]) == 2
    assert "'data.labels': `files` needs data.query_files" in capsys.readouterr().err
    path = task_file(data={"labels": "files", "query_files": {"train": "none.csv", "test": "none.csv"}})
    assert main(["run", str(path)]) == 2
    assert "data.query_files.train" in (err := capsys.readouterr().err) and "not found" in err


def test_the_shipped_query_files_task_reads_its_files(mnist):
    config = load_task(ROOT / "tasks" / "mnist_add_files.yaml")
    sets = build_queries(config)[2]
    assert (len(sets["train"]), len(sets["id"])) == (6000, 1000) and "ood" not in sets
    for split, images in (("train", mnist.train), ("id", mnist.test)):
        sums = images.labels[sets[split].indices].sum(1)
        assert [str(x) for x in sets[split].labels] == [str(s) for s in sums]  # MNIST's own labels


def test_a_15_digit_chain_reads_query_files_without_its_answer_set(tmp_path, mnist, monkeypatch, capsys):
    """10^15 sums cannot be listed: a chain's file labels are checked by its split predicate and by p(label) under
    every concept possible; a label no digits give is refused before training, with the file and the query."""
    rng = np.random.default_rng(1)

    def chain_rows(labels: np.ndarray, n: int) -> list[dict]:
        found = []
        for _ in range(n):
            a, b = (rng.choice(len(labels), 15, replace=False) for _ in range(2))
            number = [int("".join(str(labels[i]) for i in x)) for x in (a, b)]
            found.append({"A": a.tolist(), "B": b.tolist(), "label": sum(number)})
        return found

    rows = chain_rows(mnist.train.labels, 8)
    rows[5]["label"] += 1  # a noisy label: possible, and counted as disagreeing
    write_rows(tmp_path / "train.jsonl", rows)
    write_rows(tmp_path / "test.jsonl", chain_rows(mnist.test.labels, 2))
    task = yaml.safe_load((ROOT / "tasks" / "mnist_multi_add_15.yaml").read_text())
    task["program"] = str(ROOT / "programs" / "mnist_multi_addition_carry.pl")
    task["data"] = {"labels": "files", "query_files": {"train": "train.jsonl", "test": "test.jsonl"}}
    (tmp_path / "chain.yaml").write_text(yaml.safe_dump(task))
    monkeypatch.setattr(QueryTemplate, "labels", lambda self: pytest.fail("the answer set was asked for"))
    args = ["run", str(tmp_path / "chain.yaml"), "--set", "train.iterations=2", "--set", "train.batch_size=4"]
    assert main([*args, "--out", str(tmp_path / "run")]) == 0, capsys.readouterr().err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["train_labels_disagreeing"] == 1

    rows[6]["label"] = 10**17  # splits (its last carry would be 100), but no pair of 15-digit numbers sums to it
    write_rows(tmp_path / "train.jsonl", rows)
    assert main([*args, "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path}/train.jsonl: label 100000000000000000 of query 7 is one no concepts give" in err
    assert "Traceback" not in err and not (tmp_path / "bad").exists()
    rows[6]["label"] = "abc"
    write_rows(tmp_path / "train.jsonl", rows)
    assert main([*args, "--out", str(tmp_path / "bad")]) == 2
    assert "train.jsonl:7: label 'abc' is not a label the chain can give" in capsys.readouterr().err
