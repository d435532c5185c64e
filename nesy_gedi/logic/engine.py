"""What every inference engine is, and what the engines share: DeepProbLog's model of the program, the
networks, the image sources and the program's learnable probabilities.

An engine only answers questions (log p(label) for training, query probabilities and most probable
answers for evaluation); the loss and the optimiser step belong to training, so that other loss terms join
the same backward pass. The engines: `DeepProbLogEngine` (its ExactEngine, the oracle), `CompiledEngine`
(KLay circuits) and `ChainEngine` (a compiled step circuit composed over list inputs).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from functools import partial

import torch
from deepproblog.engines import ExactEngine
from deepproblog.model import Model
from deepproblog.network import Network
from deepproblog.query import Query
from deepproblog.semiring.graph_semiring import GraphSemiring
from problog.logic import AnnotatedDisjunction, Or, Term
from torch import nn

from nesy_gedi.logic.parameters import ProgramParameters
from nesy_gedi.logic.program import Program
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


class Engine(nn.Module, ABC):
    """An engine is the program as a module: each network's distribution for the images of a batch in
    (`Leaves`), log p(label) (`log_likelihood`) or p(every answer) out, gradients by autograd. Every engine
    grounds through DeepProbLog's Model on the parsed program (its `model`, whose networks read the tables
    of outputs a solve is given); the program's `t(_)` probabilities are `program_parameters`, a module the
    run's optimiser trains. The networks sit inside the engine, so that `probabilities` and `predict` can
    take queries of image references (evaluation) as well as leaves (training)."""

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
        """per query shape, which placeholders each network reads (for rewriting queries to read the tables)"""

    def grounding(self, goal: Term) -> contextlib.AbstractContextManager[None]:
        """DeepProbLog grounding `goal` within the program's `limits:` (endless recursion stops with a message)."""
        return self.program.grounding(goal, self.model.solver.engine.engine)

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

    @abstractmethod
    def log_likelihood(self, leaves: Leaves, labels: Sequence[Term]) -> torch.Tensor:
        """log p(label) of each query of the task's template (log p(query) for a true/false one) from the
        networks' distributions: the training path."""

    @abstractmethod
    def probabilities(self, queries: Sequence[Query]) -> torch.Tensor:
        """p(query) for each query, differentiable with respect to the networks."""

    def log_probabilities(self, queries: Sequence[Query]) -> torch.Tensor:
        """log p(query) as DeepProbLog's loss takes it: log(p + 1e-12), p clamped at 0 against round-off."""
        return torch.log(self.probabilities(queries).clamp(min=0.0) + LOSS_FLOOR)

    def impossible(self, labels: Sequence[Term]) -> list[int]:
        """The positions of labels no world of the task's template gives. Labels are read against the
        program's answers when they are read (`data.query_files`); an engine whose answers are too many to
        list (the chain) checks them here."""
        return []

    @abstractmethod
    def predict(self, queries: Sequence[Query]) -> list[Term | None]:
        """The most probable value of each query's output argument (None when the program proves none); for
        a true/false query, TRUE when p(query) > 0.5."""
