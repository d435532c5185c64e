"""`nesy-gedi run`, top to bottom: task -> data -> program and queries -> networks -> training -> metrics -> report."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nesy_gedi.config import TaskConfig
from nesy_gedi.data.mnist import Mnist, load_mnist, to_tensor
from nesy_gedi.data.queries import QuerySet, build_query_set, ood_combinations
from nesy_gedi.errors import UserError
from nesy_gedi.logic import make_engine
from nesy_gedi.logic.deepproblog_engine import DeepProbLogEngine
from nesy_gedi.logic.program import Program
from nesy_gedi.logic.query import QueryTemplate
from nesy_gedi.methods import Method, MethodContext, make_method
from nesy_gedi.metrics import classify, split_metrics
from nesy_gedi.naming import Naming, describe, name_clusters
from nesy_gedi.networks import build_network
from nesy_gedi.pretrain import load_pretrained
from nesy_gedi.report import plot_confusion, plot_samples, summary_table, write_report
from nesy_gedi.rundir import CHECKPOINT, METRICS, RunDir
from nesy_gedi.ssl.sgld import Domain
from nesy_gedi.train import Diverged, QueryLearner, Trainer, seed_everything, start_run


def domain_sizes(program: Program, config: TaskConfig) -> dict[str, int]:
    """Each network's output size is the domain of the neural predicates that use it."""
    sizes: dict[str, int] = {}
    for pred in program.neural_predicates:
        if sizes.setdefault(pred.network, len(pred.domain)) != len(pred.domain):
            raise UserError(f"{program.path}:{pred.line}: network '{pred.network}' is used with two domain sizes")
    for name in config.networks:
        if name not in sizes:
            raise UserError(f"networks.{name}: no nn/4 in {program.path} uses this network; remove it or use it")
    return sizes


def query_sets(config: TaskConfig, template: QueryTemplate, mnist: Mnist) -> dict[str, QuerySet]:
    """Training queries, test queries ("id") and, for a task with `data.combinations`, the OOD queries
    (the other tuples over the same concepts, from the test images)."""
    data, per_query = config.data, template.images_per_query
    for combination in data.combinations or []:
        if len(combination) != per_query:
            raise UserError(
                f"data.combinations: {combination} has {len(combination)} concepts, but a query has {per_query} "
                "images; give one concept index per image"
            )
    if data.ood_size and not data.combinations:
        raise UserError("data.ood_size: an OOD split needs data.combinations (the in-distribution tuples)")
    label, seed = template.label, config.seed
    sets = {
        "train": build_query_set(
            mnist.train, "train", per_query, data.train_size, seed, label, "data.train_size", data.combinations
        ),
        "id": build_query_set(
            mnist.test, "test", per_query, data.test_size, seed, label, "data.test_size", data.combinations
        ),
    }
    if data.ood_size:
        outside = ood_combinations(data.combinations)
        sets["ood"] = build_query_set(
            mnist.test, "test", per_query, data.ood_size, seed + 1, label, "data.ood_size", outside
        )
    return sets


def method_context(config: TaskConfig, train_set: QuerySet, images: dict[str, torch.Tensor]) -> MethodContext:
    """The unlabelled pool (every training image of the task's queries), the domain [-1, 1] of MNIST
    images, the task's view and sampler settings, and one RNG seeded by the task."""
    pool = images["train"][torch.as_tensor(np.unique(train_set.indices), device=images["train"].device)]
    low = torch.full(pool.shape[1:], -1.0, device=pool.device)
    generator = torch.Generator(pool.device).manual_seed(config.seed)
    return MethodContext(pool, Domain(low, -low), config.augment, config.sgld, generator)


