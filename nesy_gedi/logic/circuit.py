"""A query template as a KLay circuit: DeepProbLog's grounding and SDD, evaluated as layered batched tensors.

DeepProbLog's `ExactEngine` machinery (ProbLog + PySDD) grounds a template (`addition(a, b, Z)`) and
compiles it to one SDD per answer. ProbLog computes p(answer) = WMC(answer ∧ C) / WMC(C), where C holds the
program's constraints (each annotated disjunction's exactly-one, in a separate SDD) and its evidence, and the
weights of each variable come from the program: a neural predicate's head has (network output, 1), the
disjunction's extra 'none' variable (1 − Σ outputs, 1), a fact (p, 1 − p). Here each answer's SDD is
conjoined with C and becomes one root of a KLay circuit (KLay: Maene et al., ICLR 2025), and each weight is
an affine function of the networks' outputs and the `t(_)` parameters, read once symbolically from
ProbLog's own `extract_weights`. Without evidence WMC(C) is exactly 1 (every disjunction's weights sum to
one by construction), so only programs with evidence pay for the division.

Circuits of several templates (the labels of one query shape, from different SDD managers) merge into one
multi-root circuit: variables are renumbered into one numbering keyed by ProbLog's atom identity and weights.
"""

from __future__ import annotations

import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import klay
import torch
from deepproblog.query import Query
from deepproblog.semiring.graph_semiring import GraphSemiring
from klay.torch import layers
from problog.logic import Term
from torch import nn

from nesy_gedi.errors import UserError
from nesy_gedi.logic.polynomial import Polynomial, expand
from nesy_gedi.logic.program import TRUE

SEMIRINGS = ("real", "log")

Leaf = tuple
"""("nn", network, placeholder, column): a network's output; ("param", i): the program's i-th `t(_)`"""


@dataclass(frozen=True)
class Affine:
    """const + Σ coefficient · leaf: the form of every weight ProbLog gives a DeepProbLog variable."""

    terms: tuple[tuple[Leaf, float], ...] = ()
    const: float = 0.0

    @staticmethod
    def of(value: Affine | float) -> Affine:
        return value if isinstance(value, Affine) else Affine((), float(value))

    def __add__(self, other: Affine) -> Affine:
        summed = dict(self.terms)
        for leaf, k in other.terms:
            summed[leaf] = summed.get(leaf, 0.0) + k
        return Affine(tuple(sorted(summed.items())), self.const + other.const)

    def scaled(self, k: float) -> Affine:
        return Affine(tuple((leaf, c * k) for leaf, c in self.terms), self.const * k)


class AffineSemiring(GraphSemiring):
    """DeepProbLog's semiring with a network output or a `t(_)` parameter kept as a symbol: what ProbLog's
    `extract_weights` computes from them (complements, sums) comes out as an `Affine`."""

    def __init__(self, model) -> None:
        super().__init__(model, {}, {})

    def value(self, a, key=None):
        if isinstance(a, Term) and a.functor == "nn":
            inputs = a.args[1]
            placeholder = inputs.args[0] if inputs.functor == "." else inputs
            column = int(a.args[2]) if len(a.args) == 3 else 0
            return Affine(((("nn", str(a.args[0]), str(placeholder), column), 1.0),))
        if isinstance(a, Term) and a.functor == "t":
            return Affine(((("param", int(a.args[0])), 1.0),))
        if isinstance(a, Term) and a.functor == "tensor":
            raise UserError(
                f"the compiled engine does not support tensor-valued probabilities ({a}); use engine: deepproblog"
            )
        return super().value(a, key)

    def plus(self, a, b):
        if isinstance(a, Affine) or isinstance(b, Affine):
            return Affine.of(a) + Affine.of(b)
        return super().plus(a, b)

    def negate(self, a):
        return Affine((), 1.0) + a.scaled(-1.0) if isinstance(a, Affine) else super().negate(a)

    def times(self, a, b):
        if isinstance(a, Affine) and isinstance(b, Affine):
            raise UserError("a weight of this program multiplies two learned values; use engine: deepproblog")
        if isinstance(a, Affine) or isinstance(b, Affine):
            return (a if isinstance(a, Affine) else b).scaled(float(b if isinstance(a, Affine) else a))
        return super().times(a, b)

    def is_one(self, a) -> bool:
        return not isinstance(a, Affine) and super().is_one(a)

    def is_zero(self, a) -> bool:
        return not isinstance(a, Affine) and super().is_zero(a)


