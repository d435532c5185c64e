"""Image sets that only download: KMNIST, EMNIST letters, CIFAR-10 and SVHN, read from torchvision's own
on-disk layout under a folder (`path`), downloaded there by torchvision when `download: true` and the
machine has internet. No package ships them (DATA.md §6): they were tested here on small files written in
that layout, never against the real downloads.

The files are parsed here rather than through torchvision's dataset classes, which refuse any file whose
MD5 is not the real download's; the downloader checks those MD5s itself.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np

from nesy_gedi.data.images import ImageData, Split
from nesy_gedi.data.mnist import parse_idx, plain_or_gz
from nesy_gedi.errors import UserError

KMNIST_CLASSES = ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"]
LETTERS = [chr(c) for c in range(ord("a"), ord("z") + 1)]


def _idx(folder: Path, name: str) -> np.ndarray:
    raw = plain_or_gz(folder / name)
    if raw is None:
        raise FileNotFoundError(f"{folder / name}(.gz)")
    return parse_idx(raw, str(folder / name))


def _kmnist(root: Path) -> ImageData:
    raw = root / "KMNIST" / "raw"
    splits = [
        Split(_idx(raw, f"{p}-images-idx3-ubyte"), _idx(raw, f"{p}-labels-idx1-ubyte").astype(np.int64))
        for p in ("train", "t10k")
    ]
    return ImageData(*splits, KMNIST_CLASSES, str(raw))


def _emnist_letters(root: Path) -> ImageData:
    raw = root / "EMNIST" / "raw"
    splits = []
    for part in ("train", "test"):
        images = _idx(raw, f"emnist-letters-{part}-images-idx3-ubyte").transpose(0, 2, 1)  # stored transposed
        labels = _idx(raw, f"emnist-letters-{part}-labels-idx1-ubyte").astype(np.int64) - 1  # letters are 1-26
        splits.append(Split(np.ascontiguousarray(images), labels))
    return ImageData(*splits, LETTERS, str(raw))


class _ArraysOnly(pickle.Unpickler):
    """CIFAR's batches are pickles: allow the numpy types they hold and nothing else (no code runs)."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")}
    ALLOWED |= {("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str) -> object:
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR batch")


def _batch(path: Path) -> dict:
    return _ArraysOnly(io.BytesIO(path.read_bytes()), encoding="bytes").load()


def _cifar10(root: Path) -> ImageData:
    folder = root / "cifar-10-batches-py"

    def split(names: list[str]) -> Split:
        batches = [_batch(folder / n) for n in names]
        images = np.concatenate([np.asarray(b[b"data"], dtype=np.uint8) for b in batches]).reshape(-1, 3, 32, 32)
        labels = np.concatenate([np.asarray(b[b"labels"], dtype=np.int64) for b in batches])
        return Split(np.ascontiguousarray(images.transpose(0, 2, 3, 1)), labels)

    classes = [c.decode() for c in _batch(folder / "batches.meta")[b"label_names"]]
    return ImageData(split([f"data_batch_{i}" for i in range(1, 6)]), split(["test_batch"]), classes, str(folder))


def _svhn(root: Path) -> ImageData:
    from scipy.io import loadmat

    def split(name: str) -> Split:
        if not (root / name).is_file():
            raise FileNotFoundError(root / name)
        found = loadmat(root / name)
        images = np.ascontiguousarray(np.asarray(found["X"], dtype=np.uint8).transpose(3, 0, 1, 2))
        labels = np.asarray(found["y"], dtype=np.int64).ravel() % 10  # SVHN writes the digit 0 as 10
        return Split(images, labels)

    return ImageData(split("train_32x32.mat"), split("test_32x32.mat"), [str(d) for d in range(10)], str(root))


def _download(kind: str, root: Path) -> None:
    """torchvision's downloader, into the torchvision layout under `root` (needs internet)."""
    from torchvision import datasets

    make = {
        "kmnist": lambda train: datasets.KMNIST(str(root), train=train, download=True),
        "emnist_letters": lambda train: datasets.EMNIST(str(root), "letters", train=train, download=True),
        "cifar10": lambda train: datasets.CIFAR10(str(root), train=train, download=True),
        "svhn": lambda train: datasets.SVHN(str(root), "train" if train else "test", download=True),
    }[kind]
    make(True)
    make(False)


READERS: dict[str, Callable[[Path], ImageData]] = {
    "kmnist": _kmnist,
    "emnist_letters": _emnist_letters,
    "cifar10": _cifar10,
    "svhn": _svhn,
}
LAYOUT = {
    "kmnist": "KMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte(.gz)",
    "emnist_letters": "EMNIST/raw/emnist-letters-{train,test}-{images-idx3,labels-idx1}-ubyte(.gz)",
    "cifar10": "cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}",
    "svhn": "{train,test}_32x32.mat",
}


def load_download_only(kind: str, folder: str | Path | None, download: bool, cache: Path) -> ImageData:
    """A download-only set from `folder` (default: the cache's `torchvision` folder), downloading first when
    allowed and the files are missing."""
    root = Path(folder) if folder else cache / "torchvision"
    try:
        return READERS[kind](root)
    except FileNotFoundError as missing:
        if not download:
            raise UserError(
                f"{kind}: {missing} is missing. This set only downloads: set the source's `path` to a folder "
                f"holding torchvision's layout ({root}/{LAYOUT[kind]}), or `download: true` on a machine with "
                "internet"
            ) from None
    try:
        _download(kind, root)
    except Exception as exc:  # no network, a refused download: say what happened, not a traceback
        raise UserError(
            f"{kind}: download into {root} failed ({type(exc).__name__}: {str(exc).strip()[:200]}); without "
            f"internet, copy the files in torchvision's layout there ({LAYOUT[kind]})"
        ) from None
    return READERS[kind](root)
