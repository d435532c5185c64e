"""`nesy-gedi run`, top to bottom: task -> data -> program and queries -> networks -> training -> metrics -> report."""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from nesy_gedi.analysis.metrics import classify, split_metrics
from nesy_gedi.analysis.naming import Naming, describe
from nesy_gedi.analysis.naming_check import NamingCheck, check_naming, label_ceiling, unchecked_reason
from nesy_gedi.analysis.report import QUERY_REPORT, plot_confusion, plot_samples
from nesy_gedi.assembly.config import TaskConfig
from nesy_gedi.assembly.task import (
    Assembled,
    TaskData,
    domain_sizes,
    init_starts,
    load_data,
    named_networks,
    start_networks,
    with_engine,
)
from nesy_gedi.commands.runner import start_run, started_trainer, train_and_report
from nesy_gedi.training.checkpoint import export_network
from nesy_gedi.training.loop import Trainer
from nesy_gedi.training.rundir import QUERIES, RunDir

log = logging.getLogger(__name__)


def _save_indices(path: str, **arrays: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object, or numpy appends ".npz" to the temporary name
        np.savez(f, **arrays)


class PretrainingSource(Protocol):
    """Where a pipeline's pretraining runs come from, attempt by attempt (pipeline.Pretrainings)."""

    def attempt(self, i: int) -> tuple[dict[str, Path], dict] | None: ...


@dataclass(frozen=True)
class Starts:
    """The pretraining runs a task's networks start from, and how they were chosen."""

    folders: dict[str, Path]
    naming: Naming | None
    """the naming of the chosen attempt's clusters (None: not found yet, or no network is named)"""
    record: dict
    """what the metrics keep of the chosen attempt's pretrainings (empty: none)"""
    attempts: list[dict]
    """every attempt: its pretrainings and its naming check"""
    check: NamingCheck | None
    unchecked: str | None
    """why the naming was not checked (a network the query reads is not named)"""

    def metrics(self) -> dict:
        """What `metrics.json` records: the chosen pretrainings with the seconds of every attempt (all part
        of the method's cost), the attempts, and the naming check as one plain line."""
        found: dict = {}
        if self.record:
            spent = self.attempts or [{"pretraining": self.record}]
            seconds = sum(r["train_seconds"] for a in spent for r in a["pretraining"].values())
            found.update(pretraining=self.record, pretrain_seconds=seconds)
        if self.attempts and self.record:  # a pipeline's attempts (an `init:` run is one given start)
            found.update(pretraining_attempts=len(self.attempts), pretraining_attempt_details=self.attempts)
        if self.check is not None:
            found.update(naming_check=self.check.verdict(), naming_check_details=self.check.summary())
        elif self.unchecked is not None:
            found["naming_check"] = self.unchecked
        return found


def choose_starts(
    config: TaskConfig, data: TaskData, device: torch.device, pretrainings: PretrainingSource | None
) -> Starts:
    """The `init:` runs and the pipeline's pretrainings (`pretrain:`), attempt after attempt until the program
    names the clusters well enough to trust (naming_check.py) or the attempts run out; the attempt whose
    naming explains most is kept."""
    fixed, attempts, best = init_starts(config), [], None
    for i in itertools.count():
        found = pretrainings.attempt(i) if pretrainings is not None else ({}, {}) if i == 0 else None
        if found is None:
            break
        folders, record = found
        starts = fixed | folders
        named = named_networks(config, starts)
        if not named:
            return Starts(starts, None, record, [], None, None)
        naming = start_networks(config, data, device, starts, config.seed).naming
        reason = unchecked_reason(data.template, set(named))
        if reason is not None:
            return Starts(starts, naming, record, [], None, reason)
        thresholds = {name: config.networks[name].naming_threshold for name in named}
        check = check_naming(naming, data.template, data.train_set, config.data.labels, thresholds)
        attempts.append({"attempt": i + 1, "pretraining": record, **check.summary()})
        log.info("naming of attempt %d: %s", i + 1, check.verdict())
        if best is None or check.per_image > best[3].per_image:
            best = (starts, naming, record, check)
        if check.passed:
            break
    assert best is not None
    return Starts(*best[:3], attempts, best[3], None)


def evaluate(config: TaskConfig, task: Assembled, run: RunDir) -> tuple[dict, list[str]]:
    """Answer and concept metrics per split, the run's class, confusion matrices, samples, exported networks."""
    metrics: dict = {}
    if len(task.engine.program_parameters):  # the ceiling and the program's answers with what was learned
        task.program.use_values(task.engine.program_parameters().tolist())
    for name, queries in task.splits.items():  # "id" (the test queries) and, for a restricted task, "ood"
        metrics[name] = split_metrics(
            task.engine,
            task.template,
            queries,
            task.predicates,
            task.tensors,
            task.images.readers,
            config.eval.batch_size,
        )
        if config.data.labels != "program":  # labels may differ from the program's answer on the true concepts
            metrics[name]["acc_y_ceiling"] = label_ceiling(task.template, queries)
    domains = {p.network: [str(v) for v in p.domain] for p in task.program.neural_predicates}
    pictures = [
        plot_confusion(run, f"{net}{'' if split == 'id' else '_' + split}", found["confusion"], domains[net])
        for split in task.splits
        for net, found in metrics[split]["concepts"].items()
    ]
    for name, samples in task.method.samples().items():
        pictures.append(plot_samples(run, samples, config.seed, f"samples_{name}.png"))
    sizes = domain_sizes(task.program, config)
    for name, spec in config.networks.items():
        export_network(run, f"network_{name}.pt", task.method.networks[name], spec.arch, sizes[name])
    ident = metrics["id"]
    metrics.update(
        task_accuracy=ident["acc_y"],
        **({"task_accuracy_ceiling": ident["acc_y_ceiling"]} if "acc_y_ceiling" in ident else {}),
        concept_accuracy=ident["concept_accuracy"],
        nmi=ident["nmi"],
        grounding=classify(
            ident["acc_y"],
            {net: m["concept_accuracy"] for net, m in ident["concepts"].items()},
            config.eval.grounded_at,
            config.eval.task_at,
            labelled=bool(task.naming and task.naming.labels) or bool(task.learner.concept_labels),
        ),
    )
    if len(ident["concepts"]) > 1:
        metrics["concept_accuracy_per_network"] = {n: m["concept_accuracy"] for n, m in ident["concepts"].items()}
    if config.data.labels != "program":  # the labels' noise against the program's answer on the true concepts
        agreeing = label_ceiling(task.template, task.train_set)
        metrics["train_labels_disagreeing"] = round((1.0 - agreeing) * len(task.train_set))
        metrics["train_label_noise"] = 1.0 - agreeing
    if len(task.engine.program_parameters):
        metrics["learned_probabilities"] = task.engine.program_parameters.values()
    if hasattr(task.engine, "compile_seconds"):
        metrics["compile_seconds"] = task.engine.compile_seconds
    if "ood" in metrics:
        metrics.update(
            ood_task_accuracy=metrics["ood"]["acc_y"], ood_concept_accuracy=metrics["ood"]["concept_accuracy"]
        )
    return metrics, pictures


def run_task(
    config: TaskConfig,
    run: RunDir,
    command: str,
    resume: bool = False,
    pretrainings: PretrainingSource | None = None,
) -> dict:
    """Train and evaluate a program task in `run`; its metrics (`"status": "diverged"` if it was stopped).
    `pretrainings`: the pipeline's pretraining runs for networks with `pretrain:`."""
    device, cache, governor = start_run(config, run)
    data = load_data(config, device, cache)
    run.write_atomic(
        QUERIES,
        lambda tmp: _save_indices(
            tmp,
            train=data.train_set.indices,
            **{k: v.indices for k, v in data.splits.items()},
            **{f"concept_labels_{net}": labelled.indices for net, labelled in data.concept_labels.items()},
        ),
    )
    starts = choose_starts(config, data, device, pretrainings)
    made: dict[str, Assembled] = {}

    def make_trainer(seed: int, folder: RunDir) -> Trainer:
        started = start_networks(config, data, device, starts.folders, seed, starts.naming)
        made["task"] = with_engine(config, data, started, cache)
        return Trainer(made["task"].learner, len(data.train_set), config.train, seed, folder, governor)

    trainer, restarts, discarded = started_trainer(config.train, config.seed, make_trainer, run, resume)
    task = made["task"]  # the run's own: made last
    if task.naming:
        log.info(describe(task.naming))
    header = {
        "task": config.name,
        "method": config.method,
        "seed": config.seed,
        "command": command,
        "data_source": task.images.description,
        "train_queries": len(task.train_set),
        **{f"{name}_queries": len(queries) for name, queries in task.splits.items()},
        **({"naming": task.naming.summary(), "naming_explained": task.naming.explained} if task.naming else {}),
        **(
            {
                "concept_labels": {net: labelled.summary() for net, labelled in data.concept_labels.items()},
                "concept_labels_used": sum(len(labelled.concepts) for labelled in data.concept_labels.values()),
            }
            if data.concept_labels
            else {}
        ),
        **starts.metrics(),
        **({"restarts": restarts} if restarts else {}),
    }
    evaluation = partial(evaluate, config, task, run)
    return train_and_report(config, run, trainer, header, evaluation, QUERY_REPORT, discarded)