_LITERAL = re.compile(r"^L (\d+) (\d+) (-?\d+)$", re.MULTILINE)


def _renumber(text: str, number: list[int]) -> str:
    """An SDD file's text with variable v renamed number[v]."""

    def rename(m: re.Match) -> str:
        lit = int(m.group(3))
        return f"L {m.group(1)} {m.group(2)} {number[abs(lit)] if lit > 0 else -number[abs(lit)]}"

    return _LITERAL.sub(rename, text)


def _sdd_text(node) -> str:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "root.sdd"
        node.save(str(path).encode())
        return path.read_text()


@dataclass
class Variable:
    """One SDD variable: its weights, and whether it is an annotated disjunction's 'none' variable whose weight
    is exactly 0 whenever every network's outputs sum to 1 (`zero_if_normalised`)."""

    pos: Affine
    neg: Affine
    zero_if_normalised: bool = False
    learned_complement: bool = False
    """a `t(_)` disjunction's 'none' variable: its weight 1 − Σ t can reach exactly 0 while learning"""


@dataclass
class Circuit:
    """Compiled templates as the roots of one KLay circuit over one variable numbering (1-based)."""

    roots: dict[str, str | float] = field(default_factory=dict)
    """answer (query text with placeholders) -> its SDD conjoined with C (file text), or its constant probability"""
    conditions: dict[str, str] = field(default_factory=dict)
    """answer -> the SDD of C (file text) it is divided by; only for programs with evidence"""
    outputs: dict[str, Term] = field(default_factory=dict)
    """answer -> the value of the query's output argument"""
    variables: list[Variable] = field(default_factory=list)
    keys: dict[tuple, int] = field(default_factory=dict, repr=False)
    templates: set[str] = field(default_factory=set)
    """the queries whose circuits are here"""
    compile_seconds: float = 0.0

    def number(self, key: tuple, variable: Variable) -> int:
        """The number of the variable with this key, added now if new."""
        if key not in self.keys:
            self.variables.append(variable)
            self.keys[key] = len(self.variables)
        return self.keys[key]

    def merge(self, other: Circuit) -> None:
        """Add another circuit's roots to this one, its variables renamed into this numbering."""
        number = [0] * (len(other.variables) + 1)
        for key, v in other.keys.items():
            number[v] = self.number(key, other.variables[v - 1])
        for name, root in other.roots.items():
            self.roots[name] = _renumber(root, number) if isinstance(root, str) else root
        self.conditions.update({name: _renumber(text, number) for name, text in other.conditions.items()})
        self.outputs.update(other.outputs)
        self.templates |= other.templates
        self.compile_seconds += other.compile_seconds
        self._layers = None

    def leaves(self) -> list[tuple[str, str]]:
        """The (network, placeholder) pairs whose outputs the circuit reads, in a fixed order. Kept until a
        variable is added (variables only grow): a training step asks for them every time."""
        known = getattr(self, "_leaves", None)
        if known is None or known[0] != len(self.variables):
            found = {
                leaf[1:3] for v in self.variables for a in (v.pos, v.neg) for leaf, _ in a.terms if leaf[0] == "nn"
            }
            self._leaves = known = (len(self.variables), sorted(found))
        return known[1]

    def layers(self, semiring: str) -> _Layers:
        """The KLay module and weight map, built once per semiring (and again after a merge)."""
        if getattr(self, "_layers", None) is None or self._layers.semiring != semiring:
            self._layers = _Layers(self, semiring)
        return self._layers

    def table(
        self, outputs: dict[tuple[str, str], torch.Tensor], params: list[torch.Tensor], semiring: str = "real"
    ) -> tuple[list[str], torch.Tensor]:
        """The answers and their probabilities (log-probabilities in the log semiring) on a batch, (batch,
        answers); `outputs[(network, placeholder)]` is (batch, domain)."""
        return self.layers(semiring).run(outputs, params)

    def run(
        self, outputs: dict[tuple[str, str], torch.Tensor], params: list[torch.Tensor], semiring: str = "real"
    ) -> dict[str, torch.Tensor]:
        """Each answer's values on a batch, by name (`table`, one tensor per answer)."""
        names, values = self.table(outputs, params, semiring)
        # one unbind: its backward stacks the columns' gradients once (a slice per answer would fill a
        # (batch, answers) gradient per answer: 199 answers at N = 2 made the backward 10 times slower)
        return dict(zip(names, values.unbind(1), strict=True))

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("_layers", "_leaves")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _layers=None)


