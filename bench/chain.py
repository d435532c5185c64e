"""Exact inference over long numbers with the chain engine: time and memory per query at N digits.

For N in --digits (default 15, 100, 1000), in a fresh process each (so that the peak memory is that N's):
`tasks/mnist_multi_add_15.yaml` with two N-digit numbers per query on real MNIST test images, untrained
LeNet (the cost of exact inference does not depend on the weights). Reported: the seconds the program's
labels of the test queries took (ProbLog, query by query), the first pass (step circuits compiled or read
from the cache), the median seconds per query of p(label) (the network on the query's 2N images, then the
chain) at a batch of all the test queries, of the most probable world's answer (`predict`, whose answer the
program gives through ProbLog), and the process's peak resident memory after the labels and after
inference. One torch thread.

Run: .venv/bin/python bench/chain.py [--digits 15,100,1000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from timing import median_seconds  # noqa: E402

from nesy_gedi.assembly.task import assemble, load_task  # noqa: E402
from nesy_gedi.commands.runner import peak_memory_mb  # noqa: E402
from nesy_gedi.data.mnist import default_cache_dir  # noqa: E402


def one(n: int, repeats: int) -> dict:
    """The measurements at N digits, in this process."""
    torch.set_num_threads(1)
    queries = max(1, min(32, 10_000 // (2 * n)))  # MNIST's test split holds 10,000 images
    config = load_task(
        ROOT / "tasks" / "mnist_multi_add_15.yaml",
        {"query.inputs.A": str(n), "query.inputs.B": str(n), "data.train_size": "1", "data.test_size": str(queries)},
    )
    started = time.perf_counter()
    task = assemble(config, torch.device("cpu"), default_cache_dir())
    assembled = time.perf_counter() - started
    memory_before = peak_memory_mb()
    test = task.splits["id"]
    batch = [task.template.query(test.tensors, test.indices[r], test.labels[r]) for r in range(len(test))]
    engine = task.engine.eval()
    started = time.perf_counter()
    with torch.no_grad():
        engine.probabilities(batch)
    first = time.perf_counter() - started

    def p_label() -> None:
        with torch.no_grad():
            engine.probabilities(batch)

    per_query = median_seconds(p_label, repeats) / len(batch)
    predict = median_seconds(lambda: engine.predict(batch), max(1, repeats // 2)) / len(batch)
    return {
        "n": n,
        "queries": len(batch),
        "assemble_s": assembled,
        "first_s": first,
        "p_label_ms": 1000 * per_query,
        "predict_ms": 1000 * predict,
        "peak_mb_before": memory_before,
        "peak_mb": peak_memory_mb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digits", default="15,100,1000")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.repeats)))
        return
    print("| N | test queries | queries + labels s | first pass s | p(label) ms/query | predict ms/query | peak MB |")
    print("|---|---|---|---|---|---|---|")
    for n in (int(d) for d in args.digits.split(",")):
        out = subprocess.run(
            [sys.executable, __file__, "--one", str(n), "--repeats", str(args.repeats)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(
            f"| {n} | {r['queries']} | {r['assemble_s']:.1f} | {r['first_s']:.2f} | {r['p_label_ms']:.2f} | "
            f"{r['predict_ms']:.1f} | {r['peak_mb']:.0f} (before inference {r['peak_mb_before']:.0f}) |",
            flush=True,
        )


if __name__ == "__main__":
    main()
