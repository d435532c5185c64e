"""Bad input through the command line: one clear message, exit status 2, no traceback."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from nesy_gedi.cli import main

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
