"""`nesy-gedi compare`: every method × seed of one task, in parallel processes, then one table.

Each run is an ordinary `nesy-gedi run` (a program task) or `nesy-gedi pretrain` (a pretraining task) in
`<out>/<method>-seed<N>` (its output in `<method>-seed<N>.log`), so every run folder has its own metrics,
report and checkpoint. A finished run (its `metrics.json`) is reused as it is, an interrupted one is
resumed from its checkpoint, and a failing or diverging run is counted without stopping the others. The
runs execute on a backend (backends.py: local processes, or Ray tasks on a cluster); one progress bar
follows the grid.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from nesy_gedi.analysis.budget import Point, budget_csv, budget_rows, fewest, plot_budget
from nesy_gedi.analysis.report import plot_comparison
from nesy_gedi.assembly.config import PretrainConfig, TaskConfig, dump_config, load_config
from nesy_gedi.assembly.task import load_task
from nesy_gedi.commands.backends import PARENT, Backend, make_backend
from nesy_gedi.errors import UserError
from nesy_gedi.files import check_can_create
from nesy_gedi.methods import METHODS
from nesy_gedi.progress import bar as progress_bar
from nesy_gedi.ssl.objectives import OBJECTIVES
from nesy_gedi.training.rundir import CHECKPOINT, CONFIG, METRICS, RunDir

logger = logging.getLogger(__name__)

ANSWERS = ("acc_y", "f1_y")
CONCEPTS = (
    "concept_accuracy",
    "f1_c",
    "matched_concept_accuracy",
    "cls_hard",
    "cls_soft",
    "ece_c",
    "entropy_c",
    "nmi",
)
CLASSES = ("grounded", "grounded with labels", "shortcut", "failed")
CLUSTERS = ("nmi", "cluster_accuracy")
"""a pretraining run's cluster scores, tabulated per method beside its `ood_auroc_*` scores"""


@dataclass(frozen=True)
class Job:
    method: str
    seed: int
    folder: Path
    labels: tuple[str, int] = ("concept", 0)
    """the label budget of a `--labels` grid: (use, k per concept); k = 0: no labels"""
    sets: tuple[str, ...] = ()
    """the `--set` items the budget adds"""


def sets_for(method: str, sets: list[str]) -> list[str]:
    """The `--set` items of one method's runs: plain `KEY=VALUE` items, and `METHOD:KEY=VALUE` items of this
    method with the prefix removed (e.g. `gedi-pretrained:networks.mnist_net.init=DIR`)."""
    own = []
    for item in sets:
        prefix, sep, rest = item.partition(":")
        if not sep or "=" in prefix:
            own.append(item)
        elif prefix == method:
            own.append(rest)
    return own


def _run(job: Job, task: str, sets: list[str], threads: int, kind: str, cwd: str) -> dict:
    """One run (`kind`: `run` or `pretrain`) in its own process, started in `cwd` (relative paths of the
    command line mean there, on whichever machine runs it); its metrics, or why it has none."""
    if (job.folder / METRICS).is_file():
        return json.loads((job.folder / METRICS).read_text())
    command = [sys.executable, "-m", "nesy_gedi", kind]
    if (job.folder / CHECKPOINT).is_file() and (job.folder / CONFIG).is_file():
        command += ["--resume", str(job.folder)]
    else:
        command += [task, "--seed", str(job.seed), "--set", f"method={job.method}", "--set", f"train.threads={threads}"]
        command += [x for item in [*sets_for(job.method, sets), *job.sets] for x in ("--set", item)]
        command += ["--out", str(job.folder)]
    job.folder.parent.mkdir(parents=True, exist_ok=True)
    log = job.folder.parent / f"{job.folder.name}.log"
    with log.open("w") as out:
        env = {**os.environ, PARENT: str(os.getpid())}
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd, env=env)
    logger.info("%s seed %d: exit %d", job.method, job.seed, done.returncode)
    if (job.folder / METRICS).is_file():
        return json.loads((job.folder / METRICS).read_text())
    lines = log.read_text().strip().splitlines()
    return {"status": "failed", "error": lines[-1] if lines else f"exit status {done.returncode}"}


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _flat(item, f"{prefix}{key}.").items()}
    return {prefix.removesuffix("."): value}


