"""Nothing runs unbounded: grounding stops at its limits, shortcut counting is sized before it starts."""

from __future__ import annotations

import time

import pytest

from nesy_gedi.cli import main

ADDITION = "nn(mnist_net,[X],Y,[0,1,2,3,4,5,6,7,8,9]) :: digit(X,Y).\n"


def _run(task, tmp_path, *sets: str) -> tuple[int, float, bool]:
    started = time.monotonic()
    args = ["run", str(task), "--out", str(tmp_path / "run")]
    for item in sets:
        args += ["--set", item]
    code = main(args)
    return code, time.monotonic() - started, (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "rules",
    [
        "count(N) :- M is N + 1, count(M).\naddition(X,Y,Z) :- digit(X,N1), digit(Y,N2), count(0), Z is N1+N2.\n",
        # ever-larger terms, every one an answer
        "nat(0).\nnat(s(N)) :- nat(N).\naddition(X,Y,Z) :- digit(X,N1), digit(Y,N2), nat(S), S == stop, Z is N1+N2.\n",
    ],
    ids=["deeper", "longer"],
)
def test_a_program_that_recurses_without_end_stops_with_one_message(rules, tmp_path, task_file, capsys):
    task = task_file(program=ADDITION + rules)
    code, seconds, folder = _run(task, tmp_path, "limits.grounding_seconds=2")
    err = capsys.readouterr().err
    assert code == 2 and not folder, err
    assert err.count("error:") == 1 and "Traceback" not in err
    assert "prog.pl" in err and "grounding stopped after" in err and "limits.grounding_seconds" in err
    assert seconds < 30


def test_a_large_shortcut_count_is_refused_at_once_with_its_size(tmp_path, task_file, capsys):
    values = ",".join(map(str, range(200)))
    program = (
        f"nn(mnist_net,[X],Y,[{values}]) :: digit(X,Y).\naddition(X,Y,Z) :- digit(X,N1), digit(Y,N2), Z is N1+N2.\n"
    )
    task = task_file(program=program)
    started = time.monotonic()
    code = main(["shortcuts", str(task)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("error:") == 1, err
    assert "40,000 training combinations × 40,000 predicted concept tuples" in err and "limits.shortcut_pairs" in err
    assert time.monotonic() - started < 30


def test_a_shortcut_count_past_its_time_stops_with_how_far_it_got(tmp_path, task_file, capsys):
    values = ",".join(map(str, range(20)))
    program = (
        f"nn(mnist_net,[X],Y,[{values}]) :: digit(X,Y).\naddition(X,Y,Z) :- digit(X,N1), digit(Y,N2), Z is N1+N2.\n"
    )
    started = time.monotonic()
    # 8 s: past the count's setup (over 2 s on a busy machine), far short of the 400 combinations
    code = main(["shortcuts", str(task_file(program=program)), "--set", "limits.shortcut_seconds=8"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("error:") == 1, err
    assert "stopped after" in err and "of 400 training combinations conjoined" in err and "at least" in err
    assert time.monotonic() - started < 60


def test_a_shortcut_count_late_before_its_first_combination_still_says_why():
    from nesy_gedi.analysis.shortcut_count import _stop_if_late
    from nesy_gedi.errors import UserError

    # a busy machine can use the whole limit on the setup: no pace to extrapolate, no division by zero
    with pytest.raises(UserError, match="0 of 400 training combinations conjoined .* the setup alone used the time"):
        _stop_if_late(time.monotonic() - 3, 0, 400, "size", 2)


def test_a_compilation_past_its_time_stops_between_two_applies(tmp_path, task_file, capsys):
    # a program of its own (no cached circuit), whose SDD takes more than one apply
    program = ADDITION + "addition(X,Y,Z) :- digit(X,N1), digit(Y,N2), Z is N1+N2, Z >= 0.\n"
    code, _, folder = _run(task_file(program=program), tmp_path, "limits.compile_seconds=1e-9")
    err = capsys.readouterr().err
    assert code == 2 and not folder, err
    assert err.count("error:") == 1 and "Traceback" not in err
    assert "compilation to an SDD stopped after" in err and "limits.compile_seconds" in err and "applies" in err


def test_the_compilation_limit_counts_cpu_seconds_not_a_busy_machines_wall_clock():
    from nesy_gedi.logic.limits import Limits, _Applies, _CompileStopped

    applies, manager = _Applies(), object()
    applies.limits = Limits(compile_seconds=0.2)
    applies.check(manager)  # the first apply starts the clock
    time.sleep(0.4)  # the thread waits, as it does while other processes hold the cores
    applies.check(manager)
    spin = time.thread_time() + 0.3
    while time.thread_time() < spin:  # the thread computes: this is what the limit counts
        pass
    with pytest.raises(_CompileStopped, match="0.2 CPU seconds"):
        applies.check(manager)


def test_the_compilation_bound_leaves_problog_as_it_found_it(tmp_path, task_file):
    from problog.sdd_formula import SDDManager

    plain = (SDDManager.conjoin2, SDDManager.disjoin2)
    assert main(["run", str(task_file()), "--out", str(tmp_path / "run"), "--set", "train.iterations=2"]) == 0
    assert (SDDManager.conjoin2, SDDManager.disjoin2) == plain
