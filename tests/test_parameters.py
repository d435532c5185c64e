"""The program's learnable `t(_)` probabilities: one module, seeded starts, trained by the run's optimiser,
reported; the same parametrisation in `nesy-gedi run` and in `ProgramModule`."""

from __future__ import annotations

import json
import re

import pytest
import torch
from problog.logic import Constant, Term, Var

import nesy_gedi
from nesy_gedi.cli import main
from nesy_gedi.logic.compiled_engine import CompiledEngine
from nesy_gedi.logic.parameters import ProgramParameters
from nesy_gedi.logic.program import Program
from nesy_gedi.logic.query import QueryTemplate

from .conftest import ROOT

FAULTY = ROOT / "programs" / "faulty_sensor.pl"
TASK = ROOT / "tasks" / "mnist_faulty_sensor.yaml"
TINY = {
    "data.train_size": "40",
    "data.test_size": "20",
    "train.iterations": "30",
    "train.checkpoint_every": "10",
    "train.threads": "1",
}


def test_facts_take_a_sigmoid_and_a_disjunction_a_softmax():
    module = ProgramParameters([0.2, 0.3, 0.1, 0.4], [[1, 2, 3]], ["noisy", "c(0)", "c(1)", "c(2)"])
    values = module.values()
    assert values["noisy"] == pytest.approx(0.2)
    assert [values[f"c({i})"] for i in range(3)] == pytest.approx([0.375, 0.125, 0.5])  # renormalised, as DPL does
    module().sum().backward()  # a disjunction's sum is constant: only the fact's logit gets a gradient
    assert module.logits.grad[0] != 0 and torch.allclose(module.logits.grad[1:], torch.zeros(3), atol=1e-7)


def test_t_without_initial_value_starts_at_a_seeded_value():
    starts = [CompiledEngine(Program(FAULTY, seed), {"mnist_net": torch.nn.Identity()}, {}) for seed in (0, 0, 1)]
    values = [engine.program_parameters.values()["faulty"] for engine in starts]
    assert values[0] == values[1] != values[2] and all(0.05 < v < 0.95 for v in values)


def test_sampled_labels_from_a_program_with_t_without_value_are_refused(tmp_path, capsys):
    sets = ["--set", "data.labels=sampled", "--set", "data.query_files=null", "--out", str(tmp_path / "run")]
    assert main(["run", str(TASK), *sets]) == 2
    assert "faulty_sensor.pl:5 has `t(_)` without an initial value" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_the_programs_own_inference_takes_the_learned_values_in_deepproblogs_order(tmp_path):
    """The accuracy ceiling and the program's answers after training use what was learned, each value on
    its own fact (the order of DeepProbLog's parameters)."""
    path = tmp_path / "p.pl"
    path.write_text(
        "nn(mnist_net, [X], Y, [0,1,2,3,4,5,6,7,8,9]) :: digit(X, Y).\n"
        "t(0.5) :: c(0); t(0.5) :: c(1).\nt(_) :: faulty.\n"
        "r(X, Z) :- digit(X, A), c(C), \\+ faulty, Z is A + C.\n"
        "r(X, Z) :- digit(X, A), faulty, Z is A + 5.\n"
    )
    program = Program(path, seed=4)
    engine = CompiledEngine(program, {"mnist_net": torch.nn.Identity()}, {})
    assert list(engine.program_parameters.values()) == ["c(0)", "c(1)", "faulty"]
    x, z = Term("x"), Var("Z")
    program.use_values([0.7, 0.3, 0.1])
    found = program.distribution(Term("r", x, z), z, [x], [2])
    assert {int(k): round(v, 9) for k, v in found.items()} == {2: 0.63, 3: 0.27, 7: 0.1}


def test_program_module_and_the_run_read_the_same_parameters_with_the_same_gradients():
    program = Program(FAULTY, seed=3)
    module = nesy_gedi.ProgramModule(program, "reading(A, B, Sum)", "Sum", {"A": "image", "B": "image"})
    template = QueryTemplate(program, "reading(A, B, Sum)", "Sum", {"A": "image", "B": "image"})
    engine = CompiledEngine(program, {"mnist_net": torch.nn.Identity()}, {}, template=template)
    assert module.program_parameters.values() == engine.program_parameters.values()
    torch.manual_seed(0)
    a, b = torch.randn(5, 10).softmax(-1), torch.randn(5, 10).softmax(-1)
    labels = [3, 7, 0, 19, 12]
    ours = module({"A": a, "B": b})
    column = {int(str(answer)): k for k, answer in enumerate(module.answers)}
    from_module = ours[torch.arange(5), torch.tensor([column[label] for label in labels])]
    from_run = engine.label_values({("mnist_net", "a"): a, ("mnist_net", "b"): b}, [Constant(x) for x in labels])
    assert torch.allclose(from_module, from_run, atol=1e-6)
    from_module.log().sum().backward()
    from_run.log().sum().backward()
    assert torch.allclose(module.program_parameters.logits.grad, engine.program_parameters.logits.grad, atol=1e-6)


def test_a_run_learns_the_probability_and_reports_it(tmp_path, capsys):
    out = tmp_path / "run"
    sets = [f"--set={k}={v}" for k, v in TINY.items()]
    assert main(["run", str(TASK), *sets, "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    start = Program(FAULTY, 0)  # the task's seed
    initial = CompiledEngine(start, {"mnist_net": torch.nn.Identity()}, {}).program_parameters.values()["faulty"]
    learned = metrics["learned_probabilities"]["faulty"]
    assert learned != pytest.approx(initial, abs=1e-4)  # the run's optimiser moved it
    rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert len({row["t/faulty"] for row in rows}) > 1 and rows[-1]["t/faulty"] == pytest.approx(learned, abs=1e-6)
    assert "| learned_probabilities | faulty " in (out / "report.md").read_text()
    assert re.search(r"learned_probabilities +faulty ", capsys.readouterr().out)  # padded to the longest key
