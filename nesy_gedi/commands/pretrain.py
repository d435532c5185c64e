"""`nesy-gedi pretrain`, top to bottom: task -> unlabelled data -> network + objective -> training ->
clusters, OOD scores, picture -> report. The run's checkpoint is what a program task's `init:` loads."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nesy_gedi.analysis.metrics import batched_logits, cluster_metrics, ood_auroc
from nesy_gedi.analysis.report import PRETRAIN_REPORT, plot_regions, plot_samples
from nesy_gedi.analysis.sample_quality import judge_arch, sample_quality, train_judge
from nesy_gedi.assembly.config import PretrainConfig
from nesy_gedi.commands.runner import start_run, started_trainer, train_and_report
from nesy_gedi.data.images import subset, to_tensor
from nesy_gedi.data.sources import DEFAULT_OOD, load_source
from nesy_gedi.data.toy import make_points
from nesy_gedi.errors import UserError
from nesy_gedi.networks import build_network
from nesy_gedi.ssl.augment import make_views
from nesy_gedi.ssl.objectives import Objective, SSLContext, make_objective
from nesy_gedi.ssl.sgld import Domain
from nesy_gedi.training.checkpoint import PRETRAINED, export_network
from nesy_gedi.training.learners import PretrainLearner
from nesy_gedi.training.loop import Trainer, seed_everything
from nesy_gedi.training.rundir import RunDir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Unlabelled:
    kind: str
    """`images` or `points`"""
    train: torch.Tensor
    test: torch.Tensor
    test_labels: np.ndarray
    """used only to score the clusters, never in training"""
    domain: Domain
    source: str
    train_labels: np.ndarray | None
    """images: used only to train the sample judge, never in training"""
    classes: int


def _take(size: int | None, available: int, key: str) -> int:
    if size is not None and size > available:
        raise UserError(f"{key}: {size} asked for, but only {available} are available")
    return size or available


def load_unlabelled(config: PretrainConfig, cache: Path, device: torch.device) -> Unlabelled:
    """Images of any source (only `data.classes` when given, labels kept for scoring alone), or 2-D points."""
    data = config.data
    if data.kind not in ("moons", "circles"):
        images = subset(load_source(data.kind, data.path, data.download, cache), data.classes)
        n_train = _take(data.train_size, len(images.train.labels), "data.train_size")
        n_test = _take(data.test_size, len(images.test.labels), "data.test_size")
        test = to_tensor(images.test.images[:n_test], device)
        low = torch.full(test.shape[1:], -1.0, device=device)
        return Unlabelled(
            "images",
            to_tensor(images.train.images[:n_train], device),
            test,
            images.test.labels[:n_test],
            Domain(low, -low),
            images.source,
            images.train.labels[:n_train],
            len(images.classes),
        )
    points = make_points(data.kind, data.train_size or 2000, data.test_size or 1000, data.noise, config.seed)
    return Unlabelled(
        "points",
        points.train.to(device),
        points.test.to(device),
        points.test_labels,
        Domain(points.low.to(device), points.high.to(device)),
        f"scikit-learn make_{data.kind}",
        None,
        2,
    )


def ood_metric(kind: str) -> str:
    """`ood_auroc_fashion` for Fashion-MNIST (the name the results have always used), else the kind's."""
    return f"ood_auroc_{'fashion' if kind == 'fashion_mnist' else kind}"


def evaluate(config: PretrainConfig, objective: Objective, data: Unlabelled, cache: Path) -> dict:
    """Cluster quality on held-out inputs and, for images, energy-score OOD detection against the OOD
    source's test images (`eval.ood_source`, by default Fashion-MNIST for MNIST and the reverse) and noise."""
    batch = config.eval.batch_size
    logits = batched_logits(objective.cluster_net, data.test, batch)
    metrics = cluster_metrics(logits.argmax(-1).numpy(), data.test_labels)
    if data.kind == "images" and config.eval.ood:
        score_in = torch.logsumexp(logits, -1)
        outside = {}
        kind = config.eval.ood_source or DEFAULT_OOD.get(config.data.kind)
        if kind is not None:
            other = to_tensor(load_source(kind, None, False, cache).test.images, data.test.device)
            if other.shape[1:] != data.test.shape[1:]:
                raise UserError(
                    f"eval.ood_source: {kind}'s images are {tuple(other.shape[1:])}, the data's "
                    f"{tuple(data.test.shape[1:])}; choose an OOD source of the same shape"
                )
            outside[ood_metric(kind)] = other
        generator = torch.Generator(data.test.device).manual_seed(config.seed)
        count = len(next(iter(outside.values()))) if outside else len(data.test)  # as many as the OOD images
        outside["ood_auroc_noise"] = data.domain.uniform(count, generator)
        for name, inputs in outside.items():
            metrics[name] = ood_auroc(
                score_in, torch.logsumexp(batched_logits(objective.cluster_net, inputs, batch), -1)
            )
    samples = objective.samples()
    if data.kind == "images" and samples is not None and config.eval.samples:
        arch = judge_arch(tuple(data.test.shape[1:]), config.eval.judge_arch)
        judge, _ = train_judge(data.train, data.train_labels, data.classes, arch, cache)
        confidence = config.eval.sample_confidence
        metrics.update(sample_quality(objective.cluster_net, samples, data.test, judge, data.classes, confidence))
    return metrics


def picture(run: RunDir, objective: Objective, data: Unlabelled, seed: int) -> list[str]:
    samples = objective.samples()
    if data.kind == "points":

        def predict(points: torch.Tensor) -> np.ndarray:
            return batched_logits(objective.cluster_net, points.to(data.test.device)).argmax(-1).numpy()

        return [plot_regions(run, predict, data.test, data.test_labels, data.domain.low, data.domain.high, samples)]
    if samples is None:
        return []
    return [plot_samples(run, samples, seed)]


def build_objective(config: PretrainConfig, data: Unlabelled, device: torch.device, seed: int) -> Objective:
    """Network, views, sampler and objective, all drawn from `seed`."""
    seed_everything(seed)
    shape = tuple(data.test.shape[1:])
    network = build_network(config.network.arch, config.network.clusters, shape).to(device)
    generator = torch.Generator(device).manual_seed(seed)
    context = SSLContext(data.domain, make_views(config.augment, data.kind, generator), config.sgld, generator)
    return make_objective(config.method, config.method_args, network, context)


def pretrain(config: PretrainConfig, run: RunDir, command: str, resume: bool = False) -> dict:
    """Pretrain in `run` and score the clusters; the metrics (`"status": "diverged"` if it was stopped)."""
    device, cache, governor = start_run(config, run)
    data = load_unlabelled(config, cache, device)

    def make_trainer(seed: int, folder: RunDir) -> Trainer:
        learner = PretrainLearner(build_objective(config, data, device, seed), data.train)
        return Trainer(learner, len(data.train), config.train, seed, folder, governor)

    trainer, restarts, discarded = started_trainer(config.train, config.seed, make_trainer, run, resume)
    objective = trainer.learner.objective

    header: dict = {
        "task": config.name,
        "method": config.method,
        "seed": config.seed,
        "command": command,
        "data_source": data.source,
        "train_inputs": len(data.train),
        "test_inputs": len(data.test),
    }
    if restarts:
        header["restarts"] = restarts

    def scores() -> tuple[dict, list[str]]:
        export_network(run, PRETRAINED, objective.network, config.network.arch, config.network.clusters)
        return evaluate(config, objective, data, cache), picture(run, objective, data, config.seed)

    return train_and_report(config, run, trainer, header, scores, PRETRAIN_REPORT, discarded)
