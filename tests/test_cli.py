"""Bad input through the command line: one clear message, exit status 2, no traceback."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import torch

from nesy_gedi.cli import main

from .conftest import ROOT

PROGRAM = (
    "nn(mnist_net,[X],Y,[0,1,2,3,4,5,6,7,8,9]) :: digit(X,Y).\naddition(X,Y,Z) :- digit(X,A), digit(Y,B), Z is A+B.\n"
)
# keeps a case that wrongly passes validation from starting a long run
SMALL = ("--set", "data.train_size=10", "--set", "data.test_size=10", "--set", "train.iterations=1")


def run_cli(capsys, *args: str) -> tuple[int, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.err


@pytest.mark.parametrize(
    "edit, expected",
    [
        (
            lambda t: t.replace("batch_size: 2", "batch_size: 2\n  epoks: 2"),
            r"task.yaml:\d+: key 'train.epoks': no such key",
        ),
        (
            lambda t: t.replace("batch_size: 2", "batch_size: 2.5"),
            r"key 'train.batch_size': Input should be a valid integer",
        ),
        (lambda t: t.replace("prog.pl", "missing.pl"), r"program file .*missing.pl not found"),
    ],
)
def test_bad_task_files(task_file, capsys, edit, expected):
    path = task_file()
    edited = edit(path.read_text())
    assert edited != path.read_text()
    path.write_text(edited)
    code, err = run_cli(capsys, "run", str(path), *SMALL)
    assert code == 2
    assert "Traceback" not in err
    assert re.search(expected, err), err


@pytest.mark.parametrize(
    "program, expected",
    [
        (PROGRAM.replace("digit(Y,B)", "digit(Y,B"), r"prog.pl:2: program syntax error"),
        (PROGRAM.replace("nn(mnist_net", "nn(digit_net"), r"prog.pl:1: .*network 'digit_net', which the task does not"),
        (
            PROGRAM.replace("Z is A+B", "A > 9, Z is A+B"),
            r"the program proves no answer for the query addition\(a,b,Sum\)",
        ),
    ],
)
def test_bad_programs(task_file, capsys, tmp_path, program, expected):
    path = task_file(program=program)
    code, err = run_cli(capsys, "run", str(path), *SMALL, "--out", str(tmp_path / "run"))
    assert code == 2
    assert "Traceback" not in err
    assert re.search(expected, err), err
    assert not (tmp_path / "run").exists()  # stopped before training: no empty run folder left behind


def test_bad_overrides_and_resume(task_file, capsys, tmp_path):
    code, err = run_cli(capsys, "run", str(task_file()), "--set", "train.iterations")
    assert code == 2 and "expected KEY=VALUE" in err
    code, err = run_cli(capsys, "run", "--resume", str(tmp_path))
    assert code == 2 and "not a run folder" in err
    code, err = run_cli(capsys, "run", str(tmp_path / "none.yaml"))
    assert code == 2 and "task file not found" in err


def test_exit_status_from_a_real_process(task_file):
    path = task_file()
    result = subprocess.run(
        [sys.executable, "-m", "nesy_gedi", "run", str(path), "--set", "method=gedx"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: --set method=gedx: unknown method 'gedx'")
    assert "Traceback" not in result.stderr


def _binary_program(path):
    path.write_bytes(bytes(range(256)) * 4)


def _directory_program(path):
    path.unlink()
    path.mkdir()


def _undefined_query(path):
    path.write_text(PROGRAM.replace("addition(X,Y,Z)", "sum_of(X,Y,Z)"))


def _built_in_redefined(path):
    path.write_text(PROGRAM + "plus(X,Y,Z) :- Z is X+Y.\n")


@pytest.mark.parametrize(
    "spoil, expected",
    [
        (_binary_program, r"prog.pl: not a text file \(byte 128 is not UTF-8\)"),
        (_directory_program, r"prog.pl is a directory; name a program file"),
        (_undefined_query, r"does not define addition/3; it defines digit/2, sum_of/3"),
        (_built_in_redefined, r"prog.pl(:\d+)?: Can not overwrite built-in 'plus/3'; rename the predicate"),
    ],
)
@pytest.mark.parametrize("command", ["run", "shortcuts", "compare"])
def test_a_program_that_cannot_be_read_or_asked_is_one_message_everywhere(
    task_file, capsys, tmp_path, spoil, expected, command
):
    path = task_file(program=PROGRAM)
    spoil(path.parent / "prog.pl")
    args = {"run": ["run", str(path), *SMALL, "--out", str(tmp_path / "run")], "shortcuts": ["shortcuts", str(path)]}
    args["compare"] = ["compare", str(path), "--methods", "dpl", "--seeds", "1", "--out", str(tmp_path / "run")]
    code, err = run_cli(capsys, *args[command])
    assert code == 2 and "Traceback" not in err
    assert re.search(expected, err), err
    assert not (tmp_path / "run").exists()


def test_compare_names_the_methods_option_for_an_unknown_method(task_file, capsys, tmp_path):
    code, err = run_cli(capsys, "compare", str(task_file()), "--methods", "dpl,gedy", "--out", str(tmp_path / "c"))
    assert code == 2 and err.startswith("error: --methods: unknown method 'gedy'; known: dpl, entropy, gedi")
    assert not (tmp_path / "c").exists()


def test_the_output_variable_cannot_be_an_input(task_file, capsys, tmp_path):
    path = task_file(query={"term": "addition(A, B, Sum)", "output": "A", "inputs": {"A": "image", "B": "image"}})
    code, err = run_cli(capsys, "run", str(path), *SMALL, "--out", str(tmp_path / "run"))
    assert code == 2 and "query.output: 'A' is also an input" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--set", "train.lr=[1,"], r"--set train.lr=\[1,: the value is not valid YAML"),
        (["--seed", "-1"], r"--set seed=-1: Input should be greater than or equal to 0"),
        (["--seed", str(2**32)], r"--set seed=4294967296: Input should be less than or equal to 4294967295"),
    ],
)
def test_bad_command_line_values_leave_no_folder(task_file, tmp_path, capsys, args, expected):
    out = tmp_path / "run"
    code, err = run_cli(capsys, "run", str(task_file()), *SMALL, *args, "--out", str(out))
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) <= 2
    assert re.search(expected, err), err
    assert not out.exists()


def test_a_key_given_twice_names_both_lines(task_file, capsys):
    path = task_file()
    path.write_text(path.read_text() + "train: {iterations: 3}\n")
    code, err = run_cli(capsys, "run", str(path), *SMALL)
    assert code == 2
    assert re.search(r"task.yaml:\d+: not valid YAML: key 'train' is given twice, at lines \d+ and \d+", err), err


def test_out_is_a_new_folder_and_a_finished_run_is_not_resumed(task_file, tmp_path, capsys):
    path, existing = task_file(), tmp_path / "a_file"
    existing.write_text("")
    code, err = run_cli(capsys, "run", str(path), *SMALL, "--out", str(existing))
    assert code == 2 and "a file of that name exists" in err
    out = tmp_path / "run"
    umask = os.umask(0o022)  # a shared cluster's usual: files readable by the group
    try:
        assert run_cli(capsys, "run", str(path), *SMALL, "--out", str(out))[0] == 0
    finally:
        os.umask(umask)
    assert {f.name: oct(f.stat().st_mode & 0o777) for f in out.iterdir() if f.is_file()} == {
        f.name: "0o644" for f in out.iterdir() if f.is_file()
    }
    torch.load(out / "checkpoint.pt")  # torch's default (weights_only=True) reads every file a run saves
    log = (out / "train_log.jsonl").read_text()
    code, err = run_cli(capsys, "run", str(path), *SMALL, "--out", str(out))
    assert code == 2 and "already holds a finished run" in err
    code, err = run_cli(capsys, "run", "--resume", str(out))
    assert code == 2 and "this run has finished" in err
    assert (out / "train_log.jsonl").read_text() == log


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.startswith("nesy-gedi ")


def test_a_batch_normalised_network_never_sees_one_image_in_training(tmp_path, capsys):
    """batch_size 1 on one-image queries is refused before any folder; an epoch's last batch of one query
    (17 queries, batch 8) joins the batch before it instead of crashing batch normalisation."""
    task = str(ROOT / "tasks" / "mnist_digit.yaml")
    bn = ("--set", "networks.mnist_net.arch=mnist_lenet_bn", "--set", "data.test_size=8")
    code, err = run_cli(capsys, "run", task, *bn, "--set", "train.batch_size=1", "--out", str(tmp_path / "a"))
    assert code == 2 and "batch-normalised) a single image in training" in err and not (tmp_path / "a").exists()
    out = tmp_path / "b"
    args = ("--set", "data.train_size=17", "--set", "train.batch_size=8", "--set", "train.epochs=2", "--out", str(out))
    assert run_cli(capsys, "run", task, *bn, *args)[0] == 0
    sizes = [row["step"] for row in map(json.loads, (out / "train_log.jsonl").read_text().splitlines())]
    assert sizes == [1, 2, 3, 4]  # two steps an epoch: 8 queries, then 9


@pytest.mark.parametrize(
    "combinations, expected",
    [
        ("[[0, 6], [12, 1]]", r"\[12, 1\] gives image 1 the concept index 12, outside the domain of mnist_net"),
        ("[[0, 6, 1]]", r"\[0, 6, 1\] has 3 concepts; a query has 2 images"),
    ],
)
def test_combinations_outside_the_domain_are_named(tmp_path, capsys, combinations, expected):
    task = str(ROOT / "tasks" / "mnist_evenodd.yaml")
    code, err = run_cli(capsys, "run", task, "--set", f"data.combinations={combinations}", "--out", str(tmp_path / "r"))
    assert code == 2 and re.search(expected, err), err
    assert not (tmp_path / "r").exists()
