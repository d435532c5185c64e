"""GEDI's loss terms and SwAV's, as plain functions of cluster logits (GEDI_SPEC.md §2, §10).

Every term reads the same logits: p(y|x) = softmax(logits), energy E(x) = -logsumexp(logits). None of
them stops a gradient: GEDI needs no stop-gradient, momentum encoder or Sinkhorn step. SwAV's codes are
the one exception, computed without gradient as SwAV prescribes.
"""

from __future__ import annotations

import math

import torch


def energy(logits: torch.Tensor) -> torch.Tensor:
    """E(x) = -logsumexp_y logits_y(x): low energy means high model density p(x)."""
    return -torch.logsumexp(logits, dim=-1)


def generative_loss(data_logits: torch.Tensor, sample_logits: torch.Tensor) -> torch.Tensor:
    """JEM's p(x) term: lowers the energy of data and raises it on the sampler's negatives."""
    return energy(data_logits).mean() - energy(sample_logits).mean()


def energy_penalty(data_logits: torch.Tensor, sample_logits: torch.Tensor) -> torch.Tensor:
    """Du & Mordatch's L2 penalty on energy magnitudes: keeps both energies near 0 so they cannot run off."""
    return energy(data_logits).pow(2).mean() + energy(sample_logits).pow(2).mean()


def invariance_loss(logits_a: torch.Tensor, logits_b: torch.Tensor, symmetric: bool = False) -> torch.Tensor:
    """Cross-entropy of view a's assignment against view b's, gradients through both (author code's direction)."""
    one_way = -(torch.softmax(logits_b, -1) * torch.log_softmax(logits_a, -1)).sum(-1).mean()
    if not symmetric:
        return one_way
    other_way = -(torch.softmax(logits_a, -1) * torch.log_softmax(logits_b, -1)).sum(-1).mean()
    return (one_way + other_way) / 2


def prior_loss(logits: torch.Tensor) -> torch.Tensor:
    """-sum_y log p̄_y of the batch marginal p̄ (author code's form); its minimum c·log c is at uniform p̄."""
    marginal = torch.softmax(logits, -1).mean(0)
    return -torch.log(marginal + 1e-12).sum()


def marginal_entropy(logits: torch.Tensor) -> torch.Tensor:
    """H(p̄)/log c of the batch marginal p̄ = mean softmax: 1 when every cluster is used equally, 0 when one
    takes everything (differentiable: rsbench's entropy regulariser is 1 minus this)."""
    marginal = torch.softmax(logits, -1).mean(0)
    return -(marginal * torch.log(marginal + 1e-12)).sum() / math.log(logits.shape[-1])


@torch.no_grad()
def sinkhorn(scores: torch.Tensor, epsilon: float = 0.05, iterations: int = 3) -> torch.Tensor:
    """SwAV's equipartitioned codes: rows of the result are per-sample assignments that sum to 1."""
    q = torch.exp((scores - scores.max()) / epsilon).t()  # (clusters, batch); shift for overflow, cancels out
    q /= q.sum()
    clusters, batch = q.shape
    for _ in range(iterations):
        q /= q.sum(dim=1, keepdim=True)
        q /= clusters
        q /= q.sum(dim=0, keepdim=True)
        q /= batch
    return (q * batch).t()


def swapped_prediction_loss(
    scores_a: torch.Tensor, scores_b: torch.Tensor, temperature: float, epsilon: float, iterations: int
) -> torch.Tensor:
    """SwAV: predict each view's Sinkhorn code from the other view's prototype scores."""
    q_a, q_b = sinkhorn(scores_a, epsilon, iterations), sinkhorn(scores_b, epsilon, iterations)
    log_p_a, log_p_b = torch.log_softmax(scores_a / temperature, -1), torch.log_softmax(scores_b / temperature, -1)
    return -0.5 * ((q_b * log_p_a).sum(-1).mean() + (q_a * log_p_b).sum(-1).mean())
