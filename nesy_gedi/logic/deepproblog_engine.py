"""A program with its networks as one trainable model, through DeepProbLog's Model and ExactEngine.

The engine only answers questions (query probabilities, most probable answers); the loss and the
optimiser step belong to training, so that other loss terms can join the same backward pass.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator, Sequence
from functools import partial

import torch
from deepproblog.engines import ExactEngine
from deepproblog.model import Model
from deepproblog.network import Network
from deepproblog.query import Query
from deepproblog.semiring.graph_semiring import GraphSemiring
from problog.logic import AnnotatedDisjunction, Constant, Or, Term
from torch import nn

from nesy_gedi.logic.parameters import ProgramParameters
from nesy_gedi.logic.program import FALSE, TRUE, Program
from nesy_gedi.logic.query import QueryTemplate


@contextlib.contextmanager
def quiet_deepproblog() -> Iterator[None]:
    """DeepProbLog's semiring compares probabilities as Python floats, which torch warns of on every query:
    harmless, and it would flood the output. Silenced only while DeepProbLog runs, not in the caller's code."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad=True to a scalar")
        yield


LOSS_FLOOR = 1e-12
"""DeepProbLog's cross-entropy takes log(p + 1e-12): the floor of every loss from linear-space probabilities"""


LEAVES = "leaf"
"""the tensor source whose `tensor(leaf(i))` is row i of every network's table of outputs (`_Leaves`)"""


class _Model(Model):
    """DeepProbLog's Model on the clauses `Program` already parsed: a run parses its program file once."""

    def __init__(self, program: Program, networks: list[Network]) -> None:
        super().__init__("", networks, load=False)  # an empty text: nothing to parse
        self.program = list(program.clauses)  # as parsed: a SimpleProgram would already turn `Or` into an AD
        self._extract_parameters()  # t(p) -> DeepProbLog's parameter indices, as Model's own constructor does


class _Index:
    """Resolves `tensor(leaf(i))` to i: DeepProbLog stacks a query's indices and hands them to `_Leaves`."""

    def __getitem__(self, key: tuple) -> torch.Tensor:
        return torch.tensor(int(key[0]))


class _Leaves(nn.Module):
    """What DeepProbLog calls for network `name`: rows of the outputs the engine was given for this batch.
    The networks themselves run once per batch before ProbLog sees a query (a batch-normalised network is
    never called on one query's single image), and gradients flow back through the rows."""

    def __init__(self, tables: dict[str, torch.Tensor], name: str) -> None:
        super().__init__()
        self.tables, self.name = tables, name

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        return self.tables[self.name][rows.to(self.tables[self.name].device)]


Leaves = dict[tuple[str, str], torch.Tensor]
"""per (network, placeholder), the network's distribution for that placeholder's image of each query (batch, domain)"""


class _ParameterSemiring(GraphSemiring):
    """DeepProbLog's semiring reading each `t(i)` from the program's parameter module (a tensor in the
    autograd graph) instead of its float list and SGD hooks."""

    def __init__(self, model: Model, substitution: dict, values: dict, parameters: list[torch.Tensor]) -> None:
        super().__init__(model, substitution, values)
        self.parameters = parameters

    def value(self, a, key=None):
        if type(a) is Term and a.functor == "t":
            return self.parameters[int(a.args[0])]
        return super().value(a, key)


def parameter_names(model: Model) -> list[str]:
    """What each of DeepProbLog's `t(_)` parameters is the probability of (`coin(1)`, `f(X)`), in its order."""
    names: dict[int, str] = {}
    for statement in model.program:
        if isinstance(statement, AnnotatedDisjunction):
            heads = statement.heads
        elif isinstance(statement, Or):
            heads = statement.to_list()
        else:
            heads = [getattr(statement, "head", statement)]
        for head in heads:
            p = head.probability
            if isinstance(p, Term) and p.functor == "t":
                names[int(p.args[0])] = str(head.with_probability(None))
    return [names[i] for i in range(len(model.parameters))]


