"""What a self-supervised objective is: loss terms computed from the cluster logits of one network."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat
from torch import nn
from torchvision.transforms import v2

from nesy_gedi.ssl.sgld import Domain, SGLDSpec
from nesy_gedi.ssl.terms import marginal_entropy


class ObjectiveArgs(BaseModel):
    """An objective's keyword arguments from `method_args:`; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", strict=True)

    temperature: PositiveFloat = Field(1.0, description="τ: cluster logits are the network's logits divided by τ")


@dataclass(frozen=True)
class SSLContext:
    """What an objective needs besides the network: where inputs live, how views are drawn, how negatives are
    sampled (task-level settings, as they depend on the data), and one seeded RNG."""

    domain: Domain
    views: v2.Transform
    sgld: SGLDSpec
    generator: torch.Generator


class Tempered(nn.Module):
    """Cluster logits = network logits / τ; the neural predicate and every term read these."""

    def __init__(self, network: nn.Module, temperature: float) -> None:
        super().__init__()
        self.network, self.temperature = network, temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.network(x)
        return logits if self.temperature == 1.0 else logits / self.temperature


class CosinePrototypes(nn.Module):
    """SwAV's head: cosine scores between normalised features and the network's last-layer rows (no bias)."""

    def __init__(self, network: nn.Module, temperature: float) -> None:
        super().__init__()
        self.network, self.temperature = network, temperature

    def scores(self, x: torch.Tensor, frozen: bool = False) -> torch.Tensor:
        """Cosine scores; `frozen` keeps the prototypes out of this graph (SwAV's first iterations)."""
        prototypes = self.network.head.weight
        prototypes = prototypes.detach() if frozen else prototypes
        return F.normalize(self.network.features(x), dim=-1) @ F.normalize(prototypes, dim=-1).t()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scores(x) / self.temperature


def assignment_stats(logits: torch.Tensor) -> dict[str, torch.Tensor]:
    """Mean max-probability (confidence) and normalised entropy of the batch marginal (1 = balanced), for logs
    (on the device: the loop reads a step's numbers at once)."""
    logits = logits.detach()
    return {"max_prob": torch.softmax(logits, -1).max(-1).values.mean(), "marginal_entropy": marginal_entropy(logits)}


class Objective:
    """Named, weighted loss terms for a batch of unlabelled inputs, plus numbers worth logging."""

    Args: type[ObjectiveArgs] = ObjectiveArgs
    generative = False
    """True when the objective models p(x) (has SGLD samples to show)"""

    def __init__(self, args: ObjectiveArgs, network: nn.Module, context: SSLContext) -> None:
        self.args, self.network, self.context = args, network, context
        self.cluster_net: nn.Module = Tempered(network, args.temperature)

    def loss_terms(self, x: torch.Tensor, step: int) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        raise NotImplementedError

    def divergence(self, info: dict[str, float]) -> str | None:
        """Why the run must stop, if the logged numbers show it has diverged."""
        return None

    def samples(self) -> torch.Tensor | None:
        """Model samples for pictures (generative objectives only)."""
        return None

    def state_dict(self) -> dict:
        """What a resumed run needs to draw the same views and samples: the RNG, and a sampler's buffer."""
        return {"generator": self.context.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.context.generator.set_state(state["generator"])
