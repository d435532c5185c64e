"""`nesy-gedi shortcuts` on programs whose shortcuts can be counted by hand."""

from __future__ import annotations

import pytest
import yaml

from nesy_gedi.analysis.shortcut_count import CountLimits, count_shortcuts
from nesy_gedi.analysis.shortcuts import find_shortcuts, training_combinations
from nesy_gedi.assembly.task import domain_sizes, load_task
from nesy_gedi.cli import main
from nesy_gedi.logic.program import Program
from nesy_gedi.logic.query import QueryTemplate

from .conftest import ROOT


def count(capsys, task) -> tuple[str, str]:
    assert main(["shortcuts", str(task)]) == 0
    out = capsys.readouterr().out
    return out.strip().splitlines()[-1], out


def write_task(tmp_path, program: str, networks: list[str], term: str, inputs: dict, combinations=None):
    (tmp_path / "p.pl").write_text(program)
    task = {
        "name": "t",
        "program": "p.pl",
        "query": {"term": term, "output": "L", "inputs": inputs},
        "networks": {n: {"arch": "mnist_lenet"} for n in networks},
        "data": {"combinations": combinations} if combinations else {},
    }
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(task))
    return tmp_path / "t.yaml"


def test_plain_addition_has_no_shortcut(capsys):
    assert count(capsys, ROOT / "tasks" / "mnist_add.yaml")[0] == "shortcuts: 0 (bijective: 0)"


def test_mnist_half_shortcuts_merge_two_digits(capsys):
    """2·f(0) = 0 and f(0) + f(1) = 1 fix 0 and 1; f(2)+f(3) = 5, f(2)+f(4) = 6 leave two non-identity maps."""
    last, out = count(capsys, ROOT / "tasks" / "mnist_half.yaml")
    assert last == "shortcuts: 2 (bijective: 0)"
    assert "mnist_net: 2->3, 3->2, 4->3" in out and "mnist_net: 2->4, 3->1, 4->2" in out


def test_mnist_evenodd_has_one_bijective_shortcut(capsys):
    """Shifts +t on {0,2,4} / -t on {6,8} and +s on {1,3} / -s on {5,7,9}, t, s in 0..5: 36 maps with the
    identity; only t = s = 5, d -> (d + 5) mod 10, is one-to-one."""
    last, out = count(capsys, ROOT / "tasks" / "mnist_evenodd.yaml")
    assert last == "shortcuts: 35 (bijective: 1)"
    assert "* mnist_net: 0->5, 1->6, 2->7, 3->8, 4->9, 5->0, 6->1, 7->2, 8->3, 9->4" in out


def test_mnist_chains_has_only_merging_shortcuts(capsys):
    """The project's own task: many shortcuts, and the identity is the only one-to-one map."""
    assert count(capsys, ROOT / "tasks" / "mnist_chains.yaml")[0] == "shortcuts: 35 (bijective: 0)"


PAIR = {"A": "image", "B": "image"}
SAME = """
nn(net, [X], Y, [0, 1, 2]) :: c(X, Y).
eq(X, Y) :- c(X, A), c(Y, A).
same(X, Y, yes) :- eq(X, Y).
same(X, Y, no) :- \\+ eq(X, Y).
"""


def test_a_program_with_negation(tmp_path, capsys):
    """Equality of two concepts is kept exactly by the one-to-one maps of {0, 1, 2}: 3! - 1 = 5."""
    task = write_task(tmp_path, SAME, ["net"], "same(A, B, L)", {"A": "image", "B": "image"})
    assert count(capsys, task)[0] == "shortcuts: 5 (bijective: 5)"


def test_restricted_combinations_leave_more_freedom(tmp_path, capsys):
    """Only (0, 0) and (0, 1) seen: the maps of {0, 1} into {0, 1, 2} with f(0) != f(1): 3·2 - 1 = 5."""
    task = write_task(tmp_path, SAME, ["net"], "same(A, B, L)", {"A": "image", "B": "image"}, [[0, 0], [0, 1]])
    last, out = count(capsys, task)
    assert last == "shortcuts: 5 (bijective: 5)" and "concepts the maps are defined on: [0, 1]" in out