def _refuse_stale(job: Job, requested: TaskConfig | PretrainConfig) -> None:
    """A folder of this grid that holds a run made with other settings (but its torch threads) is refused,
    naming the first difference: reusing it would put an old result under the new command."""
    if not (job.folder / CONFIG).is_file():
        return
    try:  # read as the current version reads it: a key added since then has its default, as in `requested`
        old = _flat(yaml.safe_load(dump_config(load_config(job.folder / CONFIG))))
    except UserError:  # a key this version no longer knows: the difference is shown below
        old = _flat(yaml.safe_load((job.folder / CONFIG).read_text()))
    new = _flat(yaml.safe_load(dump_config(requested)))
    differ = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k) and k != "train.threads")
    if differ:
        key = differ[0]
        raise UserError(
            f"{job.folder} holds a run made with {key}={old.get(key)!r}, and this comparison asks for "
            f"{key}={new.get(key)!r}{f' (and {len(differ) - 1} more keys)' if len(differ) > 1 else ''}: give "
            "another --out, or remove the folder to run it again"
        )


def flat_metrics(result: dict) -> dict[str, float]:
    """One run's numbers: a program run's as `<split>.<metric>` (the answers, and the concepts of its first
    network), a pretraining run's cluster scores as they are."""
    pretraining = "cluster_accuracy" in result
    flat: dict[str, float] = {k: result[k] for k in _scores([result]) if k in result} if pretraining else {}
    for split in ("id", "ood"):
        if split in result:
            block = result[split]
            concepts = next(iter(block["concepts"].values()))
            flat.update({f"{split}.{k}": block[k] for k in ANSWERS})
            flat.update({f"{split}.{k}": concepts[k] for k in CONCEPTS})
    return flat


def _stats(values: list[float]) -> str:
    """Median [first–third quartile] ± standard deviation."""
    if not values:
        return "–"
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return f"{median:.3f} [{q1:.3f}–{q3:.3f}] ± {np.std(values):.3f}"


def label(method: str, results: list[dict]) -> str:
    """A method's name in tables, with the objectives its pipeline pretrained with and the labelled images
    its naming used: `gedi-pretrained[gedi-nogen]`, `gedi-pretrained[gedi] + 10 labels`."""
    objectives = sorted({p["method"] for r in results for p in r.get("pretraining", {}).values()})
    name = f"{method}[{'+'.join(objectives)}]" if objectives else method
    used = {sum(r["naming"]["labelled_images"].values()) for r in results if r.get("naming", {}).get("labelled_images")}
    trained = {r["concept_labels_used"] for r in results if r.get("concept_labels_used")}
    name += f" + {'/'.join(map(str, sorted(used)))} labels" if used else ""
    return name + (f" + {'/'.join(map(str, sorted(trained)))} concept labels" if trained else "")


def run_seconds(result: dict) -> float:
    """A finished run's whole cost: training, evaluation and its own pretraining (counted in every run that
    uses it, however many share it)."""
    return result["train_seconds"] + result.get("eval_seconds", 0.0) + result.get("pretrain_seconds", 0.0)


def _by_method(jobs: list[Job], results: list[dict]) -> dict[str, list[dict]]:
    """Results per method (and label budget), named by `label`."""
    grouped: dict[tuple[str, tuple[str, int]], list[dict]] = {}
    for job, result in zip(jobs, results, strict=True):
        grouped.setdefault((job.method, job.labels), []).append(result)
    return {label(method, runs): runs for (method, _), runs in grouped.items()}


