"""`swav`: swapped prediction of Sinkhorn-Knopp codes between two views (SwAV's published defaults).

Prototypes are the rows of the network's last layer (bias unused), compared by cosine with the
normalised features before it; they are frozen for SwAV's loss in the first `freeze_prototypes`
iterations (other losses, such as a program's query loss, still move them).
"""

from __future__ import annotations

import torch
from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt

from nesy_gedi.ssl.objectives.base import CosinePrototypes, Objective, ObjectiveArgs, SSLContext, assignment_stats
from nesy_gedi.ssl.terms import swapped_prediction_loss


class SwavArgs(ObjectiveArgs):
    temperature: PositiveFloat = Field(0.1, description="τ of the swapped prediction and the cluster logits")
    epsilon: PositiveFloat = Field(0.05, description="Sinkhorn-Knopp entropy regularisation")
    sinkhorn_iterations: PositiveInt = Field(3, description="Sinkhorn-Knopp normalisation rounds")
    freeze_prototypes: NonNegativeInt = Field(313, description="iterations with fixed prototypes")
    w_swav: NonNegativeFloat = Field(1.0, description="weight of the SwAV loss")


class Swav(Objective):
    Args = SwavArgs

    def __init__(self, args: SwavArgs, network: torch.nn.Module, context: SSLContext) -> None:
        super().__init__(args, network, context)
        self.cluster_net = CosinePrototypes(network, args.temperature)

    def loss_terms(self, x: torch.Tensor, step: int) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        args = self.args
        views = torch.cat([self.context.views(x), self.context.views(x)])
        scores_a, scores_b = self.cluster_net.scores(views, frozen=step < args.freeze_prototypes).split(len(x))
        loss = swapped_prediction_loss(scores_a, scores_b, args.temperature, args.epsilon, args.sinkhorn_iterations)
        return {"swav": args.w_swav * loss}, assignment_stats(scores_a / args.temperature)
