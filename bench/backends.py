"""The same 2-method × 4-seed comparison on the local backend and on Ray (a local one-machine cluster
started by the call), one after the other in one process: wall time of each call and Ray's overhead per run.

Run: .venv/bin/python bench/backends.py [--iterations 300] [--out /tmp/bench-backends]  (on an idle machine)
Both calls run 2 jobs at a time with one torch thread each (local: --workers 2; Ray: a 2-CPU machine, one CPU
per run); every run is trained from scratch (the output folders are removed first).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(backend: str, out: Path, iterations: int) -> float:
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-m", "nesy_gedi", "compare", str(ROOT / "tasks" / "mnist_add.yaml")]
    command += ["--methods", "dpl,entropy", "--seeds", "4", "--workers", "2", "--backend", backend, "--out", str(out)]
    for item in (f"train.iterations={iterations}", "train.threads=1", "data.test_size=1000"):
        command += ["--set", item]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--out", default="/tmp/bench-backends")
    args = parser.parse_args()
    walls = {b: timed(b, Path(args.out) / b, args.iterations) for b in ("local", "ray")}
    runs = [json.loads(p.read_text()) for p in (Path(args.out) / "local").glob("*-seed*/metrics.json")]
    per_run = sum(r["train_seconds"] + r["eval_seconds"] for r in runs) / len(runs)
    print("| backend | wall s | per run s (train + eval, local) | Ray overhead per run s |")
    print("|---|---|---|---|")
    print(f"| local | {walls['local']:.1f} | {per_run:.1f} | |")
    print(f"| ray | {walls['ray']:.1f} | | {(walls['ray'] - walls['local']) / len(runs) * 2:.1f} |")


if __name__ == "__main__":
    main()
