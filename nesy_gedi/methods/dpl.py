"""`dpl`: DeepProbLog alone, the perception networks learn from the query labels only."""

from __future__ import annotations

import torch

from nesy_gedi.methods.base import Method, TrainBatch


class DeepProbLog(Method):
    def loss_terms(self, batch: TrainBatch) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        return {}, {}
