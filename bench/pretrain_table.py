"""Run `nesy-gedi pretrain` for methods × seeds in parallel and tabulate the metrics (mean ± std).

Run: .venv/bin/python bench/pretrain_table.py TASK.yaml --methods gedi,jem --seeds 5 [--workers 2]
     [--set KEY=VALUE ...] [--runs DIR] [--out docs/results.md --section KEY]
Finished runs (metrics.json present) are reused, so an interrupted table resumes where it stopped; a
failed or diverged run is counted, not fatal. Each run gets one torch thread per worker.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import numpy as np
from sections import write_section

COLUMNS = ("nmi", "cluster_accuracy", "ood_auroc_fashion", "ood_auroc_noise")


def run_one(task: str, method: str, seed: int, folder: Path, sets: list[str]) -> dict:
    if (folder / "metrics.json").is_file():
        return json.loads((folder / "metrics.json").read_text())
    command = [sys.executable, "-m", "nesy_gedi", "pretrain", task, "--seed", str(seed), "--out", str(folder)]
    command += ["--set", f"method={method}", "--set", "train.threads=1"]
    for item in sets:
        command += ["--set", item]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    print(f"{method} seed {seed}: exit {done.returncode} in {wall:.0f} s", flush=True)
    if (folder / "metrics.json").is_file():
        metrics = json.loads((folder / "metrics.json").read_text())
        metrics["wall_seconds"] = wall
        (folder / "metrics.json").write_text(json.dumps(metrics, indent=2))
        return metrics
    return {"status": "failed", "error": done.stderr.strip().splitlines()[-1:] or ["?"]}


def cell(values: list[float], digits: int = 3) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values):.{digits}f} (min {min(values):.{digits}f})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("task")
    parser.add_argument("--methods", required=True)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--runs", default="runs/tables")
    parser.add_argument("--out", default="docs/results.md")
    parser.add_argument("--section")
    args = parser.parse_args()
    methods = args.methods.split(",")
    name = Path(args.task).stem
    jobs = [(m, s, Path(args.runs) / name / f"{m}-seed{s}") for m in methods for s in range(args.seeds)]
    with ThreadPoolExecutor(args.workers) as pool:
        results = list(pool.map(lambda job: run_one(args.task, job[0], job[1], job[2], args.set), jobs))
    wall = sum(r.get("wall_seconds", 0.0) for r in results)  # recorded per run, so reused runs count too
    rows = []
    for method in methods:
        runs = [r for (m, _, _), r in zip(jobs, results, strict=True) if m == method]
        finished = [r for r in runs if r.get("status") == "finished"]
        cells = [cell([r[c] for r in finished if c in r]) for c in COLUMNS]
        train = cell([r["train_seconds"] for r in finished], digits=0)
        rows.append(
            f"| {method} | {len(finished)}/{len(runs)} | {' | '.join(cells)} | "
            f"{sum(r.get('status') == 'diverged' for r in runs)} | {train} |"
        )
    sets = "".join(f" --set {s}" for s in args.set)
    command = f"python bench/pretrain_table.py {args.task} --methods {args.methods} --seeds {args.seeds}{sets}"
    text = "\n".join(
        [
            f"`{command}` on {date.today()}, {platform.machine()} CPU, {args.workers} runs in parallel with one "
            f"torch thread each, no GPU; the runs' wall times add up to {wall / 60:.0f} min. Mean ± standard "
            "deviation over the "
            "finished seeds, and the worst seed; NMI and cluster accuracy (Hungarian matching) on the held-out "
            "data; OOD: AUROC of -E(x) with MNIST test as in-distribution.",
            "",
            "| method | finished | NMI | cluster accuracy | OOD AUROC Fashion-MNIST | OOD AUROC noise | diverged | "
            "train s |",
            "|---|---|---|---|---|---|---|---|",
            *rows,
        ]
    )
    print(text)
    if args.section:
        write_section(args.out, args.section, text)


if __name__ == "__main__":
    main()
