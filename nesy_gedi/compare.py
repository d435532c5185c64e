"""`nesy-gedi compare`: every method × seed of one task, in parallel processes, then one table.

Each run is an ordinary `nesy-gedi run` in `<out>/<method>-seed<N>` (its output in `<method>-seed<N>.log`),
so every run folder has its own metrics, report and checkpoint. A finished run (its `metrics.json`) is
reused as it is, an interrupted one is resumed from its checkpoint, and a failing or diverging run is
counted without stopping the others.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np

from nesy_gedi.config import load_config
from nesy_gedi.rundir import CHECKPOINT, CONFIG, METRICS, RunDir

COLUMNS = ("task_accuracy", "concept_accuracy", "nmi")


@dataclass(frozen=True)
class Job:
    method: str
    seed: int
    folder: Path


def _run(job: Job, task: str, sets: list[str], threads: int) -> dict:
    """One run in its own process; its metrics, or why it has none."""
    if (job.folder / METRICS).is_file():
        return json.loads((job.folder / METRICS).read_text())
    command = [sys.executable, "-m", "nesy_gedi", "run"]
    if (job.folder / CHECKPOINT).is_file() and (job.folder / CONFIG).is_file():
        command += ["--resume", str(job.folder)]
    else:
        command += [task, "--seed", str(job.seed), "--set", f"method={job.method}", "--set", f"train.threads={threads}"]
        command += [x for item in sets for x in ("--set", item)] + ["--out", str(job.folder)]
    job.folder.parent.mkdir(parents=True, exist_ok=True)
    log = job.folder.parent / f"{job.folder.name}.log"
    with log.open("w") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    print(f"{job.method} seed {job.seed}: exit {done.returncode}", flush=True)
    if (job.folder / METRICS).is_file():
        return json.loads((job.folder / METRICS).read_text())
    lines = log.read_text().strip().splitlines()
    return {"status": "failed", "error": lines[-1] if lines else f"exit status {done.returncode}"}


def _stats(values: list[float]) -> str:
    """Median [first–third quartile], and the standard deviation."""
    if not values:
        return "–"
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return f"{median:.3f} [{q1:.3f}–{q3:.3f}] ± {np.std(values):.3f}"


def _table(jobs: list[Job], results: list[dict]) -> str:
    header = ["method", "finished", "diverged", "failed", *COLUMNS, "train + eval s per run"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method in dict.fromkeys(job.method for job in jobs):
        runs = [r for job, r in zip(jobs, results, strict=True) if job.method == method]
        done = [r for r in runs if r.get("status") == "finished"]
        seconds = [r["train_seconds"] + r.get("eval_seconds", 0.0) for r in done]
        cells = [
            method,
            f"{len(done)}/{len(runs)}",
            str(sum(r.get("status") == "diverged" for r in runs)),
            str(sum(r.get("status") == "failed" for r in runs)),
            *(_stats([r[c] for r in done if c in r]) for c in COLUMNS),
            f"{np.median(seconds):.0f}" if seconds else "–",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _csv(jobs: list[Job], results: list[dict]) -> str:
    fields = ["method", "seed", "status", *COLUMNS, "train_steps", "train_seconds", "eval_seconds", "folder"]
    text = io.StringIO()
    writer = csv.DictWriter(text, fields, extrasaction="ignore")
    writer.writeheader()
    for job, result in zip(jobs, results, strict=True):
        writer.writerow({**result, "method": job.method, "seed": job.seed, "folder": job.folder.name})
    return text.getvalue()


def compare(task: str, methods: list[str], seeds: int, workers: int, out: str, sets: list[str], command: str) -> str:
    """Run (or reuse) every method × seed and write `comparison.csv` and `comparison.md` into `out`."""
    overrides = dict(item.split("=", 1) for item in sets)  # the CLI has checked their form
    for method in methods:  # every method's settings are checked before anything runs
        load_config(task, {**overrides, "method": method})
    jobs = [Job(m, s, Path(out) / f"{m}-seed{s}") for m in methods for s in range(seeds)]
    threads = max(1, len(os.sched_getaffinity(0)) // workers)
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(lambda job: _run(job, task, sets, threads), jobs))
    elapsed = time.perf_counter() - started
    folder = RunDir(out)
    folder.write_text("comparison.csv", _csv(jobs, results))
    run_seconds = sum(r.get("train_seconds", 0.0) + r.get("eval_seconds", 0.0) for r in results)
    report = "\n".join(
        [
            f"# Comparison: {Path(task).name}",
            "",
            f"`{command}` on {date.today()}, {platform.machine()} ({platform.platform()}), {workers} runs in "
            f"parallel with {threads} torch thread(s) each. This call took {elapsed / 60:.1f} min; the runs' "
            f"training and evaluation add up to {run_seconds / 60:.1f} min (reused runs included).",
            "",
            "Per method over its seeds: median [interquartile range] ± standard deviation of the finished runs. "
            "`task_accuracy`: test queries whose most probable answer is the label; `concept_accuracy`: the "
            "network alone on the MNIST test images, no relabelling; `nmi`: of those predictions and the digits.",
            "",
            _table(jobs, results),
            "",
        ]
    )
    folder.write_text("comparison.md", report)
    return report
