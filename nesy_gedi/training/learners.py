"""What the training loop trains: a program task's query loss with its method's terms, or a
self-supervised objective on unlabelled inputs. Each is a `train.Learner`."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from nesy_gedi.data.queries import QuerySet
from nesy_gedi.logic.engine import LOSS_FLOOR, Engine
from nesy_gedi.logic.program import FALSE
from nesy_gedi.logic.query import QueryTemplate
from nesy_gedi.methods import Method, TrainBatch
from nesy_gedi.ssl.objectives import Objective
from nesy_gedi.training.checkpoint import NETWORK
from nesy_gedi.training.supervision import ConceptLabels


def symbolic_loss(
    log_probabilities: torch.Tensor, targets: torch.Tensor | None = None, eps: float = LOSS_FLOOR
) -> torch.Tensor:
    """DeepProbLog's cross-entropy from log p(query) (`engine.log_probabilities`): the mean of -log p for a
    query with target 1 and of -log(1 - p + 1e-12) for a negative example (target 0, a true/false query
    labelled `false`)."""
    positive = -log_probabilities
    if targets is None:  # every query positive (no device readout to find out)
        return positive.mean()
    negative = -torch.log((-torch.expm1(log_probabilities)).clamp(min=0.0) + eps)
    return torch.where(targets.bool(), positive, negative).mean()


PARAMETERS = "t(_)"
"""the program's learnable probabilities among the learner's networks (no network can be named so)"""


class QueryLearner:
    """A program task: the method's terms added to the query loss from the engine. Its networks are the
    method's, its modules and the program's `t(_)` probabilities, each optimised by the loop (the
    probabilities at `param_lr`); their values are logged every step as `t/<fact>`. The progress bar's
    `p_label>0.5` is the share of the batch's queries the program gets right: p(label) > 0.5, or for a
    negative example p(query) < 0.5."""

    def __init__(
        self,
        engine: Engine,
        method: Method,
        template: QueryTemplate,
        train_set: QuerySet,
        tensors: dict[str, torch.Tensor],
        readers: dict[str, list[int]],
        param_lr: float,
        concept_labels: dict[str, ConceptLabels] | None = None,
        seed: int = 0,
    ) -> None:
        self.engine, self.method, self.template = engine, method, template
        self.train_set, self.tensors, self.readers = train_set, tensors, readers
        self.concept_labels, self.seed = concept_labels or {}, seed
        parameters = engine.program_parameters
        self.networks = {**method.networks, **method.modules, **({PARAMETERS: parameters} if len(parameters) else {})}
        self.rates = {PARAMETERS: param_lr}
        self._modules = [m for root in (engine, *method.modules.values()) for m in root.modules()]
        """every module this learner puts in training mode (evaluation puts them in eval mode)"""
        self.progress = ("p_label>0.5", *method.progress)

    def loss_terms(self, rows: np.ndarray, step: int) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """Each network called once on the batch's images it reads; its distributions go to the engine, its
        logits to the method's terms."""
        images = self.images(rows)
        if not all(module.training for module in self._modules):  # train() sets every submodule's flag
            for module in (self.engine, *self.method.modules.values()):
                module.train()
        logits, supervised = self._logits(images, step)
        labels = [self.train_set.labels[r] for r in rows]
        leaves = self.template.leaves({net: torch.softmax(out, -1) for net, out in logits.items()})
        log_p = self.engine.log_likelihood(leaves, labels)
        negative = [self.template.boolean and label == FALSE for label in labels]
        targets = torch.tensor([0.0 if no else 1.0 for no in negative], device=log_p.device) if any(negative) else None
        terms, info = self.method.loss_terms(TrainBatch(images=images, step=step, logits=logits))
        if targets is None:
            right = log_p.detach() > math.log(0.5)
        else:
            p = log_p.detach().exp()
            right = torch.where(targets.bool(), p, 1.0 - p) > 0.5
        parameters = self.engine.program_parameters
        learned = (
            {f"t/{name}": value for name, value in zip(parameters.names, parameters().detach(), strict=True)}
            if len(parameters)
            else {}
        )
        for net, (out, concepts) in supervised.items():
            terms[f"concepts_{net}"] = self.concept_labels[net].weight * F.cross_entropy(out, concepts)
        # tensors on the run's device: the loop reads every number of a step at once
        return {"query": symbolic_loss(log_p, targets), **terms}, {
            "p_label>0.5": right.float().mean(),
            **info,
            **learned,
        }

    def _logits(
        self, images: dict[str, torch.Tensor], step: int
    ) -> tuple[dict[str, torch.Tensor], dict[str, tuple[torch.Tensor, torch.Tensor]]]:
        """Each network's logits on its images of the step, from one call that also reads as many of its
        labelled images (`concept_labels`), whose logits and concepts come second."""
        logits, supervised = {}, {}
        for net, x in images.items():
            labelled = self.concept_labels.get(net)
            if labelled is None:
                logits[net] = self.engine.networks[net](x)
                continue
            extra, concepts = labelled.batch(self.seed, step, len(x))
            out = self.engine.networks[net](torch.cat([x, extra]))
            logits[net], supervised[net] = out[: len(x)], (out[len(x) :], concepts)
        return logits, supervised

    def images(self, rows: np.ndarray) -> dict[str, torch.Tensor]:
        """Per network, the images of these training queries that it reads."""
        return {network: self.train_set.images(self.tensors, read, rows) for network, read in self.readers.items()}

    def divergence(self, info: dict[str, float]) -> str | None:
        return self.method.divergence(info)

    def state_dict(self) -> dict:
        return {"method": self.method.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.method.load_state_dict(state["method"])


class PretrainLearner:
    """Trains one network on the objective's terms for batches of unlabelled inputs."""

    def __init__(self, objective: Objective, inputs: torch.Tensor) -> None:
        self.objective, self.inputs = objective, inputs
        self.networks = {NETWORK: objective.network}
        self.rates: dict[str, float] = {}
        self.progress = ("max_prob", "energy_gap") if objective.generative else ("max_prob",)

    def loss_terms(self, rows: np.ndarray, step: int) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        self.objective.network.train()
        return self.objective.loss_terms(self.inputs[torch.as_tensor(rows, device=self.inputs.device)], step)

    def divergence(self, info: dict[str, float]) -> str | None:
        return self.objective.divergence(info)

    def state_dict(self) -> dict:
        return self.objective.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.objective.load_state_dict(state)
