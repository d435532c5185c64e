"""What a training method is: the loss terms it adds to the program's query loss."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn


class MethodArgs(BaseModel):
    """A method's keyword arguments from `method_args:` in the task; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", strict=True)


@dataclass(frozen=True)
class TrainBatch:
    """What one optimiser step sees besides the queries: their images, for the networks' own terms."""

    images: torch.Tensor
    """every image of the batch's queries, (B * images per query, 1, 28, 28)"""


class Method:
    """Adds loss terms to the query loss; all terms are summed and back-propagated once per step."""

    Args: type[MethodArgs] = MethodArgs

    def __init__(self, args: MethodArgs, networks: dict[str, nn.Module]) -> None:
        self.args = args
        self.networks = networks

    def loss_terms(self, batch: TrainBatch) -> dict[str, torch.Tensor]:
        """Named extra loss terms for this batch, each already weighted."""
        raise NotImplementedError
