"""Is GEDI's straight cut across the moons the objective's optimum? Compare the invariance and prior terms of
the true split (the gap between the moons) and of a balanced straight cut.

Run: .venv/bin/python bench/moons_cut_vs_gap.py
Two MLPs (tasks/gedi_moons.yaml's architecture) are trained with cross-entropy on the true labels and on a
straight cut; both terms are then measured on the same 20 batches of 256 training points with jittered views.
"""

from __future__ import annotations

import torch
from sklearn.datasets import make_moons

from nesy_gedi.data.toy import make_points
from nesy_gedi.networks import build_network
from nesy_gedi.ssl.terms import invariance_loss, prior_loss


def terms(net: torch.nn.Module, points: torch.Tensor, jitter: float) -> tuple[float, float]:
    generator = torch.Generator().manual_seed(1)
    inv = prior = 0.0
    with torch.no_grad():
        for _ in range(20):
            x = points[torch.randint(0, len(points), (256,), generator=generator)]
            a = x + jitter * torch.randn(x.shape, generator=generator)
            b = x + jitter * torch.randn(x.shape, generator=generator)
            inv += invariance_loss(net(a), net(b)).item() / 20
            prior += prior_loss(net(a)).item() / 20
    return inv, prior


def fit(points: torch.Tensor, labels: torch.Tensor, steps: int = 2000) -> torch.nn.Module:
    torch.manual_seed(0)
    net = build_network("mlp_2d", 2)
    optimizer = torch.optim.Adam(net.parameters(), 1e-3)
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(net(points), labels).backward()
        optimizer.step()
    return net


def main() -> None:
    torch.set_num_threads(1)
    points = make_points("moons", 2000, 1000, None, 0).train
    _, true = make_moons(2000, noise=0.1, random_state=0)  # the labels of the same training points
    gap = fit(points, torch.tensor(true))
    cut = fit(points, (points[:, 0] * 0.5 + points[:, 1] > 0).long())
    print("| jitter | invariance, true split | invariance, straight cut | prior, true split | prior, cut |")
    print("|---|---|---|---|---|")
    for jitter in (0.05, 0.1, 0.2, 0.3):
        (gi, gp), (ci, cp) = terms(gap, points, jitter), terms(cut, points, jitter)
        print(f"| {jitter} | {gi:.4f} | {ci:.4f} | {gp:.4f} | {cp:.4f} |")


if __name__ == "__main__":
    main()
