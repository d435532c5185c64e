"""A program with its networks as one trainable model, through DeepProbLog's Model and ExactEngine.

The engine only answers questions (query probabilities, most probable answers); the loss and the
optimiser step belong to training, so that other loss terms can join the same backward pass.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Sequence

import torch
from deepproblog.engines import ExactEngine
from deepproblog.model import Model
from deepproblog.network import Network
from deepproblog.optimizer import SGD
from deepproblog.query import Query
from problog.logic import Term
from torch import nn

from nesy_gedi.logic.program import FALSE, TRUE, Program
from nesy_gedi.networks import PredicateHead

# DeepProbLog's semiring compares probabilities as Python floats; harmless, and it would flood the output.
warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad=True to a scalar")

LOSS_FLOOR = 1e-12
"""DeepProbLog's cross-entropy takes log(p + 1e-12): the floor of every loss from linear-space probabilities"""


class _TensorSource:
    """Resolves `tensor(split(i))` to image i; DeepProbLog passes the key as the tuple `(Constant(i),)`."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __getitem__(self, key: tuple) -> torch.Tensor:
        return self.images[int(key[0])]


class DeepProbLogEngine:
    """Exact inference with DeepProbLog 2.1: one SDD per query template, cached in memory."""

    def __init__(
        self,
        program: Program,
        networks: dict[str, nn.Module],
        sources: dict[str, torch.Tensor],
        param_lr: float,
    ) -> None:
        self.networks = networks
        dpl_networks = [Network(PredicateHead(module), name, batching=True) for name, module in networks.items()]
        with contextlib.redirect_stdout(io.StringIO()):  # DeepProbLog prints "Caching ACs"
            self.model = Model(program.text, dpl_networks, load=False)
            self.model.set_engine(ExactEngine(self.model), cache=True)
        for name, images in sources.items():
            self.model.add_tensor_source(name, _TensorSource(images))
        if self.model.parameters:  # learnable t(_) probabilities are updated by DeepProbLog's own SGD
            self.model.optimizer = SGD(self.model, param_lr)

    def set_optimizers(self, optimizers: dict[str, torch.optim.Optimizer]) -> None:
        for name, optimizer in optimizers.items():
            self.model.networks[name].optimizer = optimizer

    def zero_grad(self) -> None:
        self.model.optimizer.zero_grad()

    def step(self) -> None:
        """One optimiser step for every network and for the program's t(_) parameters."""
        self.model.optimizer.step()

    def train(self) -> None:
        self.model.train()

    def eval(self) -> None:
        self.model.eval()

    @property
    def parameters(self) -> list[float]:
        return self.model.parameters

    def probabilities(self, queries: Sequence[Query]) -> torch.Tensor:
        """p(query) for each query, differentiable with respect to the networks."""
        results = self.model.solve(queries)
        # a query the program cannot prove has no entry: probability 0, as in DeepProbLog's own loss
        probs = [r.result.get(q.substitute().query, 0.0) for r, q in zip(results, queries, strict=True)]
        return torch.stack([torch.as_tensor(p, dtype=torch.get_default_dtype()) for p in probs])

    def log_probabilities(self, queries: Sequence[Query]) -> torch.Tensor:
        """log p(query) as DeepProbLog's loss takes it: log(p + 1e-12), p clamped at 0 against round-off."""
        return torch.log(self.probabilities(queries).clamp(min=0.0) + LOSS_FLOOR)

    @torch.no_grad()
    def predict(self, queries: Sequence[Query]) -> list[Term | None]:
        """The most probable value of each query's output argument (None when the program proves none); for
        a true/false query, TRUE when p(query) > 0.5."""
        if queries and not queries[0].output_ind:
            return [TRUE if float(p) > 0.5 else FALSE for p in self.probabilities(queries)]
        results = self.model.solve([q.variable_output() for q in queries])
        answers: list[Term | None] = []
        for r, q in zip(results, queries, strict=True):
            if not r.result:
                answers.append(None)
                continue
            best = max(r.result, key=lambda term: float(r.result[term]))
            answers.append(best.args[q.output_ind[0]])
        return answers