class _Layers:
    """KLay's module over every root (answers, then the distinct conditions), and the affine map from the
    networks' outputs and parameters to each variable's (positive, negative) weights."""

    def __init__(self, circuit: Circuit, semiring: str) -> None:
        if semiring == "log" and any(v.learned_complement for v in circuit.variables):
            raise UserError(
                "engine.semiring: log is not exact for a t(_) annotated disjunction (its 'none' weight 1 - sum t "
                "can be exactly 0); use engine.semiring: real"
            )
        self.semiring = semiring
        self.forced = [i for i, v in enumerate(circuit.variables) if semiring == "log" and v.zero_if_normalised]
        self.names = [name for name, root in circuit.roots.items() if isinstance(root, str)]
        self.constants = {name: root for name, root in circuit.roots.items() if not isinstance(root, str)}
        texts = [circuit.roots[name] for name in self.names]
        divisors = sorted({circuit.conditions[name] for name in self.names if name in circuit.conditions})
        self.divisor = {name: len(texts) + divisors.index(circuit.conditions[name]) for name in circuit.conditions}
        built = klay.Circuit()
        false = [i + 1 for i in self.forced]
        with tempfile.TemporaryDirectory() as folder:
            for k, text in enumerate([*texts, *divisors]):
                path = Path(folder) / f"{k}.sdd"
                path.write_text(text)
                built.add_sdd_from_file(str(path), false_lits=false)
        self.module = _index_select(built.to_torch_module(semiring=semiring, compile=False)) if texts else None
        self.nodes = built.nb_nodes()
        # inputs: the used columns of each (network, placeholder), then the parameters; the last row: constants
        columns = sorted({leaf for v in circuit.variables for a in (v.pos, v.neg) for leaf, _ in a.terms})
        self.leaves = circuit.leaves()
        self.nn_columns = [
            (leaf, torch.tensor([c[3] for c in columns if c[0] == "nn" and c[1:3] == leaf])) for leaf in self.leaves
        ]
        self.every_column = [cols.tolist() == list(range(len(cols))) for _, cols in self.nn_columns]
        """the leaf reads its network's outputs in order: if they are no wider, no gather is needed"""
        params = [c for c in columns if c[0] == "param"]
        self.param_index = torch.tensor([c[1] for c in params], dtype=torch.long)
        order = {c: i for i, c in enumerate([c for c in columns if c[0] == "nn"] + params)}
        n = len(circuit.variables)
        # columns: each variable's positive weight, its negative weight, then the constant 1
        self.weights = torch.zeros(len(order) + 1, 2 * n + 1, dtype=torch.float64)
        self.weights[-1, -1] = 1.0
        for i, v in enumerate(circuit.variables):
            for j, weight in ((i, v.pos), (n + i, v.neg)):
                self.weights[-1, j] = weight.const
                for leaf, k in weight.terms:
                    self.weights[order[leaf], j] += k
        self.n = n
        self.keep = torch.ones(2 * n + 1, dtype=torch.bool)
        """the weights KLay reads (the log semiring's `forced` variables' positive ones are not: 1 instead)"""
        self.keep[self.forced] = False
        self.device = torch.device("cpu")
        self.polynomial = self._flattened() if self.module is not None else None

    def _flattened(self) -> Polynomial | None:
        """The circuit as its polynomial when that is small (`polynomial.py`), else None: KLay's layers run."""
        fixed = (self.weights[:-1] == 0).all(0) | ~self.keep
        constants = [
            (float(self.weights[-1, j]) if self.keep[j] else 1.0) if fixed[j] else None for j in range(len(fixed))
        ]
        roots = expand(self.module, constants)
        return None if roots is None else Polynomial(roots, one=2 * self.n, log=self.semiring == "log")

    def _to(self, device: torch.device, dtype: torch.dtype) -> None:
        if self.device != device or self.weights.dtype != dtype:
            self.weights = self.weights.to(device, dtype)
            self.nn_columns = [(leaf, cols.to(device)) for leaf, cols in self.nn_columns]
            self.param_index, self.keep = self.param_index.to(device), self.keep.to(device)
            for module in (self.module, self.polynomial):
                if module is not None:
                    module.to(device)
            self.device = device

    def run(
        self, outputs: dict[tuple[str, str], torch.Tensor], params: list[torch.Tensor]
    ) -> tuple[list[str], torch.Tensor]:
        first = next(iter(outputs.values()), None)
        batch, device = (len(first), first.device) if first is not None else (1, torch.device("cpu"))
        dtype = first.dtype if first is not None else torch.get_default_dtype()
        self._to(device, dtype)
        parts = [
            outputs[leaf] if every and outputs[leaf].shape[1] == len(cols) else outputs[leaf][:, cols]
            for (leaf, cols), every in zip(self.nn_columns, self.every_column, strict=True)
        ]
        if len(self.param_index):
            parts.append(torch.stack(params).to(device, dtype)[self.param_index].expand(batch, -1))
        constants = self.weights[-1]
        weights = (
            torch.addmm(constants, torch.cat(parts, 1), self.weights[:-1]) if parts else constants.repeat(batch, 1)
        )
        log = self.semiring == "log"
        if log:
            if self.forced:  # 'none' variables propagated away as false: their weight is never read
                weights = torch.where(self.keep, weights, torch.ones_like(weights))
            tiny = torch.finfo(dtype).tiny  # log 0 = -inf would give KLay's log-sum-exp no gradient
            weights = weights.clamp(min=tiny).log()
        if self.polynomial is not None:
            values = self.polynomial(weights)
        elif self.module is not None:
            values = self.module(weights[:, : self.n], weights[:, self.n : 2 * self.n])
        else:
            values = torch.zeros(batch, 0, dtype=dtype, device=device)
        answers = values[:, : len(self.names)]
        if self.divisor:  # evidence: each answer over its condition's root (the others over 1)
            by = torch.tensor([self.divisor.get(name, -1) for name in self.names], device=device)
            divisors = torch.cat([values, torch.full_like(values[:, :1], 0.0 if log else 1.0)], 1)[:, by]
            answers = answers - divisors if log else answers / divisors
        if not self.constants:
            return self.names, answers
        fixed = torch.tensor(list(self.constants.values()), dtype=dtype, device=device)
        fixed = (fixed.log() if log else fixed).expand(batch, -1)
        return [*self.names, *self.constants], torch.cat([answers, fixed], 1)