class DeepProbLogEngine(nn.Module):
    """Exact inference with DeepProbLog 2.1: one SDD per query template, cached in memory. The networks'
    distributions come in as leaves (`log_likelihood`), or are computed once per batch from the queries'
    images (`probabilities`); ProbLog reads them through lookup networks, and the program's `t(_)`
    probabilities from `program_parameters`, a module the run's optimiser trains."""

    def __init__(
        self,
        program: Program,
        networks: dict[str, nn.Module],
        sources: dict[str, torch.Tensor],
        template: QueryTemplate | None = None,
    ) -> None:
        super().__init__()
        self.networks = nn.ModuleDict(networks)
        self.program, self.sources, self.template = program, sources, template
        self._tables: dict[str, torch.Tensor] = {}
        self._parameters_now: list[torch.Tensor] = []
        dpl_networks = [Network(_Leaves(self._tables, name), name, batching=True) for name in networks]
        with contextlib.redirect_stdout(io.StringIO()):  # DeepProbLog prints "Caching ACs"
            self.model = _Model(program, dpl_networks)
            self.model.set_engine(ExactEngine(self.model), cache=True)
        self.model.add_tensor_source(LEAVES, _Index())
        self.model.solver.semiring = partial(_ParameterSemiring, parameters=self._parameters_now)
        self.program_parameters = ProgramParameters(
            self.model.parameters, self.model.parameter_groups, parameter_names(self.model)
        )
        self._readers: dict[Term, dict[str, list[int]]] = {}

    def images(self, refs: Sequence[Term]) -> torch.Tensor:
        """Images for `tensor(source(i))` terms, gathered with one index per source."""
        keys = [(ref.args[0].functor, int(ref.args[0].args[0])) for ref in refs]
        if len({source for source, _ in keys}) == 1:
            return self.sources[keys[0][0]][torch.tensor([i for _, i in keys])]
        return torch.stack([self.sources[source][i] for source, i in keys])

    def distributions(self, net: str, refs: Sequence[Term]) -> torch.Tensor:
        """Network `net`'s distribution over its predicate's domain for each image, in one call."""
        return torch.softmax(self.networks[net](self.images(refs)), -1)

    def template_leaves(self, queries: Sequence[Query]) -> Leaves:
        """The leaves of queries of the task's template: each network called once on its images."""
        assert self.template is not None, "template_leaves needs the engine's query template"
        images = self.template.images
        distributions = {
            net: self.distributions(net, [q.substitution[images[p]] for q in queries for p in read])
            for net, read in self.template.readers.items()
        }
        return self.template.leaves(distributions)

    def _read(self, shape: Term, placeholders: list[Term]) -> dict[str, list[int]]:
        """Which placeholders of a query shape each network reads (grounded once per shape)."""
        if shape not in self._readers:
            self._readers[shape] = self.program.readers(shape, placeholders)
        return self._readers[shape]

    def query_leaves(self, queries: Sequence[Query]) -> tuple[list[Query], dict[str, torch.Tensor]]:
        """The queries with each image replaced by a row of the networks' output tables, and the tables:
        each network called once on every image it reads in the batch."""
        refs: dict[str, list[Term]] = {}
        rows: dict[str, list[int]] = {}
        rewritten, total = [], 0
        for q in queries:
            placeholders = list(q.substitution)
            read = self._read(q.variable_output().query, placeholders)
            substitution = {}
            for p, ph in enumerate(placeholders):
                substitution[ph] = Term("tensor", Term(LEAVES, Constant(total)))
                for net, positions in read.items():
                    if p in positions:
                        refs.setdefault(net, []).append(q.substitution[ph])
                        rows.setdefault(net, []).append(total)
                total += 1
            rewritten.append(Query(q.query, substitution, p=q.p, output_ind=q.output_ind))
        tables = {}
        for net, images in refs.items():
            out = self.distributions(net, images)
            index = torch.tensor(rows[net], device=out.device)
            tables[net] = out.new_zeros(total, out.shape[-1]).index_copy(0, index, out)
        return rewritten, tables

    def solve(self, queries: Sequence[Query]) -> list:
        """DeepProbLog's results for these queries (every answer of a query with an open output), each
        answer with its images as the query named them."""
        rewritten, tables = self.query_leaves(queries)
        results = self._solve(rewritten, tables)
        for result, ours, theirs in zip(results, rewritten, queries, strict=True):
            back = {ours.substitution[ph]: theirs.substitution[ph] for ph in theirs.substitution}
            result.result = {answer.apply_term(back): p for answer, p in result.result.items()}
        return results

    def _solve(self, queries: Sequence[Query], tables: dict[str, torch.Tensor]) -> list:
        self._tables.clear()
        self._tables.update(tables)
        self._parameters_now[:] = self.program_parameters.each()
        try:
            with quiet_deepproblog():
                return self.model.solve(queries)
        finally:
            self._tables.clear()
            self._parameters_now.clear()

    def _probabilities(self, queries: Sequence[Query], tables: dict[str, torch.Tensor]) -> torch.Tensor:
        results = self._solve(queries, tables)
        # a query the program cannot prove has no entry: probability 0, as in DeepProbLog's own loss
        probs = [r.result.get(q.substitute().query, 0.0) for r, q in zip(results, queries, strict=True)]
        return torch.stack([torch.as_tensor(p, dtype=torch.get_default_dtype()) for p in probs])

    def probabilities(self, queries: Sequence[Query]) -> torch.Tensor:
        """p(query) for each query, differentiable with respect to the networks."""
        return self._probabilities(*self.query_leaves(queries))

    def log_probabilities(self, queries: Sequence[Query]) -> torch.Tensor:
        """log p(query) as DeepProbLog's loss takes it: log(p + 1e-12), p clamped at 0 against round-off."""
        return torch.log(self.probabilities(queries).clamp(min=0.0) + LOSS_FLOOR)

    def log_likelihood(self, leaves: Leaves, labels: Sequence[Term]) -> torch.Tensor:
        """log p(label) of each query of the task's template (log p(query) for a true/false one) from the
        networks' distributions, as `log_probabilities` takes it."""
        assert self.template is not None, "log_likelihood needs the engine's query template"
        template, batch = self.template, len(labels)
        count = len(template.images)
        tables = {}
        for (net, ph), values in leaves.items():
            if net not in tables:
                tables[net] = values.new_zeros(batch, count, values.shape[-1])
            where = torch.tensor([template.position[ph]], device=values.device)
            tables[net] = tables[net].index_copy(1, where, values.unsqueeze(1))
        queries = [  # image p of query b is row b * count + p of every network's table
            template.with_label(
                {ph: Term("tensor", Term(LEAVES, Constant(b * count + p))) for p, ph in enumerate(template.images)},
                label,
            )
            for b, label in enumerate(labels)
        ]
        flat = {net: table.reshape(batch * count, -1) for net, table in tables.items()}
        return torch.log(self._probabilities(queries, flat).clamp(min=0.0) + LOSS_FLOOR)

    @torch.no_grad()
    def predict(self, queries: Sequence[Query]) -> list[Term | None]:
        """The most probable value of each query's output argument (None when the program proves none); for
        a true/false query, TRUE when p(query) > 0.5."""
        if queries and not queries[0].output_ind:
            return [TRUE if float(p) > 0.5 else FALSE for p in self.probabilities(queries)]
        results = self.solve([q.variable_output() for q in queries])
        answers: list[Term | None] = []
        for r, q in zip(results, queries, strict=True):
            if not r.result:
                answers.append(None)
                continue
            best = max(r.result, key=lambda term: float(r.result[term]))
            answers.append(best.args[q.output_ind[0]])
        return answers
