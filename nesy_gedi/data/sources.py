"""Image sources by name: one loader each, listed here. A task names its sources (`data.sources`), each
with a `kind` from this registry; a query input reads its images from one of them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from nesy_gedi.data.fashion import load_fashion
from nesy_gedi.data.images import ImageData
from nesy_gedi.data.mnist import load_mnist
from nesy_gedi.data.torchvision_sets import load_download_only
from nesy_gedi.data.user_images import load_folder, load_npz

Loader = Callable[[str | None, bool, Path], ImageData]
"""(path, download, cache folder) -> the source's images"""

SOURCES: dict[str, Loader] = {
    "mnist": lambda path, download, cache: load_mnist(path, cache),
    "fashion_mnist": lambda path, download, cache: load_fashion(cache, path),
    "kmnist": lambda path, download, cache: load_download_only("kmnist", path, download, cache),
    "emnist_letters": lambda path, download, cache: load_download_only("emnist_letters", path, download, cache),
    "cifar10": lambda path, download, cache: load_download_only("cifar10", path, download, cache),
    "svhn": lambda path, download, cache: load_download_only("svhn", path, download, cache),
    "npz": lambda path, download, cache: load_npz(path),
    "folder": lambda path, download, cache: load_folder(path, cache),
}
DEFAULT_OOD = {"mnist": "fashion_mnist", "fashion_mnist": "mnist"}
"""the out-of-distribution source of a pretraining run's energy scores, unless the task names one"""


def load_source(kind: str, path: str | None, download: bool, cache: Path) -> ImageData:
    return SOURCES[kind](path, download, cache)
