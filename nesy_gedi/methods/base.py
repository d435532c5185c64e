"""What a training method is: the loss terms it adds to the program's query loss, and what it needs."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from nesy_gedi.ssl.augment import AugmentSpec
from nesy_gedi.ssl.sgld import Domain, SGLDSpec


class MethodArgs(BaseModel):
    """A method's keyword arguments from `method_args:` in the task; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", strict=True)


@dataclass(frozen=True)
class TrainBatch:
    """What one optimiser step sees besides the queries: their images, for the networks' own terms."""

    images: dict[str, torch.Tensor]
    """per network, every image of the batch's queries it reads, (B * its positions, C, H, W)"""
    step: int
    """optimiser steps taken before this one"""
    logits: dict[str, torch.Tensor] = field(default_factory=dict)
    """per network, what its neural predicates read (the logits of `images`) in this step's query loss, with
    their graph: a term on the same images reuses them instead of calling the network again"""


@dataclass(frozen=True)
class MethodContext:
    """What a method may use besides the networks: per network, its unlabelled image pool and input domain;
    the view and sampler settings of the task (`augment:`, `sgld:`), and one seeded RNG for everything it
    draws."""

    pools: dict[str, torch.Tensor]
    """per network, every training image it reads in the task's queries, without labels (`ssl_data: unlabeled`)"""
    domains: dict[str, Domain]
    augment: AugmentSpec
    sgld: SGLDSpec
    generator: torch.Generator


class Method:
    """Adds loss terms to the query loss; all terms are summed and back-propagated once per step."""

    Args: type[MethodArgs] = MethodArgs
    needs_pretrained = False
    """True when every network must start from a `nesy-gedi pretrain` run (`networks.<name>.init`)"""
    progress: tuple[str, ...] = ()
    """info keys shown on the progress bar"""

    def __init__(self, args: MethodArgs, networks: dict[str, nn.Module], context: MethodContext) -> None:
        self.args, self.networks, self.context = args, networks, context
        self.modules: dict[str, nn.Module] = {}
        """trainable modules of the method's own (e.g. a decoder), optimised and checkpointed with the networks"""

    def predicate_networks(self) -> dict[str, nn.Module]:
        """The logits each neural predicate reads (softmax over its domain); the method's own terms read the
        same logits, so one network plays both roles."""
        return self.networks

    def logits(self, batch: TrainBatch, name: str) -> torch.Tensor:
        """Network `name`'s logits on its images of the batch: those of the query loss when the step has
        them (one call per step), else a call now."""
        found = batch.logits.get(name)
        return found if found is not None else self.predicate_networks()[name](batch.images[name])

    def loss_terms(self, batch: TrainBatch) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """Named extra loss terms for this batch, each already weighted, and numbers worth logging."""
        raise NotImplementedError

    def divergence(self, info: dict[str, float]) -> str | None:
        """Why the run must stop, if the last batch showed the method's terms running away; `info`: the
        numbers of its `loss_terms`, read off the device as floats."""
        return None

    def samples(self) -> dict[str, torch.Tensor]:
        """Model samples per network, for pictures (generative methods only)."""
        return {}

    def state_dict(self) -> dict:
        return {"generator": self.context.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.context.generator.set_state(state["generator"])


def prefixed(values: dict, network: str, several: bool) -> dict:
    """Name a network's terms `<network>/<term>` when a task has several networks, plain otherwise."""
    return {f"{network}/{k}" if several else k: v for k, v in values.items()}
