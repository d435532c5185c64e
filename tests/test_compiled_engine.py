"""The compiled engine against DeepProbLog's ExactEngine: same probabilities and gradients (float64, 1e-6)."""

from __future__ import annotations

import math
from functools import partial

import pytest
import torch
from deepproblog.query import Query
from problog.logic import Constant, Term, Var, list2term, term2list
from torch import nn

from nesy_gedi.logic.compiled_engine import CompiledEngine, cache_key
from nesy_gedi.logic.deepproblog_engine import DeepProbLogEngine
from nesy_gedi.logic.program import Program

from .conftest import ROOT

DIGITS = "[0,1,2,3,4,5,6,7,8,9]"
NEGATION_TWO_NETWORKS = f"""
nn(digit_net, [X], Y, {DIGITS}) :: digit(X, Y).
nn(parity_net, [X], P, [even, odd]) :: parity(X, P).
same_parity(X, Y) :- parity(X, P), parity(Y, P).
big(X) :- digit(X, D), D > 4.
ok(X, Y) :- same_parity(X, Y), \\+ big(X).
check(X, Y, yes) :- ok(X, Y).
check(X, Y, no) :- \\+ ok(X, Y).
"""
FACTS_AND_PARAMETERS = f"""
nn(digit_net, [X], Y, {DIGITS}) :: digit(X, Y).
t(0.2) :: noisy.
0.3 :: bias.
t(0.5) :: coin(0); t(0.5) :: coin(1).
addition(X, Y, Z) :- \\+ noisy, digit(X, A), digit(Y, B), Z is A + B.
addition(X, Y, Z) :- noisy, bias, coin(C), digit(X, A), Z is A + C.
"""


class Lookup(nn.Module):
    """A 'network' whose logits for image i are row i of a table: gradients w.r.t. its outputs are visible."""

    def __init__(self, images: int, domain: int) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.randn(images, domain, dtype=torch.float64) * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.table[x.long().view(-1)]


@pytest.fixture(autouse=True)
def float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def engines(program: Program, domains: dict[str, int], images: int, circuits: str = "answers", semiring: str = "real"):
    source = {"train": torch.arange(images, dtype=torch.float64).view(images, 1)}
    made = []
    for make in (DeepProbLogEngine, partial(CompiledEngine, circuits=circuits, semiring=semiring)):
        torch.manual_seed(0)
        nets = {name: Lookup(images, size) for name, size in domains.items()}
        made.append(make(program, nets, source))
    return made


def queries(functor: str, shape: list[int], count: int, lists: bool = False) -> list[Query]:
    """`count` queries functor(X1, ..., Out) whose inputs are lists of n images, or single images (n = 1)."""
    made, image = [], 0
    for _ in range(count):
        args, substitution = [], {}
        for v, n in enumerate(shape):
            placeholders = [Term(f"p{v}_{i}") for i in range(n)]
            for ph in placeholders:
                substitution[ph] = Term("tensor", Term("train", Constant(image)))
                image += 1
            args.append(list2term(placeholders) if lists or n > 1 else placeholders[0])
        made.append(Query(Term(functor, *args, Var("Out")), substitution))
    return made


