"""How long an offline image source takes to load from its cache (the target: under 2 s), each load timed
in turn within every round so both see the same machine.

Run: .venv/bin/python bench/sources.py [--rounds 5] [--out docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import platform
import time
from datetime import date

import numpy as np
from sections import table_section, write_section

from nesy_gedi.data.mnist import default_cache_dir
from nesy_gedi.data.sources import load_source

KINDS = ("mnist", "fashion_mnist")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default="docs/benchmarks.md")
    args = parser.parse_args()
    cache = default_cache_dir()
    for kind in KINDS:  # the first load may unpack or fetch: not what is measured
        load_source(kind, None, False, cache)
    times: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for _ in range(args.rounds):
        for kind in KINDS:
            started = time.perf_counter()
            data = load_source(kind, None, False, cache)
            times[kind].append(time.perf_counter() - started)
    rows = []
    for kind in KINDS:
        data = load_source(kind, None, False, cache)
        rows.append(
            f"| `{kind}` | {len(data.train.labels):,} / {len(data.test.labels):,} | {np.median(times[kind]):.2f} | "
            f"{max(times[kind]):.2f} | {data.source} |"
        )
        print(rows[-1], flush=True)
    intro = (
        f"`.venv/bin/python bench/sources.py --rounds {args.rounds}` on {date.today()}, {platform.machine()} CPU "
        "(2 cores), MD5 checks included, after one warm-up load; the loads alternate within every round."
    )
    header = ["source", "train / test images", "median s", "slowest s", "read from"]
    write_section(args.out, "sources", table_section("Loading image sources from the cache", intro, header, rows))


if __name__ == "__main__":
    main()
