"""`nesy-gedi run`, top to bottom: task -> data -> program and queries -> networks -> training -> metrics -> report."""

from __future__ import annotations

import time

import numpy as np
import torch

from nesy_gedi.config import TaskConfig
from nesy_gedi.data.mnist import load_mnist, to_tensor
from nesy_gedi.data.queries import QuerySet, build_query_set
from nesy_gedi.errors import UserError
from nesy_gedi.logic import make_engine
from nesy_gedi.logic.program import Program
from nesy_gedi.logic.query import QueryTemplate
from nesy_gedi.methods import MethodContext, make_method
from nesy_gedi.metrics import concept_metrics, predict_concepts, task_accuracy
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


def run_task(config: TaskConfig, run: RunDir, command: str, resume: bool = False) -> dict:
    device, cache = start_run(config, run)
    mnist = load_mnist(config.data.dir, cache, config.data.source)
    program = Program(config.program)
    program.check_networks(config.networks, where="the task")
    sizes = domain_sizes(program, config)
    template = QueryTemplate(config.query, program)
    per_query = template.images_per_query
    train_set = build_query_set(
        mnist.train, "train", per_query, config.data.train_size, config.seed, template.label, "data.train_size"
    )
    test_set = build_query_set(
        mnist.test, "test", per_query, config.data.test_size, config.seed, template.label, "data.test_size"
    )
    run.write_atomic("queries.npz", lambda tmp: _save_indices(tmp, train=train_set.indices, test=test_set.indices))
    images = {"train": to_tensor(mnist.train.images, device), "test": to_tensor(mnist.test.images, device)}

    seed_everything(config.seed)
    networks = {name: build_network(spec.arch, sizes[name]) for name, spec in config.networks.items()}
    for name, spec in config.networks.items():
        if spec.init:
            load_pretrained(networks[name], spec.init, f"networks.{name}.init")
        networks[name].to(device)
    method = make_method(config.method, config.method_args, networks, method_context(config, train_set, images))
    predicates = method.predicate_networks()
    engine = make_engine(config.engine, program, predicates, images, config.train.param_lr, cache / "circuits")
    learner = QueryLearner(engine, method, template, train_set, images["train"])
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
        "test_queries": len(test_set),
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
    metrics["task_accuracy"] = task_accuracy(engine, template, test_set, config.eval.batch_size)
    pictures, per_network = [], {}
    for pred in {p.network: p for p in program.neural_predicates}.values():
        keep = mnist.test.labels < len(pred.domain)
        predicted = predict_concepts(predicates[pred.network], images["test"][torch.as_tensor(keep)])
        per_network[pred.network] = concept_metrics(predicted, mnist.test.labels[keep], len(pred.domain))
        pictures.append(
            plot_confusion(run, pred.network, per_network[pred.network]["confusion"], [str(v) for v in pred.domain])
        )
    for name, samples in method.samples().items():
        pictures.append(plot_samples(run, samples, config.seed, f"samples_{name}.png"))
    first = per_network[program.neural_predicates[0].network]
    metrics.update(
        concept_accuracy=first["concept_accuracy"],
        nmi=first["nmi"],
        concepts=per_network,
        eval_seconds=time.perf_counter() - started,
    )
    run.write_json(METRICS, metrics)
    write_report(run, config.name, config.method, metrics, pictures)
    print(summary_table(metrics))
    print(f"run folder: {run.path}")
    return metrics