def compare(
    program_text,
    domains,
    functor,
    shape,
    tmp_path,
    count=6,
    lists=False,
    all_answers=True,
    circuits="answers",
    semiring="real",
) -> None:
    """Probabilities and gradients of labelled queries (the compiled engine training on `circuits`) and,
    with `all_answers`, the probability of every answer, against DeepProbLog's."""
    path = tmp_path / "p.pl"
    path.write_text(program_text)
    program = Program(path)
    dpl, compiled = engines(program, domains, count * sum(shape), circuits, semiring)
    open_queries = queries(functor, shape, count, lists)
    if all_answers:  # every answer DeepProbLog finds, with its probability, for every query
        solved = dpl.solve(open_queries)
        for q, result in zip(open_queries, solved, strict=True):
            names, table = compiled.evaluate([q], all_answers=True)[0][1]
            ours = dict(zip(names, table.unbind(1), strict=True))
            assert result.result and len(ours) == len(result.result)
            for k, p in result.result.items():
                answer = q.query(*q.query.args[:-1], k.args[-1])
                value = float(ours[str(answer)][0])
                assert (math.exp(value) if semiring == "log" else value) == pytest.approx(float(p), abs=1e-6)
        labels = [max(r.result, key=lambda t: float(r.result[t])).args[-1] for r in solved]
    else:  # label = the program's answer for the digits each table currently prefers
        net = next(iter(dpl.networks.values()))
        labels = []
        for q in open_queries:
            images = [
                ph for arg in q.query.args[:-1] for ph in (term2list(arg, False) if arg.functor == "." else [arg])
            ]
            concepts = [int(net.table[int(q.substitution[ph].args[0].args[0])].argmax()) for ph in images]
            labels.append(program.answer(q.query, q.query.args[-1], images, concepts))
    labelled = [q.replace_output([label]) for q, label in zip(open_queries, labels, strict=True)]
    grads = []
    for engine in (dpl, compiled):
        engine.zero_grad()
        probs = engine.probabilities(labelled)
        engine.log_probabilities(labelled).sum().backward()
        grads.append(
            (
                [p.grad.clone() for net in engine.networks.values() for p in net.parameters()],
                probs.detach(),
                engine.program_parameters.logits.grad,
            )
        )
    (g_dpl, p_dpl, t_dpl), (g_ours, p_ours, t_ours) = grads
    assert torch.allclose(p_dpl, p_ours, atol=1e-6, rtol=0)
    for a, b in zip(g_dpl, g_ours, strict=True):
        assert torch.allclose(a, b, atol=1e-6, rtol=0)
    assert (t_dpl is None) == (t_ours is None)  # the t(_) probabilities' gradients, through their logits
    if t_dpl is not None:
        assert torch.allclose(t_dpl, t_ours, atol=1e-6, rtol=0)


@pytest.mark.parametrize("circuits", ["answers", "labels"])
def test_single_digit_addition(tmp_path, circuits):
    program = (ROOT / "programs" / "mnist_addition.pl").read_text()
    compare(program, {"mnist_net": 10}, "addition", [1, 1], tmp_path, circuits=circuits)


@pytest.mark.parametrize("circuits", ["answers", "labels"])
def test_two_digit_addition_whole_numbers(tmp_path, circuits):
    program = (ROOT / "programs" / "mnist_multi_addition.pl").read_text()
    compare(program, {"mnist_net": 10}, "addition", [2, 2], tmp_path, count=2, circuits=circuits)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_digit_by_digit_addition(tmp_path, n):
    program = (ROOT / "programs" / "mnist_multi_addition_carry.pl").read_text()
    # the all-answers circuit of 3-digit numbers is too large to compile in a test (both engines): labels there
    answers = n < 3
    compare(
        program,
        {"mnist_net": 10},
        "addition",
        [n, n],
        tmp_path,
        count=3,
        lists=True,
        all_answers=answers,
        circuits="answers" if answers else "labels",
    )


@pytest.mark.parametrize("circuits", ["answers", "labels"])
def test_negation_and_two_neural_predicates(tmp_path, circuits):
    compare(NEGATION_TWO_NETWORKS, {"digit_net": 10, "parity_net": 2}, "check", [1, 1], tmp_path, circuits=circuits)


@pytest.mark.parametrize("circuits", ["answers", "labels"])
def test_probabilistic_facts_and_learnable_parameters(tmp_path, circuits):
    compare(FACTS_AND_PARAMETERS, {"digit_net": 10}, "addition", [1, 1], tmp_path, circuits=circuits)


def test_one_network_call_per_batch(tmp_path):
    _, compiled = engines(Program(ROOT / "programs" / "mnist_addition.pl"), {"mnist_net": 10}, images=64)
    calls = []
    compiled.networks["mnist_net"].register_forward_hook(lambda module, args, out: calls.append(len(args[0])))
    batch = queries("addition", [1, 1], 32)
    compiled.probabilities([q.replace_output([Constant(i % 19)]) for i, q in enumerate(batch)])
    assert calls == [64]