def _budget_jobs(
    task: str, methods: list[str], seeds: int, out: Path, sets: list[str], budgets: list[int], uses: list[str]
) -> tuple[list[Job], list[str]]:
    """Every method × label budget × seed (k = 0 once per method), and a note per (method, use) the task's
    settings refuse (naming labels need a pretrained network)."""
    jobs, skipped = [], []
    for method in methods:
        overrides = dict(item.split("=", 1) for item in sets_for(method, sets))
        networks = list(load_task(task, {**overrides, "method": method}).networks)
        for use in uses:
            for k in budgets:
                if k == 0 and use != uses[0]:
                    continue  # the unlabelled point is one, whatever the use
                extra = tuple(f"networks.{net}.{use}_labels={k}" for net in networks) if k else ()
                try:
                    load_task(task, {**overrides, "method": method, **dict(x.split("=", 1) for x in extra)})
                except UserError as exc:
                    skipped.append(f"{method} with {use} labels: {exc}")
                    break
                name = f"{method}-{use}{k}" if k else method
                labels = (use, k)
                jobs += [Job(method, s, out / f"{name}-seed{s}", labels, extra) for s in range(seeds)]
    return jobs, skipped


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    return "\n".join("| " + " | ".join(cells) + " |" for cells in [header, ["---"] * len(header), *rows])


def _naming_cells(runs: list[dict]) -> list[str]:
    """A method's named runs: the share of training queries their namings explain (median and lowest), the
    namings too impure to trust, and the pretrainings tried per run."""
    named = [r for r in runs if "naming_explained" in r]
    if not named:
        return ["–", "–", "–"]
    explained = [r["naming_explained"] for r in named]
    impure = sum(not r.get("naming_check_details", {}).get("passed", True) for r in named)
    attempts = [r.get("pretraining_attempts", 1) for r in named]
    return [
        f"{np.median(explained):.1%} (min {min(explained):.1%})",
        f"{impure}/{len(named)}",
        f"{min(attempts)}–{max(attempts)}" if min(attempts) != max(attempts) else str(attempts[0]),
    ]


def _runs_table(grouped: dict[str, list[dict]]) -> str:
    header = ["method", "finished", "diverged", "failed to run", *CLASSES, "shortcut rate", "s per run"]
    naming = any("naming_explained" in r for runs in grouped.values() for r in runs)
    if naming:
        header += ["naming explains", "too impure to trust", "pretrainings per run"]
    rows = []
    for method, runs in grouped.items():
        done = [r for r in runs if r.get("status") == "finished"]
        classes = [r.get("grounding") for r in done]
        seconds = [run_seconds(r) for r in done]
        cells = [
            method,
            f"{len(done)}/{len(runs)}",
            str(_count(runs, "diverged")),
            str(_count(runs, "failed")),
            *(str(classes.count(c)) for c in CLASSES),
            f"{classes.count('shortcut') / len(done):.2f}" if done else "–",
            f"{np.median(seconds):.0f}" if seconds else "–",
            *(_naming_cells(done) if naming else []),
        ]
        rows.append(cells)
    return _markdown(header, rows)


def _mean_cell(values: list[float], digits: int = 3) -> str:
    """Mean ± standard deviation (and the worst run) over the finished runs."""
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values):.{digits}f} (min {min(values):.{digits}f})"


def _scores(runs: list[dict]) -> list[str]:
    """A pretraining run's scores: its cluster scores, then every OOD AUROC any run has (e.g. against
    Fashion-MNIST, MNIST, noise)."""
    return [*CLUSTERS, *sorted({k for r in runs for k in r if k.startswith("ood_auroc_")})]


def _clusters_table(grouped: dict[str, list[dict]]) -> str:
    columns = _scores([r for runs in grouped.values() for r in runs])
    rows = []
    for method, runs in grouped.items():
        done = [r for r in runs if r.get("status") == "finished"]
        cells = [_mean_cell([r[c] for r in done if c in r]) for c in columns]
        seconds = _mean_cell([r["train_seconds"] for r in done], digits=0)
        rows.append([method, f"{len(done)}/{len(runs)}", *cells, str(_count(runs, "diverged")), seconds])
    return _markdown(["method", "finished", *columns, "diverged", "train s"], rows)


