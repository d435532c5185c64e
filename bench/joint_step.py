"""Time per joint training step of `dpl`, `gedi` and `swav`, split into engine, network and
self-supervised parts, measured side by side in one process on the same batch.

Run: .venv/bin/python bench/joint_step.py [--out docs/benchmarks.md]
tasks/mnist_add_gedi.yaml (32 queries = 64 images per step, compiled engine, batch-normalised LeNet; GEDI
with K = 10 SGLD steps on 64 chains), real MNIST, 2 torch threads. Parts, each the median of 30 repeats
after two warm-up calls:
- network: forward + backward of the network on the step's 64 query images (the pass the engine makes);
- engine: the query loss's forward + backward through the compiled program, less the network part;
- self-supervised: the method's own terms, forward + backward (views, SGLD, their network passes);
- step: a whole optimiser step (zero_grad, all terms, one backward, Adam), whose rest is bookkeeping.
"""

from __future__ import annotations

import argparse
import platform
from datetime import date

import numpy as np
import torch
from sections import table_section, write_section
from timing import median_seconds

from nesy_gedi.assembly.task import assemble, load_task
from nesy_gedi.data.mnist import default_cache_dir
from nesy_gedi.methods import TrainBatch
from nesy_gedi.training.learners import symbolic_loss

REPEATS = 30


def median_ms(fn) -> float:
    return median_seconds(fn, REPEATS) * 1e3


def measure(method: str) -> tuple[float, float, float, float]:
    """(step, engine, network, self-supervised) milliseconds for one method."""
    config = load_task("tasks/mnist_add_gedi.yaml", {"method": method})
    task = assemble(config, torch.device("cpu"), default_cache_dir())
    learner, engine = task.learner, task.engine
    net = task.predicates["mnist_net"]
    optimizer = torch.optim.Adam(task.method.networks["mnist_net"].parameters(), lr=1e-3)
    rows = np.arange(config.train.batch_size)
    ts = task.train_set
    queries = [task.template.query(ts.tensors, ts.indices[r], ts.labels[r]) for r in rows]
    images = learner.images(rows)
    engine.train()

    def step() -> None:
        optimizer.zero_grad()
        terms, _ = learner.loss_terms(rows, 0)
        sum(terms.values()).backward()
        optimizer.step()

    def query_loss() -> None:
        optimizer.zero_grad()
        symbolic_loss(engine.log_probabilities(queries)).backward()

    def network() -> None:
        optimizer.zero_grad()
        net(images["mnist_net"]).logsumexp(-1).sum().backward()

    def self_supervised() -> None:
        optimizer.zero_grad()
        terms, _ = task.method.loss_terms(TrainBatch(images=images, step=0))
        if terms:
            sum(terms.values()).backward()

    net_ms = median_ms(network)
    return median_ms(step), median_ms(query_loss) - net_ms, net_ms, median_ms(self_supervised)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="docs/benchmarks.md")
    args = parser.parse_args()
    torch.set_num_threads(2)
    rows = []
    for method in ("dpl", "gedi", "swav"):
        step, engine, network, ssl = measure(method)
        rest = step - engine - network - ssl
        rows.append(
            f"| {method} | {step:.1f} | {engine:.1f} | {network:.1f} | {ssl:.1f} | {rest:.1f} | "
            f"{100 * ssl / step:.0f}% | {ssl / (engine + network):.1f}× |"
        )
        print(rows[-1], flush=True)
    intro = (
        f"`.venv/bin/python bench/joint_step.py` on {date.today()}, {platform.machine()} CPU, 2 torch "
        f"threads, no GPU ({platform.platform()}); tasks/mnist_add_gedi.yaml: 32 queries (64 images) per "
        "step, compiled engine, batch-normalised LeNet, GEDI with K = 10 SGLD steps on 64 chains; median "
        f"of {REPEATS} repeats of each part in one process. *Engine*: the query loss's forward and backward "
        "through the compiled program, less the network's own pass on the 64 query images (*network*); "
        "*self-supervised*: the method's terms, forward and backward; *rest*: the step less those parts "
        "(optimiser step, bookkeeping; can be slightly negative from timing noise)."
    )
    header = ["method", "step ms", "engine ms", "network ms", "self-supervised ms", "rest ms", "self-supervised share"]
    header.append("self-supervised / (engine + network)")
    text = table_section("Joint training step: engine, network and self-supervised parts", intro, header, rows)
    write_section(args.out, "joint-step", text)


if __name__ == "__main__":
    main()