@pytest.mark.parametrize("circuits", ["answers", "labels"])
def test_programs_are_cached_on_disk_with_a_stable_key(tmp_path, monkeypatch, circuits):
    program = Program(ROOT / "programs" / "mnist_addition.pl")
    q = [x.replace_output([Constant(3)]) for x in queries("addition", [1, 1], 4)]
    source = {"train": torch.arange(8.0).view(8, 1)}
    first = CompiledEngine(program, {"mnist_net": Lookup(8, 10)}, source, cache_dir=tmp_path, circuits=circuits)
    expected = first.probabilities(q)
    shape = q[0].variable_output().query
    template = shape if circuits == "answers" else q[0].query
    key = f"{cache_key(program.text, str(shape))[:32]}-{cache_key(program.text, str(template))}.pkl"
    assert [p.name for p in tmp_path.glob("*.pkl")] == [key]
    second = CompiledEngine(program, first.networks, source, cache_dir=tmp_path, circuits=circuits)
    monkeypatch.setattr(second.model.solver, "build_ac", lambda q: pytest.fail("compiled again instead of loading"))
    assert torch.equal(second.probabilities(q), expected)


TRUE_FALSE = f"""
nn(digit_net, [X], Y, {DIGITS}) :: digit(X, Y).
nn(parity_net, [X], P, [even, odd]) :: parity(X, P).
odd_sum(X, Y) :- digit(X, A), digit(Y, B), 1 is (A + B) mod 2.
even_sum(X, Y) :- \\+ odd_sum(X, Y).
agree(X, Y) :- parity(X, P), parity(Y, P), \\+ odd_sum(X, Y).
"""


@pytest.mark.parametrize("circuits", ["answers", "labels"])
@pytest.mark.parametrize("functor", ["even_sum", "agree"])  # negation; negation with two neural predicates
def test_true_false_queries_and_negative_examples(tmp_path, functor, circuits):
    """p(query) and the gradients of DeepProbLog's loss (log p for `true`, log(1 - p) for `false`), equal in
    both engines; predictions are p(query) against 0.5."""
    from nesy_gedi.logic.program import FALSE, TRUE
    from nesy_gedi.training.learners import symbolic_loss

    path = tmp_path / "p.pl"
    path.write_text(TRUE_FALSE)
    dpl, compiled = engines(Program(path), {"digit_net": 10, "parity_net": 2}, 16, circuits)
    made = []
    for i in range(8):
        substitution = {Term(f"x{k}"): Term("tensor", Term("train", Constant(2 * i + k))) for k in range(2)}
        made.append(Query(Term(functor, Term("x0"), Term("x1")), substitution, p=float(i % 2), output_ind=()))
    targets = torch.tensor([q.p for q in made])
    results = []
    for engine in (dpl, compiled):
        engine.zero_grad()
        probs = engine.probabilities(made)
        symbolic_loss(engine.log_probabilities(made), targets).backward()
        grads = [p.grad for net in engine.networks.values() for p in net.parameters()]  # None: a network unused
        results.append((probs.detach(), grads, engine.predict(made)))
    (p_dpl, g_dpl, a_dpl), (p_ours, g_ours, a_ours) = results
    assert ((p_dpl > 0.01) & (p_dpl < 0.99)).all()  # not a trivial query
    assert torch.allclose(p_dpl, p_ours, atol=1e-6, rtol=0)
    assert [g is None for g in g_dpl] == [g is None for g in g_ours] and g_dpl[0] is not None
    for a, b in zip(g_dpl, g_ours, strict=True):
        assert a is None or (a.abs().sum() > 0 and torch.allclose(a, b, atol=1e-6, rtol=0))
    assert a_dpl == a_ours == [TRUE if p > 0.5 else FALSE for p in p_dpl]


EVIDENCE = f"""
nn(digit_net, [X], Y, {DIGITS}) :: digit(X, Y).
0.3 :: noisy.
0.6 :: other.
seen :- noisy.
seen :- other.
evidence(seen).
addition(X, Y, Z) :- \\+ noisy, digit(X, A), digit(Y, B), Z is A + B.
addition(X, Y, Z) :- noisy, digit(X, Z).
"""


@pytest.mark.parametrize("circuits", ["answers", "labels"])
def test_evidence_conditions_as_in_deepproblog(tmp_path, circuits):
    """With evidence, p(answer) = WMC(answer ∧ C ∧ e) / WMC(C ∧ e): the circuit divides by the evidence's root."""
    compare(EVIDENCE, {"digit_net": 10}, "addition", [1, 1], tmp_path, count=4, circuits=circuits)


