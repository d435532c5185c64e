"""Negative samples for the generative term: SGLD chains kept in a persistent replay buffer (JEM).

Each call takes as many chains as asked from the buffer, restarts each with probability `reinit` from
uniform noise on the input domain, runs K steps of x <- clamp(x + α ∇x logsumexp(logits(x)) + σ ε) with
the network in eval mode and its parameters untouched, and writes the chains back.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, PositiveFloat, PositiveInt, confloat

from nesy_gedi.errors import UserError


class SGLDSpec(BaseModel):
    """SGLD settings. The defaults are JEM's sampler (GEDI_SPEC.md §5) with 10 steps instead of 20 and a step
    of 0.1 instead of 1 (JEM's step scaled by the temperature 0.1 of the cluster logits): stable, but its
    chains stay near noise on MNIST. `tasks/gedi_mnist.yaml` takes α = 1, which makes the energy a density
    model of digits (docs/results.md, "The generative term, factor by factor")."""

    model_config = ConfigDict(extra="forbid", strict=True)

    steps: PositiveInt = Field(10, description="SGLD steps K per training iteration")
    negatives: PositiveInt | None = Field(None, description="chains advanced per iteration (default: batch size)")
    step_size: PositiveFloat = Field(0.1, description="α, the step along ∇x logsumexp")
    noise: NonNegativeFloat = Field(0.01, description="σ of the Gaussian noise added at each step")
    buffer_size: PositiveInt = Field(10_000, description="persistent chains in the replay buffer")
    reinit: confloat(ge=0.0, le=1.0) = Field(0.05, description="probability that a chain restarts from noise")
    clamp: bool = Field(True, description="keep chains inside the input domain after each step")


class Domain:
    """The compact input domain Ω as a per-coordinate box [low, high]."""

    def __init__(self, low: torch.Tensor, high: torch.Tensor) -> None:
        self.low, self.high = low, high

    def uniform(self, n: int, generator: torch.Generator) -> torch.Tensor:
        noise = torch.rand((n, *self.low.shape), generator=generator, device=self.low.device)
        return self.low + (self.high - self.low) * noise

    def clamp(self, x: torch.Tensor) -> torch.Tensor:
        return torch.maximum(torch.minimum(x, self.high), self.low)


class SGLDSampler:
    def __init__(self, spec: SGLDSpec, domain: Domain, generator: torch.Generator) -> None:
        self.spec, self.domain, self.generator = spec, domain, generator
        self.buffer = domain.uniform(spec.buffer_size, generator)

    def _chains(self, n: int) -> torch.Tensor:
        """n distinct buffer indices: with repeats, writing the chains back would race (the last write of a
        repeated index is not defined), and a resumed run would not repeat an uninterrupted one."""
        if n > self.spec.buffer_size:
            raise UserError(
                f"sgld.negatives = {n} exceeds sgld.buffer_size = {self.spec.buffer_size}; raise the buffer"
            )
        return torch.randperm(self.spec.buffer_size, generator=self.generator, device=self.buffer.device)[:n]

    def sample(
        self, logits_fn: Callable[[torch.Tensor], torch.Tensor], module: torch.nn.Module, n: int
    ) -> torch.Tensor:
        """n detached samples after K steps from the buffer (module is put in eval mode meanwhile)."""
        index = self._chains(n)
        x = self.buffer[index].clone()
        restart = torch.rand(n, generator=self.generator, device=x.device) < self.spec.reinit
        x[restart] = self.domain.uniform(int(restart.sum()), self.generator)
        was_training = module.training
        module.eval()
        requires = [p.requires_grad for p in module.parameters()]
        for p in module.parameters():
            p.requires_grad_(False)
        try:
            for _ in range(self.spec.steps):
                x.requires_grad_(True)
                (grad,) = torch.autograd.grad(torch.logsumexp(logits_fn(x), -1).sum(), x)
                noise = torch.randn(x.shape, generator=self.generator, device=x.device)
                x = (x.detach() + self.spec.step_size * grad + self.spec.noise * noise).detach()
                if self.spec.clamp:
                    x = self.domain.clamp(x)
        finally:
            for p, r in zip(module.parameters(), requires, strict=True):
                p.requires_grad_(r)
            module.train(was_training)
        self.buffer[index] = x
        return x

    def state_dict(self) -> dict:
        """The chains; the generator is the objective's, saved with it."""
        return {"buffer": self.buffer}

    def load_state_dict(self, state: dict) -> None:
        self.buffer = state["buffer"].to(self.buffer.device)