def _count(runs: list[dict], status: str) -> int:
    return sum(r.get("status") == status for r in runs)


def _metrics_table(grouped: dict[str, list[dict]], split: str) -> str:
    columns = [f"{split}.{k}" for k in (*ANSWERS, *CONCEPTS)]
    header = ["method", *(c.split(".", 1)[1] for c in columns)]
    rows = []
    for method, runs in grouped.items():
        flat = [flat_metrics(r) for r in runs if r.get("status") == "finished"]
        rows.append([method, *(_stats([f[c] for f in flat if c in f]) for c in columns)])
    return _markdown(header, rows)


def _csv(jobs: list[Job], results: list[dict]) -> str:
    flats = [flat_metrics(r) for r in results]
    columns = sorted({k for f in flats for k in f}, key=lambda k: (k.split(".")[0] != "id", k))
    fields = [
        "method",
        "seed",
        "status",
        "grounding",
        *columns,
        "naming_explained",
        "naming_check",
        "pretraining_attempts",
        "train_steps",
        "train_seconds",
        "compile_seconds",
        "eval_seconds",
        "peak_memory_mb",
        "folder",
    ]
    text = io.StringIO()
    writer = csv.DictWriter(text, fields, extrasaction="ignore")
    writer.writeheader()
    for job, result, flat in zip(jobs, results, flats, strict=True):
        writer.writerow({**result, **flat, "method": job.method, "seed": job.seed, "folder": job.folder.name})
    return text.getvalue()


def _program_report(grouped: dict[str, list[dict]], results: list[dict]) -> list[str]:
    return [
        "Runs: a finished run is *grounded* when the Acc(C) of every network reaches the task's `eval.grounded_at` "
        "(*grounded with labels* when labelled images chose its naming or trained its networks, `naming_labels` or "
        "`concept_labels`: never counted as unsupervised), "
        "else a *shortcut* when its Acc(Y) reaches `eval.task_at`, else *failed*; the shortcut rate is shortcuts / "
        "finished runs. *s per run*: median training + evaluation seconds, with the seconds of the run's "
        "own pretraining (`networks.<name>.pretrain`; `method[objective]` names it) included. Runs whose "
        "pretrained clusters were named: *naming explains*, the share of training queries the program answers "
        "under the naming (median, lowest); *too impure to trust*, runs whose naming stayed below "
        "`naming_threshold` after every pretraining attempt (their class may be a shortcut the clusters made: "
        "each run's `naming_check` says); *pretrainings per run*, attempts tried (`pretrain.attempts`).",
        "",
        _runs_table(grouped),
        "",
        "Metrics per method over its finished runs: median [interquartile range] ± standard deviation. "
        "`acc_y`: test queries whose most probable answer is the label (no masking); `f1_y`: macro-F1 of "
        "the answers; concept metrics of the (first) network on every image of the split's queries, no "
        "relabelling except `matched_concept_accuracy` (best one-to-one matching); `cls_hard` / `cls_soft`: "
        "rsbench's collapse on counts / on the row-normalised confusion matrix; `ece_c`: 10-bin calibration "
        "error; `entropy_c`: mean normalised entropy of p(C).",
        "",
        *(
            block
            for split in ("id", "ood")
            if any(split in r for r in results)
            for block in (f"**{split.upper()}**", "", _metrics_table(grouped, split), "")
        ),
        "![confusion matrices](confusions.png) ![Acc(C) against Acc(Y)](accuracies.png)",
    ]