@pytest.mark.parametrize(
    ("text", "domains", "functor", "shape", "circuits"),
    [
        (NEGATION_TWO_NETWORKS, {"digit_net": 10, "parity_net": 2}, "check", [1, 1], "answers"),
        (
            (ROOT / "programs" / "mnist_multi_addition_carry.pl").read_text(),
            {"mnist_net": 10},
            "addition",
            [2, 2],
            "labels",
        ),
        (EVIDENCE, {"digit_net": 10}, "addition", [1, 1], "answers"),
    ],
)
def test_log_semiring_gives_deepproblogs_probabilities_and_gradients(tmp_path, text, domains, functor, shape, circuits):
    """The log semiring (each disjunction's 'none' variable propagated away as false) is exact where allowed:
    negation with two networks, the digit-by-digit program's label circuits, evidence."""
    lists = functor == "addition" and shape == [2, 2]
    compare(text, domains, functor, shape, tmp_path, count=4, lists=lists, circuits=circuits, semiring="log")


def test_log_semiring_keeps_a_probability_that_underflows_in_the_real_one(tmp_path):
    """Thirty images that must all be 0, each with p = 0.01: p = 1e-60 is 0 in float32 linear arithmetic,
    and its log, -138.16, is what the log semiring returns."""
    torch.set_default_dtype(torch.float32)
    path = tmp_path / "p.pl"
    path.write_text(
        f"nn(digit_net, [X], Y, {DIGITS}) :: digit(X, Y).\nzeros([]).\nzeros([X|Xs]) :- digit(X, 0), zeros(Xs).\n"
    )
    logits = torch.full((30, 10), math.log(99 / 9))
    logits[:, 0] = 0.0  # p(0) = 1 / (1 + 9 * 99 / 9) = 0.01
    net = nn.Sequential(nn.Flatten(0), nn.Embedding.from_pretrained(logits))
    source = {"train": torch.arange(30).view(30, 1)}
    placeholders = [Term(f"p{i}") for i in range(30)]
    query = Query(
        Term("zeros", list2term(placeholders)),
        {ph: Term("tensor", Term("train", Constant(i))) for i, ph in enumerate(placeholders)},
        output_ind=(),
    )
    values = {}
    for semiring in ("real", "log"):
        engine = CompiledEngine(Program(path), {"digit_net": net}, source, semiring=semiring)
        values[semiring] = float(engine.log_probabilities([query])[0])
    assert values["log"] == pytest.approx(30 * math.log(0.01), rel=1e-4)
    assert values["real"] == pytest.approx(math.log(1e-12), rel=1e-6)  # p underflowed to 0: DeepProbLog's floor


def test_log_semiring_is_refused_for_a_learnable_disjunction(tmp_path, task_file):
    """A t(_) annotated disjunction's 'none' weight 1 - sum t can be exactly 0: refused at the task check
    (naming the program's line) and by the circuit itself."""
    from nesy_gedi.assembly.task import load_task
    from nesy_gedi.errors import UserError

    path = task_file(program=FACTS_AND_PARAMETERS.replace("digit_net", "mnist_net"), engine={"semiring": "log"})
    with pytest.raises(UserError, match=r"engine.semiring.*prog\.pl:5.*engine.semiring: real"):
        load_task(path)
    (tmp_path / "p.pl").write_text(FACTS_AND_PARAMETERS)
    program = Program(tmp_path / "p.pl")
    _, compiled = engines(program, {"digit_net": 10}, 2, semiring="log")
    with pytest.raises(UserError, match="not exact for a t"):
        compiled.probabilities(queries("addition", [1, 1], 1))
    assert Program(ROOT / "programs" / "mnist_addition.pl").learned_disjunction() is None


