"""Whether an energy model's samples look like its data, as numbers rather than a picture.

A supervised *judge*, a classifier trained on the source's labelled training images (never used in
training the model it judges), reads the sampler's buffer: the share of samples it classifies with
confidence >= 0.9, and how those spread over the classes (a model that draws only ones is not a digit
model). The judge is trained once per source and architecture and cached by content in the cache folder.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nesy_gedi.analysis.metrics import batched_logits
from nesy_gedi.errors import UserError
from nesy_gedi.networks import build_network
from nesy_gedi.ssl.terms import energy

log = logging.getLogger(__name__)

JUDGE_EPOCHS = 3
JUDGE_BATCH = 128
JUDGE_LR = 1e-3
JUDGE_RECIPE = f"adam lr {JUDGE_LR} batch {JUDGE_BATCH} epochs {JUDGE_EPOCHS} seed 0 v1"
"""part of the cache key: a changed recipe trains a new judge"""


def judge_arch(shape: tuple[int, ...], arch: str | None) -> str:
    """The judge's architecture: the one asked for, else DeepProbLog's LeNet for 1x28x28 images and the
    small CNN for colour images."""
    if arch is not None:
        return arch
    if shape == (1, 28, 28):
        return "mnist_lenet"
    if len(shape) == 3 and shape[0] == 3:
        return "small_cnn"
    raise UserError(f"eval.judge_arch: no default judge for images of shape {shape}; name an architecture")


def _key(images: torch.Tensor, labels: np.ndarray, arch: str, classes: int) -> str:
    digest = hashlib.sha256()
    digest.update(images.detach().cpu().numpy().tobytes())
    digest.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    digest.update(f"{arch} {classes} {JUDGE_RECIPE}".encode())
    return digest.hexdigest()[:16]


def train_judge(
    images: torch.Tensor, labels: np.ndarray, classes: int, arch: str, cache: Path
) -> tuple[nn.Module, Path]:
    """A classifier of `images` (inputs in [-1, 1]) into `classes` classes, trained once and cached by the
    content of images, labels, architecture and recipe; returns it in eval mode with its file."""
    device = images.device
    path = Path(cache) / "judges" / f"{arch}-{_key(images, labels, arch, classes)}.pt"
    network = build_network(arch, classes, tuple(images.shape[1:]), name="judge").to(device)
    if path.exists():
        network.load_state_dict(torch.load(path, map_location=device, weights_only=True))
        return network.eval(), path
    log.info("training the sample judge (%s on %d labelled images, %d epochs)", arch, len(images), JUDGE_EPOCHS)
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    network = build_network(arch, classes, tuple(images.shape[1:]), name="judge").to(device)
    optimiser = torch.optim.Adam(network.parameters(), lr=JUDGE_LR)
    targets = torch.as_tensor(labels, dtype=torch.long, device=device)
    network.train()
    for _ in range(JUDGE_EPOCHS):
        order = torch.randperm(len(images), generator=generator).to(device)
        for start in range(0, len(images), JUDGE_BATCH):
            batch = order[start : start + JUDGE_BATCH]
            loss = nn.functional.cross_entropy(network(images[batch]), targets[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(handle)
    torch.save(network.state_dict(), tmp)
    os.replace(tmp, path)  # atomic: two runs training the same judge at once both end with a whole file
    return network.eval(), path


def judge_samples(judge: nn.Module, samples: torch.Tensor, classes: int, confidence: float = 0.9) -> dict:
    """The share of samples the judge classifies with probability >= `confidence`, the number of classes
    among those, and each class's share of them."""
    probabilities = torch.softmax(batched_logits(judge, samples), -1)
    top, predicted = probabilities.max(-1)
    sure = predicted[top >= confidence]
    counts = torch.bincount(sure, minlength=classes)
    return {
        "confident": float((top >= confidence).float().mean()),
        "classes_present": int((counts > 0).sum()),
        "class_shares": [round(float(c), 4) for c in counts / max(len(sure), 1)],
    }


def sample_quality(
    cluster_net: nn.Module,
    samples: torch.Tensor,
    test_images: torch.Tensor,
    judge: nn.Module,
    classes: int,
    confidence: float = 0.9,
) -> dict:
    """The judge's verdict on the samples (`samples_*`), and the model's mean energy on its samples and on
    held-out data: an energy model whose samples sit far above the data's energy has not reached them."""
    verdict = judge_samples(judge, samples, classes, confidence)
    return {
        "samples_confident": verdict["confident"],
        "samples_classes_present": verdict["classes_present"],
        "samples_class_shares": verdict["class_shares"],
        "energy_samples": float(energy(batched_logits(cluster_net, samples)).mean()),
        "energy_test": float(energy(batched_logits(cluster_net, test_images)).mean()),
    }
