"""The toolkit's training step against the same computation in plain torch: how close to the floor are we?

For single-digit addition (N = 1, `tasks/mnist_add.yaml`) and digit-by-digit addition of two 4-digit numbers
(N = 4, `tasks/mnist_multi_add_15.yaml` at N = 4: the chain engine, real semiring), at batch 2, 32 and 128
queries: one optimiser step of `nesy-gedi run` (the loop's own step: gather, network, engine, loss,
backward, Adam, schedule) and the same step written by hand in plain torch (the same network and weights,
the same images, Adam, the exact likelihood: the sum's distribution by convolution for N = 1, a carry
recursion over the positions for N = 4), timed in turns in one process. One torch thread; run it on an
idle machine.

Run: .venv/bin/python bench/floor.py [--rounds 30] [--steps 20]
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from timing import interleaved_times, median  # noqa: E402

from nesy_gedi.assembly.task import assemble, load_task  # noqa: E402
from nesy_gedi.data.mnist import default_cache_dir  # noqa: E402
from nesy_gedi.training.learners import symbolic_loss  # noqa: E402
from nesy_gedi.training.loop import Trainer  # noqa: E402
from nesy_gedi.training.rundir import RunDir  # noqa: E402

CASES = {  # N -> (task, overrides); 2,000 training queries (a step costs the same for any number)
    1: ("tasks/mnist_add.yaml", {"data.train_size": "2000", "data.test_size": "100"}),
    4: (
        "tasks/mnist_multi_add_15.yaml",
        {
            "query.inputs.A": "4",
            "query.inputs.B": "4",
            "engine.semiring": "real",
            "data.train_size": "2000",
            "data.test_size": "100",
        },
    ),
}


def sum_distribution(p_a: torch.Tensor, p_b: torch.Tensor) -> torch.Tensor:
    """p(a + b) for independent digits, (batch, 19), by convolving the two distributions."""
    outer = p_a.unsqueeze(2) * p_b.unsqueeze(1)  # (batch, 10, 10)
    index = (torch.arange(10).unsqueeze(1) + torch.arange(10)).view(1, -1).expand(len(p_a), -1)
    return torch.zeros(len(p_a), 19, dtype=p_a.dtype).scatter_add(1, index, outer.flatten(1))


def number_likelihood(p_a: torch.Tensor, p_b: torch.Tensor, sums: torch.Tensor) -> torch.Tensor:
    """p(A + B = sum) for two N-digit numbers, most significant digit first, (batch, N, 10) each: the carry
    recursion from the last digit, the label's digit at each position."""
    n = p_a.shape[1]
    carry = torch.stack([torch.ones(len(sums)), torch.zeros(len(sums))], 1).to(p_a.dtype)  # p(carry in = 0, 1)
    rest = sums.clone()
    for position in range(n - 1, -1, -1):
        digit = rest % 10
        rest = rest // 10
        pair = sum_distribution(p_a[:, position], p_b[:, position])  # p(a + b = s), s in 0..18
        padded = torch.cat([pair, torch.zeros(len(pair), 1, dtype=pair.dtype)], 1)  # s + carry in 0..19
        new = torch.zeros_like(carry)
        for c in (0, 1):
            for out in (0, 1):  # s + c = digit + 10 * out
                s = digit + 10 * out - c
                valid = (s >= 0) & (s <= 18)
                value = padded.gather(1, s.clamp(0, 19).unsqueeze(1)).squeeze(1) * valid
                new[:, out] = new[:, out] + carry[:, c] * value
        carry = new
    return (carry * torch.stack([rest == 0, rest == 1], 1)).sum(1)


def plain_loss(net: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, n: int) -> torch.Tensor:
    """The query loss of a batch, written directly: the network on the batch's images (query by query, the
    first number's digits then the second's), the exact p(label), DeepProbLog's floored cross-entropy."""
    p = torch.softmax(net(images), -1).view(len(labels), 2, n, 10)
    if n == 1:
        likelihood = sum_distribution(p[:, 0, 0], p[:, 1, 0]).gather(1, labels.unsqueeze(1)).squeeze(1)
    else:
        likelihood = number_likelihood(p[:, 0], p[:, 1], labels)
    return symbolic_loss(torch.log(likelihood.clamp(min=0.0) + 1e-12))


def plain_step(net, optimizer, scheduler, images, labels, n) -> None:
    """The floor: one step of the same computation, written directly."""
    optimizer.zero_grad()
    plain_loss(net, images, labels, n).backward()
    optimizer.step()
    scheduler.step()


def measure(n: int, batch: int, rounds: int, steps: int) -> tuple[float, float]:
    """Steps per second of the toolkit's step and of the floor, medians over rounds of `steps` steps each."""
    task_file, overrides = CASES[n]
    config = load_task(ROOT / task_file, {**overrides, "train.batch_size": str(batch), "train.threads": "1"})
    task = assemble(config, torch.device("cpu"), default_cache_dir())
    trainer = Trainer(task.learner, len(task.train_set), config.train, 0, RunDir(Path(tempfile.mkdtemp())))
    own = copy.deepcopy(task.method.networks["mnist_net"])
    optimizer = torch.optim.Adam(own.parameters(), lr=config.train.lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=10**6)
    rng = np.random.default_rng(0)
    ts = task.train_set

    def batch_of(rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        images = ts.images(task.tensors, list(range(ts.indices.shape[1])), rows)
        return images, torch.tensor([int(str(ts.labels[r])) for r in rows])

    rows = np.arange(batch)  # the same computation: the same loss on the same batch before any step
    same = task.learner.loss_terms(rows, 0)[0]["query"], plain_loss(own, *batch_of(rows), n)
    assert torch.allclose(*same, rtol=1e-5), same
    for start in range(0, len(ts), 128):  # a run's one-time work (each label's split, circuit layers) done first,
        trainer._train_step(np.arange(start, min(start + 128, len(ts))))  # as a run's first epoch does it

    def ours() -> None:
        for _ in range(steps):
            trainer._train_step(rng.choice(len(ts), batch, replace=False))

    def floor() -> None:
        for _ in range(steps):
            plain_step(own, optimizer, scheduler, *batch_of(rng.choice(len(ts), batch, replace=False)), n)

    times = interleaved_times({"ours": ours, "floor": floor}, rounds)
    return steps / median(times["ours"]), steps / median(times["floor"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("| N | batch (queries) | nesy-gedi steps/s | plain torch steps/s | ratio |")
    print("|---|---|---|---|---|")
    for n in (1, 4):
        for batch in (2, 32, 128):
            ours, floor = measure(n, batch, args.rounds, args.steps)
            print(f"| {n} | {batch} | {ours:.0f} | {floor:.0f} | {ours / floor:.2f} |", flush=True)


if __name__ == "__main__":
    main()
