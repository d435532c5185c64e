"""The compiled engine's former evaluator, kept as an independent oracle for the KLay circuits (tests) and
as the baseline of bench/engines.py: it records the arithmetic DeepProbLog's `GraphSemiring` performs on
an SDD (same operations, same order, same constant folding) as a flat tensor program and runs it level by
level in one buffer with its own reverse pass."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from deepproblog.query import Query
from deepproblog.semiring.graph_semiring import GraphSemiring
from problog.logic import Term

from nesy_gedi.errors import UserError
from nesy_gedi.logic.program import TRUE


@dataclass
class TensorProgram:
    """A compiled template. Nodes: ("nn", network, placeholder, column) and ("param", i) read inputs,
    ("const", x) is a number, ("add" | "mul" | "div", i, j) and ("one_minus", i) combine earlier nodes."""

    nodes: list[tuple] = field(default_factory=list)
    answers: dict[str, int | float] = field(default_factory=dict)
    """answer (query text with placeholders) -> node index, or the probability itself when constant"""
    outputs: dict[str, Term] = field(default_factory=dict)
    """answer -> the value of the query's output argument"""
    traced: set[str] = field(default_factory=set)
    """the queries whose circuits are recorded here"""
    compile_seconds: float = 0.0
    _index: dict[tuple, int] = field(default_factory=dict, repr=False)

    def add(self, node: tuple) -> int:
        """Append a node, or return the identical one recorded before (the SDD walk repeats a lot of work)."""
        if node[0] in ("add", "mul"):  # commutative, and exactly so in floating point
            node = (node[0], *sorted(node[1:]))
        known = self._index.get(node)
        if known is None:
            known = self._index[node] = len(self.nodes)
            self.nodes.append(node)
        return known

    def merge(self, other: TensorProgram) -> None:
        """Add another program's nodes and answers to this one, sharing the nodes both have."""
        index: list[int] = []
        for node in other.nodes:
            if node[0] in ("add", "mul", "div", "one_minus"):
                node = (node[0], *(index[j] for j in node[1:]))
            index.append(self.add(node))
        for name, value in other.answers.items():
            self.answers[name] = index[value] if isinstance(value, int) else value
        self.outputs.update(other.outputs)
        self.traced |= other.traced
        self.compile_seconds += other.compile_seconds
        self._plan = None

    def leaves(self) -> list[tuple[str, str]]:
        """The (network, placeholder) pairs whose outputs the program reads, in a fixed order."""
        return sorted({(n[1], n[2]) for n in self.nodes if n[0] == "nn"})

    def plan(self) -> _Plan:
        """The nodes grouped into levels (a node's operands lie in earlier levels) and, per level, by operation,
        so that a batch is evaluated with a few tensor operations per level instead of one per node."""
        if getattr(self, "_plan", None) is None:
            self._plan = _Plan(self)
        return self._plan

    def run(self, outputs: dict[tuple[str, str], torch.Tensor], params: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each answer's probability on a batch; `outputs[(network, placeholder)]` is (batch, domain)."""
        return self.plan().run(outputs, params)

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("_plan", "_index")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _index={node: i for i, node in enumerate(state["nodes"])}, _plan=None)


