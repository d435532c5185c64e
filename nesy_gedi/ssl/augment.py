"""Stochastic views p(x'|x) for the invariance term, as `torchvision.transforms.v2` pipelines.

torchvision's `RandomAffine` draws one set of parameters per call, so a batch would get one shared
transform; drawing per image in a Python loop costs about 25× the network pass (38 ms for 256 digits
here). `PerSampleAffine` is a v2 transform that draws parameters per image and warps the whole batch
with one `grid_sample`. Digits get no flips and no colour operations (GEDI_SPEC.md §4, §9).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, PositiveFloat
from torchvision.transforms import v2


class AugmentSpec(BaseModel):
    """View settings. Images use stroke width, brightness, mirror, rotation/translate/scale and noise; 2-D
    points use jitter.

    The image defaults are the values measured on MNIST (docs/results.md: stroke-width views are what keeps
    clusters from sorting digits by ink)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    rotation: NonNegativeFloat = Field(20.0, description="images: maximum rotation in degrees")
    translate: NonNegativeFloat = Field(0.15, description="images: maximum shift as a fraction of the size")
    scale: list[PositiveFloat] = Field([0.8, 1.2], min_length=2, max_length=2, description="images: zoom range")
    stroke: NonNegativeFloat = Field(
        0.7, le=1.0, description="images: max blend toward a dilated or eroded copy (thicker or thinner strokes)"
    )
    noise: NonNegativeFloat = Field(0.1, description="images: σ of additive Gaussian pixel noise")
    brightness: NonNegativeFloat = Field(
        0.0, le=1.0, description="images: max share by which an image's intensities are scaled down (garments: 0.5)"
    )
    flip: NonNegativeFloat = Field(
        0.0,
        le=1.0,
        description="images: probability of a left-right mirror (garments: 0.5; digits: 0, a mirror is no digit)",
    )
    jitter: NonNegativeFloat = Field(0.1, description="2-D points: σ of additive Gaussian jitter")


class PerSampleAffine(v2.Transform):
    """Random rotation, shift and zoom with independent parameters for every image of a batch."""

    def __init__(self, degrees: float, translate: float, scale: list[float], generator: torch.Generator):
        super().__init__()
        self.degrees, self.translate, self.scale, self.generator = degrees, translate, scale, generator

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not isinstance(inpt, torch.Tensor) or inpt.ndim != 4:
            return inpt
        n, device = inpt.shape[0], inpt.device

        def uniform(low: float, high: float) -> torch.Tensor:
            return low + (high - low) * torch.rand(n, generator=self.generator, device=device)

        angle = uniform(-self.degrees, self.degrees) * (math.pi / 180)
        zoom = uniform(*self.scale)
        shift = torch.stack([uniform(-self.translate, self.translate) for _ in range(2)], -1) * 2  # grid units
        theta = torch.zeros(n, 2, 3, device=device)
        theta[:, 0, 0], theta[:, 0, 1] = angle.cos() / zoom, -angle.sin() / zoom
        theta[:, 1, 0], theta[:, 1, 1] = angle.sin() / zoom, angle.cos() / zoom
        theta[:, :, 2] = shift
        grid = F.affine_grid(theta, list(inpt.shape), align_corners=False)
        background = -1.0  # images live in [-1, 1]; the border is black
        return F.grid_sample(inpt - background, grid, align_corners=False, padding_mode="zeros") + background


def _max_filter(x: torch.Tensor) -> torch.Tensor:
    """3×3 maximum filter as two separable passes of shifted maxima (max_pool2d with stride 1 is ~10× slower
    on the CPU)."""
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
    rows = torch.maximum(torch.maximum(padded[..., :-2, :], padded[..., 1:-1, :]), padded[..., 2:, :])
    return torch.maximum(torch.maximum(rows[..., :-2], rows[..., 1:-1]), rows[..., 2:])


class PerImage(v2.Transform):
    """A view with one uniform draw in [0, 1) per image of a batch, from the task's generator (torchvision's
    random transforms draw once per call, from the global generator); strength 0 leaves images as they are."""

    def __init__(self, strength: float, generator: torch.Generator):
        super().__init__()
        self.strength, self.generator = strength, generator

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not isinstance(inpt, torch.Tensor) or inpt.ndim != 4 or self.strength == 0:
            return inpt
        return self.apply(inpt, torch.rand(len(inpt), 1, 1, 1, generator=self.generator, device=inpt.device))

    def apply(self, images: torch.Tensor, draw: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class StrokeWidth(PerImage):
    """Per image, blend toward a dilated (thicker) or eroded (thinner) copy by a random amount in [-s, s].

    Affine views leave the amount of ink unchanged, so without this a clustering can sort digits by
    stroke width instead of by shape.
    """

    def apply(self, images: torch.Tensor, draw: torch.Tensor) -> torch.Tensor:
        amount = (draw * 2 - 1) * self.strength
        # one filter pass: dilate x where the amount is positive, erode (dilate -x, negate) elsewhere
        sign = torch.where(amount > 0, 1.0, -1.0)
        target = sign * _max_filter(sign * images)
        return images + amount.abs() * (target - images)


class PerSampleFlip(PerImage):
    """Mirror each image left-right with probability `strength`."""

    def apply(self, images: torch.Tensor, draw: torch.Tensor) -> torch.Tensor:
        return torch.where(draw < self.strength, images.flip(-1), images)


class Brightness(PerImage):
    """Scale each image's intensities (in [0, 1], black background kept) by a factor drawn in [1 − s, 1]:
    without it garments cluster by how light the cloth is rather than by shape."""

    def apply(self, images: torch.Tensor, draw: torch.Tensor) -> torch.Tensor:
        return (images + 1) * (1 - self.strength * draw) - 1  # [-1, 1] -> [0, 2] scaled -> back


class GaussianJitter(v2.Transform):
    """Additive noise drawn from the task's generator (v2.GaussianNoise uses the global one)."""

    def __init__(self, sigma: float, generator: torch.Generator):
        super().__init__()
        self.sigma, self.generator = sigma, generator

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not isinstance(inpt, torch.Tensor):
            return inpt
        return inpt + self.sigma * torch.randn(inpt.shape, generator=self.generator, device=inpt.device)


def make_views(spec: AugmentSpec, kind: str, generator: torch.Generator) -> v2.Transform:
    """The view pipeline for `images` (N, C, H, W) or `points` (N, 2)."""
    if kind == "points":
        return v2.Compose([GaussianJitter(spec.jitter, generator)])
    return v2.Compose(
        [
            StrokeWidth(spec.stroke, generator),
            Brightness(spec.brightness, generator),
            PerSampleFlip(spec.flip, generator),
            PerSampleAffine(spec.rotation, spec.translate, spec.scale, generator),
            GaussianJitter(spec.noise, generator),
        ]
    )
