"""`nesy-gedi run`, top to bottom: task -> data -> program and queries -> networks -> training -> metrics -> report."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from nesy_gedi.checkpoint import export_network
from nesy_gedi.config import TaskConfig
from nesy_gedi.data.queries import QuerySet
from nesy_gedi.logic.query import QueryTemplate
from nesy_gedi.metrics import classify, split_metrics
from nesy_gedi.naming import describe
from nesy_gedi.report import QUERY_REPORT, plot_confusion, plot_samples
from nesy_gedi.rundir import RunDir
from nesy_gedi.runner import resume_or_start, start_run, train_and_report
from nesy_gedi.task import Assembled, assemble, domain_sizes
from nesy_gedi.train import Trainer

log = logging.getLogger(__name__)


def _save_indices(path: str, **arrays: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object, or numpy appends ".npz" to the temporary name
        np.savez(f, **arrays)


def record_of_pretraining(record: dict | None) -> dict:
    """The networks' pretraining runs and their training seconds: part of the method's cost."""
    if not record:
        return {}
    return {"pretraining": record, "pretrain_seconds": sum(r["train_seconds"] for r in record.values())}


def label_ceiling(template: QueryTemplate, queries: QuerySet) -> float:
    """Share of the queries whose label is the program's most probable answer on the images' true concepts:
    the Acc(Y) a model with perfect concepts would reach on labels sampled from the program or read from
    files."""
    right = [
        str(template.prediction(row.tolist())) == str(label)
        for row, label in zip(queries.concepts, queries.labels, strict=True)
    ]
    return float(np.mean(right))


def evaluate(config: TaskConfig, task: Assembled, run: RunDir) -> tuple[dict, list[str]]:
    """Answer and concept metrics per split, the run's class, confusion matrices, samples, exported networks."""
    metrics: dict = {}
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
            ident["concept_accuracy"],
            config.eval.grounded_at,
            config.eval.task_at,
            labelled=bool(task.naming and task.naming.labels),
        ),
    )
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
    starts: dict[str, Path] | None = None,
    record: dict | None = None,
) -> dict:
    """Train and evaluate a program task in `run`; its metrics (`"status": "diverged"` if it was stopped).
    `starts`: networks to start from these pretraining runs; `record`: what the metrics keep of them."""
    device, cache, governor = start_run(config, run)
    task = assemble(config, device, cache, starts)
    run.write_atomic(
        "queries.npz",
        lambda tmp: _save_indices(tmp, train=task.train_set.indices, **{k: v.indices for k, v in task.splits.items()}),
    )
    if task.naming:
        log.info(describe(task.naming))
    trainer = Trainer(task.learner, len(task.train_set), config.train, config.seed, run, governor)
    resume_or_start(trainer, resume)
    header = {
        "task": config.name,
        "method": config.method,
        "seed": config.seed,
        "command": command,
        "data_source": task.images.description,
        "train_queries": len(task.train_set),
        **{f"{name}_queries": len(queries) for name, queries in task.splits.items()},
        **({"naming": task.naming.summary()} if task.naming else {}),
        **record_of_pretraining(record),
    }
    return train_and_report(config, run, trainer, header, lambda: evaluate(config, task, run), QUERY_REPORT)