def _pretrain_report(grouped: dict[str, list[dict]]) -> list[str]:
    return [
        "Mean ± standard deviation over the finished seeds, and the worst seed. NMI and cluster accuracy "
        "(Hungarian matching) on the held-out data; OOD: AUROC of -E(x) with the task's own test inputs as "
        "in-distribution; train s: training seconds per run, discarded restarts included.",
        "",
        _clusters_table(grouped),
    ]


def _grid(jobs: list[Job], work: Callable[[Job], dict], backend: Backend) -> list[dict]:
    """Every job's result, run on the backend, with one progress bar: runs done, running (their log written
    since the grid started), failed, elapsed and estimated time left."""
    started = time.time()
    for job in jobs:
        backend.submit(job, partial(work, job))
    results: dict[Job, dict] = {}
    bar = progress_bar(total=len(jobs), desc="compare", unit="run", dynamic_ncols=True, mininterval=5.0)
    shown = None
    try:
        while len(results) < len(jobs):
            for job, result in backend.finished(timeout=2.0):
                results[job] = result
                bar.update(1)
            logs = [j.folder.parent / f"{j.folder.name}.log" for j in jobs if j not in results]
            running = sum(log.is_file() and log.stat().st_mtime >= started for log in logs)
            failed = sum(r.get("status") != "finished" for r in results.values())
            counts = {"done": len(results) - failed, "running": running, "failed": failed}
            if counts != shown:
                bar.set_postfix(counts)
                shown = counts
    finally:
        bar.close()
        backend.close()
    return [results[job] for job in jobs]


