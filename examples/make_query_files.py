"""Write the query files of `tasks/mnist_add_files.yaml`: pairs of MNIST images with the sum of their
digits as the label, the sum taken from MNIST's own annotations (not from the program), as a data set
of examples and labels would come; and those of `tasks/mnist_faulty_sensor.yaml`: the same pairs read by a
sensor that reports one more than the sum with probability FAULT_RATE (drawn here, seeded, so the rate a
run learns can be checked against the one that made its labels).

Run: .venv/bin/python examples/make_query_files.py   (deterministic: the same files every time)
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from nesy_gedi.data.mnist import load_mnist

OUT = Path(__file__).resolve().parent.parent / "tasks" / "queries"
FAULT_RATE = 0.2


def main() -> None:
    mnist = load_mnist()
    rng = np.random.default_rng(2026)
    OUT.mkdir(parents=True, exist_ok=True)
    queries = {}
    for split, images, n in (("train", mnist.train, 6000), ("test", mnist.test, 1000)):
        pairs = rng.permutation(len(images.labels))[: 2 * n].reshape(n, 2)
        sums = images.labels[pairs].sum(1)
        queries[split] = [(int(a), int(b), int(s)) for (a, b), s in zip(pairs, sums, strict=True)]
    faults = np.random.default_rng(2027)
    readings = {
        split: [(a, b, s + int(faults.random() < FAULT_RATE)) for a, b, s in rows] for split, rows in queries.items()
    }
    for name, found in (("mnist_add", queries), ("faulty_sensor", readings)):
        with open(OUT / f"{name}_train.csv", "w", newline="") as f:  # training queries as CSV ...
            writer = csv.writer(f)
            writer.writerow(["A", "B", "label"])
            writer.writerows(found["train"])
        with open(OUT / f"{name}_test.jsonl", "w") as f:  # ... and the test queries as JSON Lines
            f.writelines(json.dumps({"A": a, "B": b, "label": s}) + "\n" for a, b, s in found["test"])
        print(f"wrote {OUT}/{name}_train.csv and {name}_test.jsonl")


if __name__ == "__main__":
    main()
