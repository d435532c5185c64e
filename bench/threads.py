"""The main job's training speed with torch's old thread choice (every core) and the run's own choice
(threads.py), alone and beside one busy process, in one call.

Run: .venv/bin/python bench/threads.py [--steps 3000] [--out docs/benchmarks.md]  (on an idle machine)
The job is `tasks/mnist_add.yaml` (single-digit addition, batch 2) for `--steps` steps, as a separate process
(`nesy-gedi run`); the busy process is another torch job on every core (a 512×512 matrix product in a loop,
torch's default threads), started before the job and stopped after it. Steps per second come from the run's
`train_seconds`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

from sections import table_section, write_section

ROOT = Path(__file__).resolve().parents[1]
BUSY = "import torch\na = torch.randn(512, 512)\nwhile True:\n    a @ a\n"


def steps_per_second(threads: str, steps: int, busy: bool) -> tuple[float, str]:
    """The job's training steps per second, and its threads (as set, or the governor's changes)."""
    neighbour = subprocess.Popen([sys.executable, "-c", BUSY]) if busy else None
    try:
        with tempfile.TemporaryDirectory() as out:
            command = [sys.executable, "-m", "nesy_gedi", "run", str(ROOT / "tasks" / "mnist_add.yaml"), "--out", out]
            sets = [f"train.iterations={steps}", "data.test_size=200", "train.checkpoint_every=100000"]
            if threads != "auto":
                sets.append(f"train.threads={threads}")
            for item in sets:
                command += ["--set", item]
            subprocess.run(command, check=True, capture_output=True)
            metrics = json.loads((Path(out) / "metrics.json").read_text())
    finally:
        if neighbour is not None:
            neighbour.kill()
            neighbour.wait()
    changes = metrics.get("torch_threads")
    chosen = threads if changes is None else " → ".join(f"{n} (step {s})" for s, n in changes)
    return steps / metrics["train_seconds"], chosen


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--out", default="docs/benchmarks.md")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    rows = []
    for label, threads in ((f"old: torch's default ({cores})", str(cores)), ("new: chosen by the run", "auto")):
        alone, chosen_alone = steps_per_second(threads, args.steps, busy=False)
        beside, chosen_beside = steps_per_second(threads, args.steps, busy=True)
        rows.append(
            f"| {label} | {alone:.0f} | {chosen_alone} | {beside:.0f} | {chosen_beside} | {alone / beside:.1f}× |"
        )
        print(rows[-1], flush=True)
    write_section(
        args.out,
        "threads",
        table_section(
            "Torch threads: the main job alone and beside a busy process",
            f"`.venv/bin/python bench/threads.py --steps {args.steps}` on {date.today()}, {platform.machine()} CPU, "
            f"{cores} cores, no GPU: `tasks/mnist_add.yaml` trained for {args.steps} steps as its own process, "
            "alone and beside one busy process (a torch matrix product in a loop with torch's default threads), "
            "with the old choice (torch's default: every core) and the new one (`train.threads` unset: the run "
            "chooses, nesy_gedi/training/threads.py). Steps per second from the run's `train_seconds`. Target: beside "
            "the busy process no more than 2× slower than alone.",
            ["threads", "alone steps/s", "threads alone", "beside a busy one steps/s", "threads beside", "slowdown"],
            rows,
        ),
    )


if __name__ == "__main__":
    main()
