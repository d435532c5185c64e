"""Query loss + λ · a self-supervised objective, joint in one backward pass (the GEDI family and SwAV).

One network plays both roles: the neural predicate reads the objective's cluster logits (softmax over the
predicate's domain, so clusters = domain size), and the objective's terms read the same logits. Each
network of the task gets its own objective. What the objective sees each step is `ssl_data`: the images of
the batch's queries, or a draw of `ssl_batch_size` images from the task's training images, unlabelled.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Literal

import torch
from pydantic import Field, NonNegativeFloat, PositiveInt
from torch import nn

from nesy_gedi.methods.base import Method, MethodArgs, MethodContext, TrainBatch, prefixed
from nesy_gedi.ssl.augment import make_views
from nesy_gedi.ssl.objectives import OBJECTIVES, Objective, SSLContext


class JointArgs(MethodArgs):
    weight: NonNegativeFloat = Field(
        1.0, description="λ: the self-supervised loss is added as λ · its terms (0: the objective is not run at all)"
    )
    ssl_data: Literal["queries", "unlabeled"] = Field(
        "queries", description="queries: the batch's images; unlabeled: a draw from the task's training images"
    )
    ssl_batch_size: PositiveInt | None = Field(
        None, description="unlabeled: images drawn per step (default: as many as the query batch has)"
    )
    batch_statistics: Literal["all", "queries"] = Field(
        "queries",
        description="which passes update batch-norm running statistics (what evaluation and SGLD use): all, "
        "or only the query loss's pass on the query images (not the views and samples of this term)",
    )


@contextmanager
def running_statistics_kept(module: nn.Module) -> Iterator[None]:
    """Batch norm still normalises with each batch's own statistics, but its running statistics stay as
    they are (momentum 0), so that augmented views and SGLD samples do not shift what evaluation uses."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum in zip(norms, saved, strict=True):
            m.momentum = momentum


class SelfSupervised(Method):
    objective: str
    """the self-supervised objective's name in `nesy_gedi.ssl.objectives.OBJECTIVES`"""

    def __init__(self, args: JointArgs, networks: dict[str, nn.Module], context: MethodContext) -> None:
        super().__init__(args, networks, context)
        cls = OBJECTIVES[self.objective]
        objective_args = cls.Args.model_validate(args.model_dump(include=set(cls.Args.model_fields)))
        views = make_views(context.augment, "images", context.generator)
        self.objectives: dict[str, Objective] = {
            name: cls(objective_args, net, SSLContext(context.domains[name], views, context.sgld, context.generator))
            for name, net in networks.items()
        }
        generative = any(objective.generative for objective in self.objectives.values())
        self.progress = ("energy_gap",) if generative and len(networks) == 1 else ()

    def predicate_networks(self) -> dict[str, nn.Module]:
        return {name: objective.cluster_net for name, objective in self.objectives.items()}

    def _inputs(self, batch: TrainBatch, name: str) -> torch.Tensor:
        """What network `name`'s objective sees: its images of the batch, or a draw from its pool."""
        if self.args.ssl_data == "queries":
            return batch.images[name]
        pool, generator = self.context.pools[name], self.context.generator
        n = self.args.ssl_batch_size or len(batch.images[name])
        return pool[torch.randint(len(pool), (n,), generator=generator, device=pool.device)]

    def loss_terms(self, batch: TrainBatch) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        several = len(self.objectives) > 1
        terms: dict[str, torch.Tensor] = {}
        info: dict[str, float] = {}
        if self.args.weight == 0:  # λ = 0 adds nothing to any gradient: skip the views and SGLD it would cost
            return terms, info
        for name, objective in self.objectives.items():
            keep = self.args.batch_statistics == "queries"
            with running_statistics_kept(objective.network) if keep else nullcontext():
                own_terms, own_info = objective.loss_terms(self._inputs(batch, name), batch.step)
            terms.update(prefixed({k: self.args.weight * v for k, v in own_terms.items()}, name, several))
            info.update(prefixed(own_info, name, several))
        return terms, info

    def divergence(self, info: dict[str, float]) -> str | None:
        several = len(self.objectives) > 1
        for name, objective in self.objectives.items():
            own = {k.removeprefix(f"{name}/"): v for k, v in info.items() if not several or k.startswith(f"{name}/")}
            reason = objective.divergence(own)
            if reason:
                return f"{name}: {reason}"
        return None

    def samples(self) -> dict[str, torch.Tensor]:
        found = {name: objective.samples() for name, objective in self.objectives.items()}
        return {name: samples for name, samples in found.items() if samples is not None}

    def state_dict(self) -> dict:
        objectives = {name: objective.state_dict() for name, objective in self.objectives.items()}
        return {**super().state_dict(), "objectives": objectives}

    def load_state_dict(self, state: dict) -> None:
        for name, objective in self.objectives.items():
            objective.load_state_dict(state["objectives"][name])
        super().load_state_dict(state)