def compare(
    task: str,
    methods: list[str],
    seeds: int,
    workers: int,
    out: str,
    sets: list[str],
    command: str,
    backend: str = "local",
    address: str | None = None,
    gpus: float = 0.0,
    labels: list[int] | None = None,
    label_uses: list[str] | None = None,
    label_target: float = 0.85,
) -> str:
    """Run (or reuse) every method × seed of a program or pretraining task and write `comparison.csv` and
    `comparison.md` into `out`; the report's text. `backend`: `local` (`workers` runs at a time) or `ray`
    (Ray tasks on the cluster at `address`, each asking for its torch threads as CPUs and `gpus` GPUs).
    `labels`: the label-budget grid, every method at k labelled training images per concept for each k, the
    labels used as `label_uses` (`concept`: trained on, `naming`: choosing the naming), written as
    `label_budget.csv` and `label_budget.png` with the fewest k whose Acc(C) reaches `label_target`."""
    for item in sets:
        prefix, sep, _ = item.partition(":")
        if sep and "=" not in prefix and prefix not in methods:
            raise UserError(f"--set {item}: '{prefix}' is not one of the compared methods ({', '.join(methods)})")
    if not methods:
        raise UserError("--methods: give at least one method, e.g. --methods dpl,gedi")
    check_can_create(Path(out))
    plain = dict(item.split("=", 1) for item in sets_for("", sets))  # the CLI has checked their form
    known = METHODS if isinstance(load_task(task, plain), TaskConfig) else OBJECTIVES
    unknown = [m for m in methods if m not in known]
    if unknown:
        raise UserError(f"--methods: unknown method '{unknown[0]}'; known: {', '.join(sorted(known))}")
    configs = {}
    for method in methods:  # every method's settings are checked before anything runs
        overrides = dict(item.split("=", 1) for item in sets_for(method, sets))  # the CLI has checked their form
        configs[method] = load_task(task, {**overrides, "method": method})
    kind = "run" if isinstance(configs[methods[0]], TaskConfig) else "pretrain"
    skipped: list[str] = []
    if labels is not None:
        if kind != "run":
            raise UserError("--labels: a label budget needs a program task (a pretraining task has no concepts)")
        jobs, skipped = _budget_jobs(task, methods, seeds, Path(out), sets, labels, label_uses or ["concept"])
        if not jobs:
            raise UserError(f"--labels {','.join(map(str, labels))}: nothing to run; {'; '.join(skipped)}")
    else:
        jobs = [Job(m, s, Path(out) / f"{m}-seed{s}") for m in methods for s in range(seeds)]
    for job in jobs:  # a run folder already there is reused (or resumed) only for the settings asked now
        config = configs[job.method] if not job.sets else _with_sets(task, job, sets)
        _refuse_stale(job, config.model_copy(update={"seed": job.seed}))
    if backend == "local":  # the cores shared out, unless --set says otherwise
        threads = max(1, len(os.sched_getaffinity(0)) // workers)
    else:  # a Ray task asks for as many CPUs as its run has threads
        threads = 1
    threads_run = plain.get("train.threads", str(threads))
    runner = make_backend(backend, workers, address, int(threads_run), gpus)
    started = time.perf_counter()
    task = str(Path(task).resolve())
    results = _grid(jobs, partial(_run, task=task, sets=sets, threads=threads, kind=kind, cwd=os.getcwd()), runner)
    elapsed = time.perf_counter() - started
    where = f"{workers} runs in parallel" if backend == "local" else f"Ray tasks ({address or 'a local cluster'})"
    folder = RunDir(out)
    grouped = _by_method(jobs, results)
    folder.write_text("comparison.csv", _csv(jobs, results))
    if kind == "run":
        plot_comparison(folder, grouped)
    run_seconds = sum(r.get("train_seconds", 0.0) + r.get("eval_seconds", 0.0) for r in results)
    report = "\n".join(
        [
            f"# Comparison: {Path(task).name}",
            "",
            f"`{command}` on {date.today()}, {platform.machine()} ({platform.platform()}), {where} "
            f"with {threads_run} torch thread(s) each. This call took {elapsed / 60:.1f} min; the runs' "
            f"training and evaluation add up to {run_seconds / 60:.1f} min (reused runs included).",
            "",
            *(_program_report(grouped, results) if kind == "run" else _pretrain_report(grouped)),
            "",
        ]
    )
    if labels is not None:
        report += _budget_report(folder, jobs, results, skipped, label_target)
    folder.write_text("comparison.md", report)
    return report


def _with_sets(task: str, job: Job, sets: list[str]) -> TaskConfig | PretrainConfig:
    items = [*sets_for(job.method, sets), *job.sets]
    return load_task(task, {**dict(item.split("=", 1) for item in items), "method": job.method})


def _budget_report(folder: RunDir, jobs: list[Job], results: list[dict], skipped: list[str], target: float) -> str:
    """`label_budget.csv`, `label_budget.png` and the report's section on them."""
    grouped: dict[tuple[str, tuple[str, int]], list[dict]] = {}
    for job, result in zip(jobs, results, strict=True):
        grouped.setdefault((job.method, job.labels), []).append(result)
    points = [Point(method, use, k, runs) for (method, (use, k)), runs in grouped.items()]
    folder.write_text("label_budget.csv", budget_csv(points))
    plot_budget(folder, points)
    header, rows = budget_rows(points)
    best = fewest(points, target)
    return "\n".join(
        [
            "",
            "## Label budget",
            "",
            "Per method and use of the labels (*concept*: k labelled training images per concept train the "
            "networks, `concept_labels`; *naming*: they choose the pretrained clusters' naming, `naming_labels`), "
            "at k per concept: the labelled images each run used, finished runs, the grounding rate (grounded, "
            "with labels or without, over finished runs), Acc(Y) and each network's Acc(C) on the ID test "
            "images, mean ± standard deviation over the finished runs.",
            "",
            _markdown(header, rows),
            "",
            f"Fewest labels per concept whose mean Acc(C) reaches {target} for every network:",
            "",
            *(
                f"- {method} + {use} labels: {'none of the budgets tried' if k is None else k}"
                for (method, use), k in sorted(best.items())
            ),
            *(["", "Not run:", "", *(f"- {note}" for note in skipped)] if skipped else []),
            "",
            "![label budget](label_budget.png)",
            "",
        ]
    )
