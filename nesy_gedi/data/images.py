"""What an image source yields: labelled training and test images in their native shape, the class names,
and the one conversion to the networks' input domain."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Split:
    """Images as uint8, (N, H, W) for one channel or (N, H, W, C); labels as int64 (N,), class indices."""

    images: np.ndarray
    labels: np.ndarray


@dataclass(frozen=True)
class ImageData:
    train: Split
    test: Split
    classes: list[str]
    """class names: label i is `classes[i]`"""
    source: str
    """where the images were read from (kept in metrics.json)"""

    @property
    def shape(self) -> tuple[int, ...]:
        """One image as the networks see it: (C, H, W)."""
        return tuple(to_tensor(self.train.images[:1]).shape[1:])


def to_tensor(images: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 (N, H, W) or (N, H, W, C) -> float (N, C, H, W) in [-1, 1], the range DeepProbLog's example and
    EBMs use (GEDI's SGLD samples live in the same box)."""
    x = torch.tensor(images, dtype=torch.float32).div(127.5).sub(1.0)
    x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
    return x.contiguous().to(device)


def subset(data: ImageData, classes: list[int] | None) -> ImageData:
    """Only the images of these class indices (a task's pool, e.g. MNIST-Half's 0-4); labels unchanged."""
    if classes is None:
        return data
    keep = [np.isin(split.labels, classes) for split in (data.train, data.test)]
    train, test = (Split(s.images[k], s.labels[k]) for s, k in zip((data.train, data.test), keep, strict=True))
    return ImageData(train, test, data.classes, data.source)
