"""Compiled engine vs DeepProbLog's ExactEngine, side by side in one process on the same queries; then the
circuits alone: KLay (the compiled engine's evaluator) against the former tracer (tests/tracer.py).

Run: .venv/bin/python bench/engines.py [--out docs/benchmarks.md] [--circuits-only]
Real MNIST images, the LeNet-style network, float32, 2 torch threads. Each engine first sees the queries
once (compilation, reported separately), then is timed on the same queries.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from datetime import date
from functools import partial
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
from deepproblog.query import Query
from problog.logic import Constant, Term, Var, list2term
from sections import table_section, write_section

from nesy_gedi.commands.runner import peak_memory_mb
from nesy_gedi.data.images import to_tensor
from nesy_gedi.data.mnist import load_mnist
from nesy_gedi.logic.compiled_engine import CompiledEngine
from nesy_gedi.logic.deepproblog_engine import DeepProbLogEngine
from nesy_gedi.logic.program import Program
from nesy_gedi.logic.query import QueryTemplate
from nesy_gedi.networks import build_network
from nesy_gedi.training.learners import symbolic_loss

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.tracer import TensorProgram, trace  # noqa: E402  the former evaluator, now the tests' oracle


def setup(
    program_file: str, n: int, distinct: int, batch: int, images: torch.Tensor, labels: np.ndarray, circuits: str
):
    program = Program(f"programs/{program_file}")
    form = "image" if program_file == "mnist_addition.pl" else n
    template = QueryTemplate(program, "addition(A,B,S)", "S", {"A": form, "B": form})
    k = template.images_per_query
    base = [
        template.query(["train"] * k, range(i * k, (i + 1) * k), template.label(labels[i * k : (i + 1) * k]))
        for i in range(distinct)
    ]
    queries = [base[i % distinct] for i in range(batch)]
    torch.manual_seed(0)
    net = build_network("mnist_lenet", 10)
    engines = {
        "deepproblog": DeepProbLogEngine(program, {"mnist_net": net}, {"train": images}),
        "compiled": CompiledEngine(program, {"mnist_net": net}, {"train": images}, circuits=circuits),
    }
    return engines, base, queries


def train_seconds(engine, queries) -> float:
    """One training step's engine work: the networks' outputs, the circuit, the backward and an SGD step."""
    started = time.perf_counter()
    engine.train()
    engine.zero_grad()
    symbolic_loss(engine.log_probabilities(queries)).backward()
    with torch.no_grad():
        for p in engine.networks.parameters():
            p -= 1e-4 * p.grad
    return time.perf_counter() - started


def infer_seconds(engine, queries, all_answers: bool) -> float:
    started = time.perf_counter()
    engine.eval()
    with torch.no_grad():
        engine.predict(queries) if all_answers else engine.probabilities(queries)
    return time.perf_counter() - started


def best_of(repeats: int, fn, *args) -> float:
    return min(fn(*args) for _ in range(repeats))


def network_seconds(engine, queries, backward: bool) -> float:
    """The network's own pass on the batch's images (forward, or forward and backward): what any engine
    must spend on these queries."""
    net = engine.networks["mnist_net"]
    refs = [ref for q in queries for ref in q.substitution.values()]
    x = engine.sources["train"][torch.tensor([int(r.args[0].args[0]) for r in refs])]
    started = time.perf_counter()
    if backward:
        net.zero_grad()
        torch.softmax(net(x), -1).log().mean().backward()
    else:
        with torch.no_grad():
            net(x)
    return time.perf_counter() - started


def record_network(record, case: str, engine, queries, inference_ms: float, training_ms: float) -> None:
    """The network's share: DeepProbLog's time per query over it bounds the ratio any engine can reach."""
    forward = best_of(5, network_seconds, engine, queries, False) / len(queries) * 1000
    both = best_of(5, network_seconds, engine, queries, True) / len(queries) * 1000
    note = (
        f"forward+backward {both:.4f} ms; bounds the ratios: inference {inference_ms / forward:.0f}×, "
        f"training {training_ms / both:.0f}×"
    )
    record(case, "network forward alone", 0, forward, note)


FACTS_AND_PARAMETERS = """
nn(mnist_net, [X], Y, [0,1,2,3,4,5,6,7,8,9]) :: digit(X, Y).
t(0.2) :: noisy.
0.3 :: bias.
t(0.5) :: coin(0); t(0.5) :: coin(1).
addition(X, Y, Z) :- \\+ noisy, digit(X, A), digit(Y, B), Z is A + B.
addition(X, Y, Z) :- noisy, bias, coin(C), digit(X, A), Z is A + C.
"""


def numbers(n: int) -> tuple[Term, Term]:
    """The placeholders of two n-digit numbers: single images for n = 1, else lists."""
    if n == 1:
        return Term("a"), Term("b")
    return tuple(list2term([Term(f"{x}{i}") for i in range(n)]) for x in "ab")


def circuit_seconds(run, outputs: dict, params: list) -> float:
    """One forward and backward pass of a circuit on a batch (the loss: Σ log p over every answer)."""
    leaves = {leaf: value.detach().requires_grad_() for leaf, value in outputs.items()}
    ps = [p.detach().requires_grad_() for p in params]
    started = time.perf_counter()
    values = run(leaves, ps)
    torch.stack(list(values.values())).clamp(min=1e-30).log().sum().backward()
    return time.perf_counter() - started


def circuit_section(batch: int = 128) -> str:
    """KLay against the tracer on the same circuits: DeepProbLog's SDDs for every answer, or for labels."""
    rows = []
    cases = [
        ("N=1, all answers", "programs/mnist_addition.pl", 1, None),
        ("N=2, all answers", "programs/mnist_multi_addition_carry.pl", 2, None),
        ("N=3, one labelled query", "programs/mnist_multi_addition_carry.pl", 3, [1071]),
        ("N=3, 4 labels merged", "programs/mnist_multi_addition_carry.pl", 3, [0, 1071, 1503, 1998]),
        ("negation + probabilistic fact + t(_), all answers", FACTS_AND_PARAMETERS, 1, None),
    ]
    for case, source, n, labels in cases:
        path = Path(source)
        if not source.endswith(".pl"):  # a program text
            path = Path(tempfile.mkdtemp()) / "program.pl"
            path.write_text(source)
        engine = CompiledEngine(Program(path), {"mnist_net": torch.nn.Identity()}, {}, circuits="answers")
        opened = Query(Term("addition", *numbers(n), Var("Z")), output_ind=(2,))
        oracle = TensorProgram()
        for label in labels or [None]:
            query = opened if label is None else opened.replace_output([Constant(label)])
            circuit, _ = engine.program_for(query, all_answers=label is None)
            oracle.merge(trace(engine.model, query.query, 2))
        torch.manual_seed(0)
        outputs = {leaf: torch.softmax(torch.randn(batch, 10), -1) for leaf in circuit.leaves()}
        params = [torch.tensor(float(p)) for p in engine.model.parameters]
        tracer = best_of(20, circuit_seconds, oracle.run, outputs, params) * 1000
        klay = best_of(20, circuit_seconds, circuit.run, outputs, params) * 1000
        log = "–"
        if not engine.model.parameters:
            log = f"{best_of(20, circuit_seconds, partial(circuit.run, semiring='log'), outputs, params) * 1000:.2f}"
        double = {leaf: value.double() for leaf, value in outputs.items()}
        exact, ours = oracle.run(double, [p.double() for p in params]), circuit.run(double, params)
        gap = max(float((exact[name] - ours[name]).abs().max()) for name in ours)
        rows.append(
            f"| {case} | {len(oracle.nodes):,} → {circuit.layers('real').nodes:,} | {tracer:.2f} | {klay:.2f} | "
            f"{tracer / klay:.1f}× | {log} | {gap:.0e} |"
        )
        print(rows[-1], flush=True)
    return table_section(
        "Circuits: KLay against the former tracer",
        f"`.venv/bin/python bench/engines.py` (this table alone: `--circuits-only`) on {date.today()}, "
        f"{platform.machine()} CPU with {torch.get_num_threads()} torch threads, no GPU. The compiled engine's "
        "circuits (DeepProbLog's SDDs, each answer's conjoined with the disjunctions' constraint) evaluated by "
        "KLay (`klaycircuits` "
        f"{metadata.version('klaycircuits')}, real semiring, no `torch.compile`) and by the former tracer "
        "(tests/tracer.py, DeepProbLog's arithmetic recorded node by node), on the same random network outputs, "
        f"batch {batch}, float32: one forward and backward pass (loss Σ log p over the circuit's answers), best of "
        "20. *log*: KLay in the log semiring (refused for a t(_) disjunction). *max |Δp|*: between the two, in "
        "float64.",
        ["circuit", "nodes (tracer → KLay)", "tracer ms", "KLay ms", "KLay speed-up", "KLay log ms", "max |Δp|"],
        rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="docs/benchmarks.md")
    parser.add_argument("--circuits-only", action="store_true", help="only the KLay-against-tracer table")
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.circuits_only:
        write_section(args.out, "circuits", circuit_section())
        return
    mnist = load_mnist()
    images = to_tensor(mnist.train.images)[:20000]
    labels = mnist.train.labels[:20000]
    rows = []

    def record(case, what, dpl_ms, ours_ms, note=""):
        ratio = f"{dpl_ms / ours_ms:.0f}×" if dpl_ms and ours_ms else "–"
        rows.append(
            f"| {case} | {what} | {dpl_ms:.3f} | {ours_ms:.4f} | {ratio} | {note} |".replace("| 0.000 |", "| – |")
        )
        print(rows[-1], flush=True)

    # N = 1, batch 128: 128 distinct queries; training on the all-answers circuit (the default) and on label circuits
    notes = []
    for circuits in ("answers", "labels"):
        engines, base, queries = setup("mnist_addition.pl", 1, 128, 128, images, labels, circuits)
        dpl, ours = engines["deepproblog"], engines["compiled"]
        for engine in engines.values():  # compile every circuit these queries need
            train_seconds(engine, queries)
            infer_seconds(engine, queries, True)
        d = best_of(2, train_seconds, dpl, queries) / 128 * 1000
        c = best_of(10, train_seconds, ours, queries) / 128 * 1000
        record("N=1, whole batch 128", f"training ms/query ({circuits} circuits)", d, c)
        if circuits == "answers":
            dt = d
            d = best_of(1, infer_seconds, dpl, queries, True) / 128 * 1000
            c = best_of(10, infer_seconds, ours, queries, True) / 128 * 1000
            record("N=1, whole batch 128", "inference ms/query, all 19 sums", d, c)
            record_network(record, "N=1, whole batch 128", ours, queries, d, dt)
        else:
            compiled = ours.programs
            nodes = {k.split(":")[0]: p.layers("real").nodes for k, p in compiled.items()}
            compile_s = {k.split(":")[0]: p.compile_seconds / max(1, len(p.templates)) for k, p in compiled.items()}
            notes.append(
                f"N=1 addition: all-answers circuit {nodes['answers']} KLay nodes "
                f"({compile_s['answers'] * 1000:.0f} ms to ground, compile and read its weights); the "
                f"{len(compiled['labels:' + str(queries[0].variable_output().query)].templates)} label circuits merged "
                f"into {nodes['labels']} nodes ({compile_s['labels'] * 1000:.0f} ms per template)"
            )

    for program_file, n, distinct in [
        ("mnist_multi_addition.pl", 2, 4),
        ("mnist_multi_addition_carry.pl", 2, 4),
        ("mnist_multi_addition_carry.pl", 3, 4),
        ("mnist_multi_addition_carry.pl", 4, 2),
    ]:
        # the all-answers circuit of 3- and 4-digit numbers is too large to compile: label circuits there
        circuits = "answers" if n == 2 else "labels"
        engines, base, queries = setup(program_file, n, distinct, 128, images, labels, circuits)
        dpl, ours = engines["deepproblog"], engines["compiled"]
        started = time.perf_counter()
        infer_seconds(ours, base, False)  # compiles the circuits
        ours_compile = time.perf_counter() - started
        c = best_of(5, infer_seconds, ours, queries, False) / len(queries) * 1000
        ct = best_of(3, train_seconds, ours, queries) / len(queries) * 1000
        started = time.perf_counter()
        infer_seconds(dpl, base, False)
        dpl_compile = time.perf_counter() - started
        d = best_of(2, infer_seconds, dpl, base, False) / len(base) * 1000
        dt = best_of(2, train_seconds, dpl, base) / len(base) * 1000
        dpl_note = f"; DeepProbLog first pass (compile) {dpl_compile / distinct:.2f} s/query"
        program = ours.programs[f"{circuits}:" + str(base[0].variable_output().query)]
        case = f"N={n}, {program_file.removesuffix('.pl')}"
        if n == 2:  # all answers (199 sums): what task accuracy needs, and what published timings measure
            first = [time.perf_counter()]
            infer_seconds(ours, base, True)
            first.append(time.perf_counter())
            infer_seconds(dpl, base, True)
            first.append(time.perf_counter())
            ca = best_of(5, infer_seconds, ours, queries, True) / len(queries) * 1000
            da = best_of(2, infer_seconds, dpl, base, True) / len(base) * 1000
            answers = ours.programs["answers:" + str(base[0].variable_output().query)]
            record(
                case,
                "inference ms/query, all 199 sums",
                da,
                ca,
                f"DeepProbLog first pass {first[2] - first[1]:.1f} s (ours: the p(label) row's); "
                f"{answers.layers('real').nodes} KLay nodes",
            )
        note = (
            f"{distinct} distinct queries, ours at batch 128 = them repeated; {circuits} circuits, "
            f"{program.layers('real').nodes} KLay nodes, first pass {ours_compile:.2f} s{dpl_note}"
        )
        record(case, "inference ms/query, p(label)", d, c, note)
        record(case, f"training ms/query ({circuits} circuits)", dt, ct)
        record_network(record, case, ours, queries, d, dt)

    lines = [
        "## Compiled engine vs DeepProbLog's ExactEngine",
        "",
        f"`.venv/bin/python bench/engines.py` on {date.today()}, {platform.machine()} CPU with "
        f"{torch.get_num_threads()} torch threads, no GPU ({platform.platform()}); real MNIST, the LeNet-style "
        "network, float32. Each engine first sees the queries once (compilation), then is timed on the same "
        "queries in the same process; the best of a few repetitions is kept. DeepProbLog evaluates query by "
        "query whatever the batch; the compiled engine evaluates the batch at once. *Network forward alone* "
        "(and forward+backward, in its note): the network's own pass on the batch's images, which any engine "
        "pays; DeepProbLog's time per query divided by it bounds the ratio an engine can reach.",
        "",
        "| case | measure | DeepProbLog ExactEngine | compiled | ratio | notes |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        *notes,
        "",
        f"Peak resident memory of the whole benchmark process: {peak_memory_mb():.0f} MB.",
        "",
    ]
    write_section(args.out, "engines", "\n".join(lines))
    write_section(args.out, "circuits", circuit_section())


if __name__ == "__main__":
    main()
