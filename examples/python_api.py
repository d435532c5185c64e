"""The Python API in one script: (1) a task loaded, trained and evaluated from Python; (2) a program as a
torch module inside a plain PyTorch training loop of your own (the network, optimiser and loss are yours;
the module gives p(answer) for every answer, differentiably).

Run: .venv/bin/python examples/python_api.py [--steps 300] [--out runs/api_example]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import nesy_gedi
from nesy_gedi.data.images import to_tensor
from nesy_gedi.data.mnist import load_mnist
from nesy_gedi.networks import build_network

ROOT = Path(__file__).resolve().parent.parent


def task_from_python(steps: int, out: Path) -> dict:
    """(1) The shipped addition task, smaller, trained from Python: the metrics `nesy-gedi run` would print."""
    task = nesy_gedi.load_task(
        ROOT / "tasks" / "mnist_add.yaml", train={"iterations": steps}, data={"train_size": 3000, "test_size": 500}
    )
    return task.train(out=out)


def program_in_your_loop(steps: int, seed: int = 0) -> float:
    """(2) DeepProbLog's addition program as a module: a LeNet learns digits from pair sums alone."""
    torch.manual_seed(seed)
    module = nesy_gedi.ProgramModule(
        ROOT / "programs" / "mnist_addition.pl", "addition(A, B, Sum)", "Sum", {"A": "image", "B": "image"}
    )
    column = {int(str(answer)): i for i, answer in enumerate(module.answers)}  # sum -> output column
    mnist = load_mnist()
    images, digits = to_tensor(mnist.train.images[:6000]), torch.as_tensor(mnist.train.labels[:6000])
    net = build_network("mnist_lenet", 10)
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(steps):
        first, second = torch.randint(len(images), (2, 32))
        sums = (digits[first] + digits[second]).tolist()  # the only supervision: each pair's sum
        p = module({"A": torch.softmax(net(images[first]), -1), "B": torch.softmax(net(images[second]), -1)})
        loss = -torch.log(p[torch.arange(32), [column[s] for s in sums]] + 1e-12).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    net.eval()
    with torch.no_grad():
        test = to_tensor(mnist.test.images[:2000])
        return float((net(test).argmax(-1) == torch.as_tensor(mnist.test.labels[:2000])).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "api_example")
    args = parser.parse_args()
    metrics = task_from_python(args.steps, args.out)
    print(f"(1) task from Python: Acc(Y) {metrics['task_accuracy']:.3f}, Acc(C) {metrics['concept_accuracy']:.3f}")
    print(f"(2) program as a module in your loop: digit accuracy {program_in_your_loop(args.steps):.3f}")


if __name__ == "__main__":
    main()
