"""`gedi`: generative + invariance + prior terms on one network's cluster logits (GEDI_SPEC.md §2, §6).

The ablations (`jem`, `gedi-nogen`, `inv-only`, `prior-only`) are this objective with terms switched off;
they take the same arguments, so one task file serves every method (`--set method=jem`), and the
settings of a switched-off term are unused.
"""

from __future__ import annotations

import torch
from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt

from nesy_gedi.ssl.objectives.base import Objective, ObjectiveArgs, SSLContext, assignment_stats
from nesy_gedi.ssl.sgld import SGLDSampler
from nesy_gedi.ssl.terms import energy, energy_penalty, generative_loss, invariance_loss, prior_loss


class GediArgs(ObjectiveArgs):
    """GEDI's arguments; the defaults are the values measured on MNIST (docs/results.md). With SGLD's
    default step they keep the energy flat; `tasks/gedi_mnist.yaml` lowers `energy_l2` to 0.002 with α = 1
    for a working energy model. The 2-D toy tasks set their own."""

    temperature: PositiveFloat = Field(
        0.1, description="τ: cluster logits = network logits / τ (the author's value; clusters leave the start fast)"
    )
    w_gen: NonNegativeFloat = Field(
        0.01, description="weight of the generative (energy) term (heavier hurts MNIST clusters at this budget)"
    )
    data_noise: NonNegativeFloat = Field(0.03, description="σ of the noise added to data for the energy term")
    energy_l2: NonNegativeFloat = Field(
        0.01, description="weight of Du & Mordatch's L2 penalty on energies (0 = off; without it the gap runs away)"
    )
    max_energy_gap: PositiveFloat = Field(1e4, description="stop the run when |E(samples) - E(data)| exceeds this")
    gen_every: PositiveInt = Field(
        1,
        description="the generative term (and its SGLD sampling, most of a step's cost) on every k-th step only; "
        "the steps between train the invariance and prior terms alone",
    )

    w_inv: NonNegativeFloat = Field(1.0, description="weight of the invariance term")
    symmetric: bool = Field(False, description="average both directions of the view cross-entropy")

    w_prior: NonNegativeFloat = Field(1.0, description="weight of the uniform-prior term")


class Gedi(Objective):
    Args = GediArgs
    terms: tuple[str, ...] = ("gen", "inv", "prior")

    def __init__(self, args: GediArgs, network: torch.nn.Module, context: SSLContext) -> None:
        super().__init__(args, network, context)
        self.generative = "gen" in self.terms
        self.sampler = SGLDSampler(context.sgld, context.domain, context.generator) if self.generative else None

    def loss_terms(self, x: torch.Tensor, step: int) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        args, gen = self.args, self.context.generator
        generative = self.generative and step % args.gen_every == 0
        inputs: dict[str, torch.Tensor] = {}
        if "inv" in self.terms or "prior" in self.terms:
            inputs["a"] = self.context.views(x)
        if "inv" in self.terms:
            inputs["b"] = self.context.views(x)
        if generative:
            inputs["data"] = x + args.data_noise * torch.randn(x.shape, generator=gen, device=x.device)
            inputs["samples"] = self.sampler.sample(
                self.cluster_net, self.network, self.context.sgld.negatives or len(x)
            )
        # one network call for everything: with batch norm, the samples (a minority of the batch) are
        # normalised with statistics dominated by the data, as the sampler's running statistics are
        sizes = [len(v) for v in inputs.values()]
        logits = dict(zip(inputs, self.cluster_net(torch.cat(list(inputs.values()))).split(sizes), strict=True))

        terms: dict[str, torch.Tensor] = {}
        info: dict[str, torch.Tensor] = {}
        if generative:
            terms["gen"] = args.w_gen * generative_loss(logits["data"], logits["samples"])
            if args.energy_l2 > 0:
                terms["energy_l2"] = args.energy_l2 * energy_penalty(logits["data"], logits["samples"])
            e_data, e_samples = (energy(logits[k].detach()).mean() for k in ("data", "samples"))
            info.update(energy_data=e_data, energy_samples=e_samples, energy_gap=e_samples - e_data)
        if "inv" in self.terms:
            terms["inv"] = args.w_inv * invariance_loss(logits["a"], logits["b"], args.symmetric)
        if "prior" in self.terms:
            terms["prior"] = args.w_prior * prior_loss(logits["a"])
        info.update(assignment_stats(logits["a"] if "a" in logits else logits["data"]))
        return terms, info

    def divergence(self, info: dict[str, float]) -> str | None:
        gap = info.get("energy_gap")
        if gap is not None and not (abs(gap) <= self.args.max_energy_gap):
            return f"energy gap {gap:.3g} beyond method_args.max_energy_gap = {self.args.max_energy_gap:g}"
        return None

    def samples(self) -> torch.Tensor | None:
        return self.sampler.buffer if self.sampler is not None else None

    def state_dict(self) -> dict:
        sampler = {"sampler": self.sampler.state_dict()} if self.sampler is not None else {}
        return {**super().state_dict(), **sampler}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if self.sampler is not None:
            self.sampler.load_state_dict(state["sampler"])