class _Plan:
    def __init__(self, program: TensorProgram) -> None:
        nodes = program.nodes
        self.leaves = program.leaves()
        position = {leaf: i for i, leaf in enumerate(self.leaves)}
        depth = [0] * len(nodes)
        for i, node in enumerate(nodes):
            if node[0] in ("add", "mul", "div", "one_minus"):
                depth[i] = 1 + max(depth[j] for j in node[1:])
        row = {}
        rank = {"nn": 0, "param": 1, "const": 2}  # the order in which run() stacks the inputs

        def key(i: int) -> tuple:
            node = nodes[i]
            within = (position[(node[1], node[2])], node[3]) if node[0] == "nn" else ()
            return (depth[i], rank.get(node[0], 3), node[0], *within)

        order = sorted(range(len(nodes)), key=key)
        for i in order:
            row[i] = len(row)
        inputs = [i for i in order if depth[i] == 0]
        kinds = [nodes[i][0] for i in inputs]
        self.n_param = kinds.count("param")
        columns: dict[tuple[str, str], list[int]] = {}
        for i in inputs:
            if nodes[i][0] == "nn":
                columns.setdefault((nodes[i][1], nodes[i][2]), []).append(nodes[i][3])
        self.nn_columns = [(leaf, torch.tensor(cols)) for leaf, cols in columns.items()]
        self.param_index = torch.tensor([nodes[i][1] for i in inputs if nodes[i][0] == "param"], dtype=torch.long)
        self.consts = [nodes[i][1] for i in inputs if nodes[i][0] == "const"]
        self.n_inputs = len(inputs)
        self.size = len(nodes)
        # per level, groups of one operation whose results fill the rows [start, end)
        self.levels: list[list[tuple[str, torch.Tensor, torch.Tensor, int, int]]] = []
        for i in order[len(inputs) :]:
            op, *operands = nodes[i]
            if len(self.levels) < depth[i]:
                self.levels.append([])
            level = self.levels[depth[i] - 1]
            if not level or level[-1][0] != op:
                level.append((op, [], [], row[i], row[i]))
            op, a, b, start, end = level[-1]
            a.append(row[operands[0]])
            b.append(row[operands[-1]])
            level[-1] = (op, a, b, start, end + 1)
        self.levels = [
            [(op, torch.tensor(a), torch.tensor(b), s, e) for op, a, b, s, e in level] for level in self.levels
        ]
        self.both = [[torch.cat([a, b]) for _, a, b, _, _ in level] for level in self.levels]  # reverse-pass targets
        self.answers = {name: (row[v] if isinstance(v, int) else float(v)) for name, v in program.answers.items()}
        self.answer_rows = torch.tensor([r for r in self.answers.values() if isinstance(r, int)], dtype=torch.long)

    def _to(self, device: torch.device) -> None:
        """Keep the index tensors on the device of the network outputs (a GPU under `device: auto`)."""
        if getattr(self, "device", torch.device("cpu")) == device:
            return
        self.levels = [[(op, a.to(device), b.to(device), s, e) for op, a, b, s, e in level] for level in self.levels]
        self.both = [[t.to(device) for t in level] for level in self.both]
        self.nn_columns = [(leaf, cols.to(device)) for leaf, cols in self.nn_columns]
        self.param_index, self.answer_rows = self.param_index.to(device), self.answer_rows.to(device)
        self.device = device

    def run(self, outputs: dict[tuple[str, str], torch.Tensor], params: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        first = next(iter(outputs.values()), None)
        batch, device = (len(first), first.device) if first is not None else (1, torch.device("cpu"))
        self._to(device)
        dtype = torch.get_default_dtype()
        parts = [outputs[leaf][:, cols].T for leaf, cols in self.nn_columns]
        if self.n_param:
            parts.append(torch.stack(params).to(device)[self.param_index].unsqueeze(1).expand(-1, batch))
        if self.consts:
            parts.append(torch.tensor(self.consts, dtype=dtype, device=device).unsqueeze(1).expand(-1, batch))
        inputs = torch.cat(parts) if parts else torch.zeros(0, batch, device=device)
        computed = iter(_Evaluate.apply(self, inputs))
        return {
            name: next(computed) if isinstance(r, int) else torch.full((batch,), r, dtype=inputs.dtype, device=device)
            for name, r in self.answers.items()
        }


class _Evaluate(torch.autograd.Function):
    """All levels of a plan in one preallocated (nodes, batch) buffer, with the matching reverse pass.

    Autograd over per-level tensor operations would copy the growing buffer at every level; here each
    level writes its rows in place, and the backward pass walks the levels in reverse the same way.
    """

    @staticmethod
    def forward(ctx, plan: _Plan, inputs: torch.Tensor) -> torch.Tensor:
        values = inputs.new_empty(plan.size, inputs.shape[1])
        values[: plan.n_inputs] = inputs
        operands = []  # kept for the reverse pass of products and quotients, so it need not gather again
        for level in plan.levels:
            for op, a, b, start, end in level:
                out = values[start:end]
                if op == "one_minus":
                    torch.sub(1.0, values[a], out=out)
                    operands.append(None)
                    continue
                va, vb = values[a], values[b]
                if op == "add":
                    torch.add(va, vb, out=out)
                    operands.append(None)
                elif op == "mul":
                    torch.mul(va, vb, out=out)
                    operands.append((va, vb))
                else:
                    torch.div(va, vb, out=out)
                    operands.append((va, vb))
        ctx.plan, ctx.operands = plan, operands
        ctx.shape = values.shape
        return values[plan.answer_rows]

    @staticmethod
    def backward(ctx, grad_answers: torch.Tensor) -> tuple[None, torch.Tensor]:
        plan: _Plan = ctx.plan
        grad = grad_answers.new_zeros(ctx.shape)
        grad.index_add_(0, plan.answer_rows, grad_answers)
        saved = reversed(ctx.operands)
        for level, both in zip(reversed(plan.levels), reversed(plan.both), strict=True):
            for (op, a, _, start, end), targets in zip(reversed(level), reversed(both), strict=True):
                kept = next(saved)
                g = grad[start:end].clone()  # index_add_ refuses a source that aliases its target
                if op == "one_minus":
                    grad.index_add_(0, a, -g)
                    continue
                if op == "add":
                    ga, gb = g, g
                elif op == "mul":
                    ga, gb = g * kept[1], g * kept[0]
                else:  # div
                    ga = g / kept[1]
                    gb = -ga * kept[0] / kept[1]
                grad.index_add_(0, targets, torch.cat([ga, gb]))
        return None, grad[: plan.n_inputs]


class _Traced(int):
    """A value during tracing: the index of its node in the program being recorded."""


class TracingSemiring(GraphSemiring):
    """GraphSemiring's arithmetic, recorded instead of computed; plain floats fold exactly as it folds them."""

    program: TensorProgram

    def _node(self, *node) -> _Traced:
        return _Traced(self.program.add(node))

    def _ref(self, value) -> int:
        return value if isinstance(value, _Traced) else self.program.add(("const", float(value)))

    def negate(self, a):
        return self._node("one_minus", a) if isinstance(a, _Traced) else super().negate(a)

    def plus(self, a, b):
        if isinstance(a, _Traced) or isinstance(b, _Traced):
            if type(b) is float and b == 0.0:
                return a
            if type(a) is float and a == 0.0:
                return b
            return self._node("add", self._ref(a), self._ref(b))
        return super().plus(a, b)

    def times(self, a, b):
        if isinstance(a, _Traced) or isinstance(b, _Traced):
            if type(b) is float and b == 1.0:
                return a
            if type(a) is float and a == 1.0:
                return b
            return self._node("mul", self._ref(a), self._ref(b))
        return super().times(a, b)

    def normalize(self, a, z):
        if isinstance(a, _Traced) or isinstance(z, _Traced):
            if type(z) is float and z == 1.0:
                return a
            return self._node("div", self._ref(a), self._ref(z))
        return super().normalize(a, z)

    def is_one(self, a):
        return not isinstance(a, _Traced) and super().is_one(a)

    def is_zero(self, a):
        return not isinstance(a, _Traced) and super().is_zero(a)

    def value(self, a, key=None):
        if isinstance(a, Term) and a.functor == "nn":
            inputs = a.args[1]
            placeholder = inputs.args[0] if inputs.functor == "." else inputs
            column = int(a.args[2]) if len(a.args) == 3 else 0
            return self._node("nn", str(a.args[0]), str(placeholder), column)
        if isinstance(a, Term) and a.functor == "t":
            return self._node("param", int(a.args[0]))
        if isinstance(a, Term) and a.functor == "tensor":
            raise UserError(
                f"the compiled engine does not support tensor-valued probabilities ({a}); use engine.kind: deepproblog"
            )
        return super().value(a, key)


def trace(model, query: Term, output: int | None) -> TensorProgram:
    """Ground and compile `query` as DeepProbLog does, then record its arithmetic as a tensor program."""
    started = time.perf_counter()
    circuit = model.solver.build_ac(Query(query))
    semiring = TracingSemiring(model, {}, {})
    semiring.program = program = TensorProgram()
    for answer, value in circuit.sdd.evaluate(semiring=semiring).items():
        program.answers[str(answer)] = int(value) if isinstance(value, _Traced) else float(value)
        program.outputs[str(answer)] = TRUE if output is None else answer.args[output]
    program.traced.add(str(query))
    program.compile_seconds = time.perf_counter() - started
    return program
