"""Cost of one GEDI iteration against the network passes it is made of, measured side by side.

Run: .venv/bin/python bench/gedi_step.py [--out docs/benchmarks.md]
Real MNIST, the network and settings of tasks/gedi_mnist.yaml (batch 256, 64 SGLD chains), with 1 torch
thread (how the result tables run: two runs side by side) and 2. For K = 5, 10, 20 it times whole GEDI
iterations (loss terms, backward, Adam step) and, inside them, SGLD sampling; and, taking turns with the
iteration in every round (same process, same tensors), the bare passes an iteration needs: K
forward+input-gradient passes on the chains, one forward+backward on all inputs of the step (data copy,
two views, samples) and an Adam step; drawing the two views alone; and drawing the Gaussian noise the
objective adds (data copy, K SGLD steps). Overhead = iteration / bare passes - 1, and
iteration / (bare passes + views + noise) - 1, each ratio taken within a round, median over rounds.
"""

from __future__ import annotations

import argparse
import platform
import time
from datetime import date

import numpy as np
import torch
from sections import table_section, write_section
from timing import interleaved_times, median

from nesy_gedi.assembly.config import PretrainConfig
from nesy_gedi.assembly.task import load_task
from nesy_gedi.data.images import to_tensor
from nesy_gedi.data.mnist import load_mnist
from nesy_gedi.networks import build_network
from nesy_gedi.ssl.augment import make_views
from nesy_gedi.ssl.objectives import SSLContext, make_objective
from nesy_gedi.ssl.sgld import Domain

REPEATS = 60


def measure(threads: int, steps: int, config: PretrainConfig, images: torch.Tensor) -> str:
    """One table row: a GEDI iteration with K = steps, and the bare passes it is made of."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = build_network(config.network.arch, config.network.clusters)
    generator = torch.Generator().manual_seed(0)
    sgld = config.sgld.model_copy(update={"steps": steps})
    low = torch.full((1, 28, 28), -1.0)
    context = SSLContext(Domain(low, -low), make_views(config.augment, "images", generator), sgld, generator)
    objective = make_objective("gedi", config.method_args, net, context)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    sampling: list[float] = []
    original = objective.sampler.sample

    def timed_sample(*args, **kwargs) -> torch.Tensor:
        started = time.perf_counter()
        out = original(*args, **kwargs)
        sampling.append(time.perf_counter() - started)
        return out

    objective.sampler.sample = timed_sample

    def iteration() -> None:
        optimizer.zero_grad()
        terms, _ = objective.loss_terms(images, 0)
        sum(terms.values()).backward()
        optimizer.step()

    chains = torch.rand(sgld.negatives, 1, 28, 28) * 2 - 1
    everything = torch.cat([images, images, images, chains])  # data copy, views a and b, samples

    def chain_passes() -> None:
        net.eval()
        for _ in range(steps):
            x = chains.clone().requires_grad_(True)
            torch.autograd.grad(torch.logsumexp(objective.cluster_net(x), -1).sum(), x)
        net.train()

    def step_pass() -> None:
        optimizer.zero_grad()
        objective.cluster_net(everything).logsumexp(-1).mean().backward()
        optimizer.step()

    def draw_noise() -> None:
        torch.randn(images.shape, generator=generator)
        for _ in range(steps):
            torch.randn(chains.shape, generator=generator)

    parts = {
        "iteration": iteration,
        "chains": chain_passes,
        "step": step_pass,
        "views": lambda: (context.views(images), context.views(images)),
        "noise": draw_noise,
    }
    times = {name: np.array(t) for name, t in interleaved_times(parts, REPEATS).items()}
    total, views, noise = (median(times[name]) for name in ("iteration", "views", "noise"))
    sample = median(sampling[2:])
    bare = times["chains"] + times["step"]
    # overheads: medians over rounds of the ratio within a round, so that drift of the machine cancels
    over = median(times["iteration"] / bare) - 1
    over_all = median(times["iteration"] / (bare + times["views"] + times["noise"])) - 1
    return (
        f"| {threads} | {steps} | {total * 1e3:.1f} | {sample * 1e3:.1f} | {(total - sample) * 1e3:.1f} | "
        f"{median(times['chains']) / steps * 1e3:.2f} | {median(bare) * 1e3:.1f} | {views * 1e3:.1f} | "
        f"{noise * 1e3:.1f} | {100 * over:+.0f}% | {100 * over_all:+.0f}% |"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="docs/benchmarks.md")
    args = parser.parse_args()
    config = load_task("tasks/gedi_mnist.yaml", kind=PretrainConfig)
    batch = config.train.batch_size
    images = to_tensor(load_mnist().train.images[:batch])
    rows = []
    for threads in (1, 2):
        for steps in (5, 10, 20):
            rows.append(measure(threads, steps, config, images))
            print(rows[-1], flush=True)
    intro = (
        f"`.venv/bin/python bench/gedi_step.py` on {date.today()}, {platform.machine()} CPU, 1 and 2 torch "
        "threads (the result tables run two runs side by side with one thread each), no GPU "
        f"({platform.platform()}); real MNIST, the task's network ({config.network.arch}), batch {batch}, "
        f"{config.sgld.negatives} SGLD chains, the augmentations of tasks/gedi_mnist.yaml; median of "
        f"{REPEATS} rounds, each timing an iteration and then each part below once, in turn. *Bare passes* "
        "is what the iteration cannot avoid, timed alone in the same process: K forward+input-gradient "
        "passes on the chains plus one forward+backward on all inputs of the step (data copy, two augmented "
        "views, samples) and an Adam step. *Views*: drawing the two augmented views of the batch, also timed "
        "alone. *Noise*: the Gaussian noise the objective draws (the data copy's σ = 0.03 and the K SGLD "
        "steps' σ), timed alone. Overhead: the iteration beyond the bare passes, and beyond the bare passes, "
        "views and noise (what is left: loss arithmetic and bookkeeping); each ratio is taken within a round "
        "and its median over the rounds is shown, so drift of the machine's speed cancels (the ms columns' "
        "medians need not divide to it exactly)."
    )
    header = ["threads", "K", "iteration ms", "SGLD sampling ms", "rest ms", "one chain pass ms", "bare passes ms"]
    header += ["views ms", "noise ms", "overhead vs passes", "overhead vs passes + views + noise"]
    text = table_section("GEDI iteration cost", intro, header, rows)
    write_section(args.out, "gedi-step", text)


if __name__ == "__main__":
    main()