class _SumLayer(layers.SumLayer):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._scatter_forward(x.index_select(0, self.ix_in), "sum")


class _ProdLayer(layers.ProdLayer):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._scatter_forward(x.index_select(0, self.ix_in), "prod")


class _LogSumLayer(layers.LogSumLayer):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._scatter_forward(x.index_select(0, self.ix_in), "logsumexp")


_GATHER = {layers.SumLayer: _SumLayer, layers.ProdLayer: _ProdLayer, layers.LogSumLayer: _LogSumLayer}


def _index_select(module: nn.Module) -> nn.Module:
    """KLay's layers with their inputs gathered by `index_select`: KLay's `x[ix]` is the same gather, but
    its backward (an accumulating index_put) took 60 % of a 2-digit circuit's backward pass on this CPU,
    index_select's (index_add) about half that (docs/benchmarks.md)."""
    module.layers = nn.Sequential(*[_GATHER[type(k)](k.ix_in, k.offsets, k.ix_out, k._eps) for k in module.layers])
    return module


def _evidence(formula) -> list[int]:
    """The evidence literals (signed atom indices) ProbLog's evaluator conditions on."""
    literals = []
    for name, index, value in formula.evidence_all():
        if value == 0 or (index == 0 and value > 0) or (index is None and value < 0):
            continue  # undetermined, or deterministically what it claims
        if index == 0 or index is None:
            raise UserError(f"the program's evidence({name}) is inconsistent: it can never hold")
        literals.append(value * index)
    return literals