@pytest.mark.parametrize("n", [2, 3])
def test_klay_equals_the_tracer_on_merged_label_circuits(n):
    """Against the former tracer (tests/tracer.py) where DeepProbLog is slow: the digit-by-digit program's
    label circuits at N = 2 and 3, merged from different SDD managers into one circuit."""
    from .tracer import TensorProgram, trace

    program = Program(ROOT / "programs" / "mnist_multi_addition_carry.pl")
    compiled = CompiledEngine(program, {"mnist_net": nn.Identity()}, {}, circuits="labels")
    opened = queries("addition", [n, n], 1, lists=True)[0]
    labels = [Constant(s) for s in (0, 7, 10**n - 1, 10**n + 3)]
    oracle = TensorProgram()
    for label in labels:
        query = opened.replace_output([label])
        ours, _ = compiled.program_for(query, all_answers=False)
        oracle.merge(trace(compiled.model, query.query, 2))
    torch.manual_seed(1)
    outputs = {leaf: torch.softmax(torch.randn(5, 10), -1) for leaf in ours.leaves()}
    expected = oracle.run(outputs, [])
    got = ours.run(outputs, [])
    assert sorted(expected) == sorted(got) and len(got) == 4
    for name in got:
        assert torch.allclose(got[name], expected[name], atol=1e-12, rtol=1e-9)


CHAIN = {"step": "column(X, Y, Carry, Digit, Next)", "split": "digits(Sum, N, Digits, Carry)"}


@pytest.mark.parametrize(("n", "semiring"), [(2, "real"), (3, "real"), (3, "log")])
def test_a_chain_composed_from_one_step_circuit_is_deepproblogs_whole_query(n, semiring):
    """The digit-by-digit program's query composed from its one-position circuit (`engine.chain`) gives
    DeepProbLog's probabilities and gradients for the whole query, at N = 2 and 3, real and log semiring;
    predictions are the program's answers for the most probable digits."""
    from nesy_gedi.logic.chain_engine import ChainEngine
    from nesy_gedi.logic.query import QueryTemplate

    program = Program(ROOT / "programs" / "mnist_multi_addition_carry.pl")
    step = Term.from_string("column(X, Y, 0, Digit, Next)")  # the step goal from its start state
    template = QueryTemplate(program, "addition(A, B, Sum)", "Sum", {"A": n, "B": n}, step=step)
    assert template.readers == {"mnist_net": list(range(2 * n))}  # from one step, for every list element
    count = 5
    source = {"train": torch.arange(2 * n * count, dtype=torch.float64).view(-1, 1)}
    made = []
    for make in (
        DeepProbLogEngine,
        partial(ChainEngine, template=template, split=CHAIN["split"], semiring=semiring),
    ):
        torch.manual_seed(0)
        made.append(make(program, {"mnist_net": Lookup(2 * n * count, 10)}, source))
    dpl, chain = made
    table = dpl.networks["mnist_net"].table
    labels = [7, 10**n - 1, 10**n + 3, 2 * 10**n - 2, 0]
    labelled = [
        template.query(["train"] * 2 * n, range(2 * n * i, 2 * n * (i + 1)), Constant(labels[i])) for i in range(count)
    ]
    results = []
    for engine in (dpl, chain):
        engine.zero_grad()
        engine.probabilities(labelled).log().sum().backward()  # unfloored log p: tiny labels at N = 3
        results.append((engine.probabilities(labelled).detach(), engine.networks["mnist_net"].table.grad.clone()))
    (p_dpl, g_dpl), (p_chain, g_chain) = results
    assert (p_dpl > 0).all()  # every label provable
    assert torch.allclose(p_dpl, p_chain, atol=1e-15, rtol=1e-6)
    assert torch.allclose(g_dpl, g_chain, atol=1e-6, rtol=1e-6)
    digits = table.argmax(-1).tolist()
    expected = [template.label(digits[2 * n * i : 2 * n * (i + 1)]) for i in range(count)]
    assert chain.predict(labelled) == expected


