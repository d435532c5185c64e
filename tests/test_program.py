"""Programs: syntax errors with their line, neural predicates, and labels computed by the program."""

from __future__ import annotations

import pytest
from problog.logic import Constant

from nesy_gedi.assembly.config import QuerySpec
from nesy_gedi.errors import UserError
from nesy_gedi.logic.program import Program
from nesy_gedi.logic.query import QueryTemplate

from .conftest import ROOT


def template(program: str, term="addition(A, B, Sum)", inputs=None) -> QueryTemplate:
    spec = QuerySpec(term=term, output="Sum", inputs=inputs or {"A": "image", "B": "image"})
    return QueryTemplate(Program(ROOT / "programs" / program), **spec.model_dump())


def test_addition_labels_come_from_the_program():
    t = template("mnist_addition.pl")
    assert t.label([3, 5]) == Constant(8)
    assert t.label([9, 9]) == Constant(18)
    query = t.query(["train", "train"], [10, 11], Constant(8))
    assert str(query.query) == "addition(a,b,8)"
    assert str(query.substitute().query) == "addition(tensor(train(10)),tensor(train(11)),8)"


@pytest.mark.parametrize("n, concepts, total", [(1, [4, 7], 11), (2, [1, 2, 3, 4], 46), (3, [9, 9, 9, 0, 0, 1], 1000)])
def test_multi_digit_labels(n, concepts, total):
    t = template("mnist_multi_addition.pl", inputs={"A": n, "B": n})
    assert t.images_per_query == 2 * n
    assert t.label(concepts) == Constant(total)


def test_syntax_error_names_line(tmp_path):
    path = tmp_path / "bad.pl"
    path.write_text("nn(net,[X],Y,[0,1]) :: d(X,Y).\n\nfoo(X) :- d(X, Y.\n")
    with pytest.raises(UserError, match=r"bad.pl:3: program syntax error"):
        Program(path)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("nn(net,[X],Y,[0,1]) :: d(X).\n", r"p.pl:1: the head d\(X\) must hold both the input X and the output Y"),
        (  # two choices for one fact would be a noisy-or of two network calls, not the network's distribution
            "nn(net,[X],Y,[0,1]) :: d(X,Y).\n% again\nnn(net,[X],Y,[0,1]) :: d(X,Y).\n",
            r"p.pl:3: d/2 is already a neural predicate \(line 1\); declare each neural predicate once",
        ),
    ],
)
def test_a_malformed_neural_predicate_names_its_line(tmp_path, text, expected):
    path = tmp_path / "p.pl"
    path.write_text(text)
    with pytest.raises(UserError, match=expected):
        Program(path)


def test_undefined_network_names_line(tmp_path):
    path = tmp_path / "p.pl"
    path.write_text("% comment\nnn(other_net,[X],Y,[0,1]) :: d(X,Y).\n")
    with pytest.raises(UserError, match=r"p.pl:2: neural predicate d/2 uses network 'other_net'"):
        Program(path).check_networks(["mnist_net"], where="task.yaml")


def test_unprovable_query(tmp_path):
    path = tmp_path / "p.pl"
    path.write_text(
        "nn(mnist_net,[X],Y,[0,1,2,3,4,5,6,7,8,9]) :: digit(X,Y).\n"
        "addition(X,Y,Z) :- digit(X,A), digit(Y,B), A < 5, Z is A+B.\n"
    )
    spec = QuerySpec(term="addition(A, B, Sum)", output="Sum", inputs={"A": "image", "B": "image"})
    t = QueryTemplate(Program(path), **spec.model_dump())
    assert t.label([1, 2]) == Constant(3)
    with pytest.raises(UserError, match="proves no answer for the query addition"):
        t.label([7, 2])
    spec = QuerySpec(term="sum_of(A, B, Sum)", output="Sum", inputs={"A": "image", "B": "image"})
    with pytest.raises(UserError, match="sum_of"):
        QueryTemplate(Program(path), **spec.model_dump()).label([1, 2])


def test_query_variables_must_exist():
    with pytest.raises(UserError, match="variable 'C' does not occur"):
        template("mnist_addition.pl", inputs={"A": "image", "C": "image"})


@pytest.mark.parametrize("engine", ["compiled", "deepproblog"])
def test_a_run_parses_its_program_once(tmp_path, monkeypatch, engine):
    """Building the task and training a step read the program's text through ProbLog's parser once."""
    from problog.parser import PrologParser

    import nesy_gedi

    program = (ROOT / "programs" / "mnist_addition.pl").read_text()
    parsed = []
    parse = PrologParser.parseString
    monkeypatch.setattr(PrologParser, "parseString", lambda self, s: parsed.append(s == program) or parse(self, s))
    task = nesy_gedi.load_task(
        ROOT / "tasks" / "mnist_add.yaml",
        {"engine": {"kind": engine}, "data": {"train_size": 16, "test_size": 8}, "train": {"iterations": 2}},
    )
    task.train(tmp_path / "run")
    assert parsed.count(True) == 1
