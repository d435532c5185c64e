"""Is GEDI's straight cut across the moons the objective's optimum? Compare GEDI's terms on the true split
(the gap between the moons) and on a balanced straight cut.

Run: .venv/bin/python bench/moons_cut_vs_gap.py
Two MLPs (tasks/gedi_moons.yaml's architecture) are trained with cross-entropy on the true labels and on a
straight cut; the invariance and prior terms are then measured on the same 20 batches of 256 training
points with jittered views. Second table: the same two partitions trained with cross-entropy plus the
generative term (the task's SGLD, w_gen 1): if the generative term preferred the gap, its loss and its
energy score would be better there. It cannot prefer a partition in principle: E(x) = -logsumexp(logits)
changes when one function of x is added to every logit, which leaves p(y|x), and so the partition, as it is.
"""

from __future__ import annotations

import torch
from sklearn.datasets import make_moons

from nesy_gedi.analysis.metrics import ood_auroc
from nesy_gedi.data.toy import make_points
from nesy_gedi.networks import build_network
from nesy_gedi.ssl.sgld import Domain, SGLDSampler, SGLDSpec
from nesy_gedi.ssl.terms import energy, generative_loss, invariance_loss, prior_loss


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


def fit(
    points: torch.Tensor, labels: torch.Tensor, sampler: SGLDSampler | None = None, steps: int = 2000
) -> tuple[torch.nn.Module, float]:
    """A network for the partition `labels`; with a sampler, trained with the generative term too, whose
    mean over the last 200 steps is returned."""
    torch.manual_seed(0)
    net = build_network("mlp_2d", 2)
    optimizer = torch.optim.Adam(net.parameters(), 1e-3)
    generative = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(points), labels)
        if sampler is not None:
            batch = points[torch.randint(0, len(points), (256,), generator=sampler.generator)]
            gen = generative_loss(net(batch), net(sampler.sample(net, net, 256)))
            generative.append(gen.item())
            loss = loss + gen
        loss.backward()
        optimizer.step()
    return net, sum(generative[-200:]) / max(1, len(generative[-200:]))


def main() -> None:
    torch.set_num_threads(1)
    data = make_points("moons", 2000, 1000, None, 0)
    points = data.train
    _, true = make_moons(2000, noise=0.1, random_state=0)  # the labels of the same training points
    true_split, straight_cut = torch.tensor(true), (points[:, 0] * 0.5 + points[:, 1] > 0).long()
    gap, _ = fit(points, true_split)
    cut, _ = fit(points, straight_cut)
    print("| jitter | invariance, true split | invariance, straight cut | prior, true split | prior, cut |")
    print("|---|---|---|---|---|")
    for jitter in (0.05, 0.1, 0.2, 0.3):
        (gi, gp), (ci, cp) = terms(gap, points, jitter), terms(cut, points, jitter)
        print(f"| {jitter} | {gi:.4f} | {ci:.4f} | {gp:.4f} | {cp:.4f} |")

    domain = Domain(data.low, data.high)
    noise = domain.uniform(1000, torch.Generator().manual_seed(2))
    print(
        "\n| partition, trained with cross-entropy + generative term | generative loss (last 200 steps) | "
        "energy AUROC, held-out points vs uniform box |"
    )
    print("|---|---|---|")
    for name, labels in (("true split (gap)", true_split), ("straight cut", straight_cut)):
        spec = SGLDSpec(steps=20, step_size=0.1, noise=0.01)
        net, gen = fit(points, labels, SGLDSampler(spec, domain, torch.Generator().manual_seed(0)))
        with torch.no_grad():
            auroc = ood_auroc(-energy(net(data.test)), -energy(net(noise)))
        print(f"| {name} | {gen:.3f} | {auroc:.3f} |")


if __name__ == "__main__":
    main()