def test_a_chain_step_that_is_not_a_function_is_refused(tmp_path):
    """A step that gives a world two next states would count it twice: refused with a message naming the key."""
    from nesy_gedi.errors import UserError
    from nesy_gedi.logic.chain_engine import ChainEngine
    from nesy_gedi.logic.query import QueryTemplate

    path = tmp_path / "p.pl"
    text = (ROOT / "programs" / "mnist_multi_addition_carry.pl").read_text()
    path.write_text(
        text + "either(X, Y, C, D, C2) :- digit(X, A), digit(Y, B), D is (A + B + C) mod 10, member(C2, [0, 1]).\n"
    )
    program = Program(path)
    step = Term.from_string("either(X, Y, 0, D, C2)")
    template = QueryTemplate(program, "addition(A, B, Sum)", "Sum", {"A": 2, "B": 2}, step=step)
    with pytest.raises(UserError, match=r"engine.chain.step: in state 0 .* total probability 2 in some world, not 1"):
        ChainEngine(  # refused when the engine is made, before a run folder's training starts
            program,
            {"mnist_net": Lookup(4, 10)},
            {"train": torch.arange(4.0).view(4, 1)},
            template,
            split=CHAIN["split"],
        )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"query": {"term": "addition(A, B, Sum)", "output": "Sum", "inputs": {"A": "image", "B": 2}}}, "all lists"),
        ({"engine": {"chain": {**CHAIN, "step": "colum(X, Y, C, D, C2)"}}}, "must define colum/5"),
        ({"engine": {"chain": {**CHAIN, "split": "digits(Sum, Digits)"}}}, "must define digits/4"),
        ({"engine": {"kind": "deepproblog", "chain": CHAIN}}, "set engine.kind: compiled"),
        ({"engine": {"chain": {**CHAIN, "start": "a("}}}, "not a ProbLog term"),
    ],
)
def test_a_wrong_chain_is_one_clear_message(task_file, tmp_path, capsys, change, message):
    from nesy_gedi.cli import main

    base = {
        "query": {"term": "addition(A, B, Sum)", "output": "Sum", "inputs": {"A": 2, "B": 2}},
        "engine": {"chain": CHAIN},
    }
    text = (ROOT / "programs" / "mnist_multi_addition_carry.pl").read_text()
    path = task_file(program=text, **{**base, **change})
    assert main(["run", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "engine.chain" in err and message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"engine_semiring": "log"}, "`engine_semiring` is now `engine.semiring`"),
        ({"engine_circuits": "labels"}, "`engine_circuits` is now `engine.circuits`"),
        ({"engine": "deepproblog"}, "`engine: deepproblog` is now written `engine: {kind: deepproblog}`"),
    ],
)
def test_the_old_engine_keys_are_refused_with_the_new_spelling(task_file, tmp_path, capsys, change, message):
    from nesy_gedi.cli import main

    assert main(["run", str(task_file(**change)), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "task.yaml:" in err and message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("semiring", ["real", "log"])
def test_a_small_circuit_runs_as_its_polynomial_with_klays_values_and_gradients(semiring):
    """The flattened polynomial (logic/polynomial.py) against KLay's layers on the same circuit: the
    digit-by-digit program's one-digit all-answers circuit, both semirings. Two digits (10,000 products)
    stay layered."""
    from nesy_gedi.logic import polynomial

    program = Program(ROOT / "programs" / "mnist_multi_addition_carry.pl")
    compiled = CompiledEngine(program, {"mnist_net": nn.Identity()}, {}, semiring=semiring)
    two, _ = compiled.program_for(queries("addition", [2, 2], 1, lists=True)[0], all_answers=True)
    assert two.layers(semiring).polynomial is None
    circuit, _ = compiled.program_for(queries("addition", [1, 1], 1, lists=True)[0], all_answers=True)
    layers = circuit.layers(semiring)
    assert layers.polynomial is not None and layers.module is not None
    assert polynomial.expand(layers.module, [None] * (2 * layers.n + 1), max_terms=10) is None  # too big: KLay
    torch.manual_seed(2)
    logits = {leaf: torch.randn(3, 10, dtype=torch.float64, requires_grad=True) for leaf in circuit.leaves()}
    results = []
    for flattened in (layers.polynomial, None):
        layers.polynomial = flattened
        names, table = circuit.table({leaf: x.softmax(-1) for leaf, x in logits.items()}, [], semiring)
        (table * torch.linspace(0.5, 1.5, table.shape[1], dtype=table.dtype)).sum().backward()
        results.append((names, table.detach(), [x.grad.clone() for x in logits.values()]))
        for x in logits.values():
            x.grad = None
    (names, ours, grads), (klay_names, klay, klay_grads) = results
    assert names == klay_names and len(names) == 19
    assert torch.allclose(ours, klay, atol=1e-9)
    assert all(torch.allclose(a, b, atol=1e-9) for a, b in zip(grads, klay_grads, strict=True))