def compile_template(model, query: Term, output: int | None, domains: dict[str, int]) -> Circuit:
    """Ground and compile `query` as DeepProbLog does, into a circuit of its answers (`output`: the index of
    the output argument; None for a true/false query, whose one answer is TRUE). `domains`: each network's
    output size, which tells when a disjunction's 'none' weight is exactly 0."""
    started = time.perf_counter()
    formula = model.solver.build_ac(Query(query)).sdd
    semiring = AffineSemiring(model)
    weights = {atom: w for atom, w in formula.extract_weights(semiring).items() if atom in formula.atom2var}
    evidence = _evidence(formula)
    for literal in evidence:
        if abs(literal) in weights:
            pos, neg = weights[abs(literal)]
            weights[abs(literal)] = semiring.to_evidence(pos, neg, literal > 0)
    manager = formula.get_manager()
    condition = manager.conjoin(formula.get_constraint_inode(), *[formula.get_inode(e) for e in evidence])
    circuit = Circuit()
    number = [0] * (max(formula.atom2var.values(), default=0) + 1)
    for atom, var in formula.atom2var.items():
        pos, neg = (Affine.of(w) for w in weights.get(atom, (1.0, 1.0)))
        node = formula.get_node(atom)
        leaves = {leaf for leaf, _ in pos.terms}
        none = bool(getattr(node, "is_extra", False))
        normalised = none and pos.const == 1.0 and _complements_a_whole_domain(pos, domains)
        variable = Variable(
            pos,
            neg,
            zero_if_normalised=normalised or (none and pos == Affine((), 0.0)),
            learned_complement=none and any(leaf[0] == "param" for leaf in leaves),
        )
        number[var] = circuit.number((str(node.identifier), pos, neg), variable)
    condition_text = _renumber(_sdd_text(condition), number) if evidence else None
    for answer, node, _ in formula.labeled():
        name = str(answer)
        circuit.outputs[name] = TRUE if output is None else answer.args[output]
        if node is None:  # ProbLog's FALSE: not provable
            circuit.roots[name] = 0.0
            continue
        root = manager.conjoin(formula.get_inode(node), condition) if node != formula.TRUE else condition
        if root.is_false():
            circuit.roots[name] = 0.0
        elif root.is_true():
            circuit.roots[name] = 1.0
        else:
            circuit.roots[name] = _renumber(_sdd_text(root), number)
            if condition_text is not None:
                circuit.conditions[name] = condition_text
    circuit.templates.add(str(query))
    circuit.compile_seconds = time.perf_counter() - started
    return circuit


def _complements_a_whole_domain(weight: Affine, domains: dict[str, int]) -> bool:
    """1 − Σ of every output of one network on one input: exactly 0 for a distribution."""
    leaves = {leaf[1:3] for leaf, _ in weight.terms}
    if len(leaves) != 1 or any(leaf[0] != "nn" or k != -1.0 for leaf, k in weight.terms):
        return False
    network = next(iter(leaves))[0]
    return sorted(leaf[3] for leaf, _ in weight.terms) == list(range(domains.get(network, -1)))