def _save_indices(path: str, **arrays: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object, or numpy appends ".npz" to the temporary name
        np.savez(f, **arrays)


@dataclass(frozen=True)
class Assembled:
    """A program task ready to train: its queries, images, networks, method, engine and learner."""

    program: Program
    template: QueryTemplate
    train_set: QuerySet
    splits: dict[str, QuerySet]
    """the evaluation query sets: `id` (test queries) and, for a restricted task, `ood`"""
    images: dict[str, torch.Tensor]
    method: Method
    predicates: dict[str, torch.nn.Module]
    """what each neural predicate reads (the method's view of the networks)"""
    engine: DeepProbLogEngine
    learner: QueryLearner
    naming: Naming | None
    """how the pretrained clusters were named (`networks.<name>.naming`), if any network was"""


def assemble(config: TaskConfig, mnist: Mnist, device: torch.device, cache: Path) -> Assembled:
    """Program, queries, networks (seeded; started from `init:` runs), method and engine of a task."""
    program = Program(config.program)
    program.check_networks(config.networks, where="the task")
    sizes = domain_sizes(program, config)
    template = QueryTemplate(config.query, program)
    splits = query_sets(config, template, mnist)
    train_set = splits.pop("train")
    images = {"train": to_tensor(mnist.train.images, device), "test": to_tensor(mnist.test.images, device)}

    seed_everything(config.seed)
    networks = {name: build_network(spec.arch, sizes[name]) for name, spec in config.networks.items()}
    for name, spec in config.networks.items():
        if spec.init:
            load_pretrained(networks[name], spec.init, f"networks.{name}.init")
        networks[name].to(device)
    method = make_method(config.method, config.method_args, networks, method_context(config, train_set, images))
    predicates = method.predicate_networks()
    heads = {name: networks[name].head for name, spec in config.networks.items() if spec.init and spec.naming}
    naming = (
        name_clusters(
            predicates, heads, sizes, template, train_set, config.data.combinations, images["train"], config.seed
        )
        if heads
        else None
    )
    engine = make_engine(
        config.engine, program, predicates, images, config.train.param_lr, cache / "circuits", config.engine_circuits
    )
    learner = QueryLearner(engine, method, template, train_set, images["train"])
    return Assembled(program, template, train_set, splits, images, method, predicates, engine, learner, naming)


def run_task(config: TaskConfig, run: RunDir, command: str, resume: bool = False) -> dict:
    device, cache = start_run(config, run)
    mnist = load_mnist(config.data.dir, cache, config.data.source)
    task = assemble(config, mnist, device, cache)
    train_set, splits = task.train_set, task.splits
    run.write_atomic(
        "queries.npz",
        lambda tmp: _save_indices(tmp, train=train_set.indices, **{k: v.indices for k, v in splits.items()}),
    )
    program, template, images, engine = task.program, task.template, task.images, task.engine
    method, predicates, learner = task.method, task.predicates, task.learner
    if task.naming:
        print(describe(task.naming))
    trainer = Trainer(learner, len(train_set), config.train, config.seed, run)
    if resume and run.has(CHECKPOINT):
        trainer.restore()
        print(f"resuming from step {trainer.step} of {trainer.total_steps}")
    elif resume:
        print("no checkpoint in the run folder yet: starting from step 0")

    metrics: dict = {
        "task": config.name,
        "method": config.method,
        "seed": config.seed,
        "command": command,
        "data_source": mnist.source,
        "train_queries": len(train_set),
        **{f"{name}_queries": len(queries) for name, queries in splits.items()},
        **({"naming": task.naming.summary()} if task.naming else {}),
    }
    try:
        result = trainer.train()
    except Diverged as exc:
        metrics.update(exc.summary(trainer.seconds))
        run.write_json(METRICS, metrics)
        write_report(run, config.name, config.method, metrics, [])
        raise
    metrics.update(status="finished", train_steps=result.steps, train_seconds=result.seconds)

    started = time.perf_counter()
    for name, queries in splits.items():  # "id" (the test queries) and, for a restricted task, "ood"
        metrics[name] = split_metrics(
            engine, template, queries, predicates, images["test"], mnist.test.labels, config.eval.batch_size
        )
    domains = {p.network: [str(v) for v in p.domain] for p in program.neural_predicates}
    pictures = [
        plot_confusion(run, f"{net}{'' if split == 'id' else '_' + split}", found["confusion"], domains[net])
        for split in splits
        for net, found in metrics[split]["concepts"].items()
    ]
    for name, samples in method.samples().items():
        pictures.append(plot_samples(run, samples, config.seed, f"samples_{name}.png"))
    ident = metrics["id"]
    metrics.update(
        task_accuracy=ident["acc_y"],
        concept_accuracy=ident["concept_accuracy"],
        nmi=ident["nmi"],
        grounding=classify(ident["acc_y"], ident["concept_accuracy"], config.eval.grounded_at, config.eval.task_at),
        eval_seconds=time.perf_counter() - started,
    )
    if "ood" in metrics:
        metrics.update(
            ood_task_accuracy=metrics["ood"]["acc_y"], ood_concept_accuracy=metrics["ood"]["concept_accuracy"]
        )
    run.write_json(METRICS, metrics)
    write_report(run, config.name, config.method, metrics, pictures)
    print(summary_table(metrics))
    print(f"run folder: {run.path}")
    return metrics