TWO = """
nn(colour, [X], C, [red, green]) :: colour(X, C).
nn(shape, [X], S, [round, square]) :: shape(X, S).
match(red, round).
match(green, square).
label(X, yes) :- colour(X, C), shape(X, S), match(C, S).
label(X, no) :- colour(X, C), shape(X, S), \\+ match(C, S).
"""


def test_two_neural_predicates(tmp_path, capsys):
    """Every image has matching colour and shape, so any colour map works if the shape map equals it:
    4 maps, 3 besides the identity, of which swapping both is the one-to-one one."""
    task = write_task(tmp_path, TWO, ["colour", "shape"], "label(X, L)", {"X": "image"})
    last, out = count(capsys, task)
    assert last == "shortcuts: 3 (bijective: 1)"
    assert "* colour: 0->1, 1->0; shape: 0->1, 1->0" in out


def test_output_into_a_reader_that_stops_early_is_no_error():
    """`nesy-gedi shortcuts … | head`: the reader closes the pipe; no traceback, exit 0."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "nesy_gedi", "shortcuts", str(ROOT / "tasks" / "mnist_half.yaml")]
    writer = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    writer.stdout.close()  # the reader is gone before the first line
    assert writer.wait(timeout=120) == 0
    assert b"Traceback" not in writer.stderr.read()


PARITY = """
nn(mnist_net, [X], Y, [0,1,2,3,4,5,6,7,8,9]) :: digit(X, Y).
parity(X, Y, P) :- digit(X, A), digit(Y, B), P is (A + B) mod 2.
odd(X, Y) :- parity(X, Y, 1).
even(X, Y) :- \\+ odd(X, Y).
"""


def test_parity_over_all_pairs_is_counted_not_listed(tmp_path, capsys):
    """Maps keeping the parity of every sum: each digit to one of the 5 of its parity, or all to the other
    parity: 2 · 5^10 = 19,531,250 maps, 2 · 5! · 5! = 28,800 one-to-one (the identity among both)."""
    task = write_task(tmp_path, PARITY, ["mnist_net"], "parity(A, B, L)", {"A": "image", "B": "image"})
    assert count(capsys, task)[0] == "shortcuts: 19531249 (bijective: 28799)"


@pytest.mark.parametrize(
    "program, networks, term, output, inputs, combinations",
    [
        (SAME, ["net"], "same(A, B, L)", "L", PAIR, None),
        (SAME, ["net"], "same(A, B, L)", "L", PAIR, [[0, 0], [0, 1]]),
        (TWO, ["colour", "shape"], "label(X, L)", "L", {"X": "image"}, None),
        (PARITY, ["mnist_net"], "even(A, B)", None, PAIR, [[0, 2], [2, 0], [1, 3], [3, 4], [4, 4], [5, 6]]),
        ("mnist_half.yaml", None, None, None, None, None),
        ("mnist_evenodd.yaml", None, None, None, None, None),
        ("mnist_chains.yaml", None, None, None, None, None),
        ("mnist_less.yaml", None, None, None, None, None),
    ],
)
def test_compiled_counts_equal_enumeration(tmp_path, program, networks, term, output, inputs, combinations):
    """Knowledge compilation and the enumeration of every map agree wherever the enumeration finishes
    (true/false queries, negation, two neural predicates, restricted and shipped tasks)."""
    if program.endswith(".yaml"):
        config = load_task(ROOT / "tasks" / program)
    else:
        path = write_task(tmp_path, program, networks, term, inputs, combinations)
        config = load_task(path, {"query.output": "null"} if output is None else {})
    prog = Program(config.program)
    template = QueryTemplate(prog, **config.query.model_dump())
    sizes = domain_sizes(prog, config)
    combos = training_combinations(template, sizes, config.data.combinations)
    listed = find_shortcuts(prog, template, sizes, combos)
    counted = count_shortcuts(template, sizes, combos, CountLimits(10**9, 600.0), listed=10_000)
    assert (counted.total, counted.bijective) == (len(listed.maps), len(listed.bijective))
    if len(listed.maps) <= 10_000:  # listed from the models as well when they are few enough
        assert sorted(map(str, counted.maps)) == sorted(map(str, listed.maps))
