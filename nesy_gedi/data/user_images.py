"""The user's own labelled images: an `.npz` file, or a folder with one sub-folder per class (torchvision's
`ImageFolder` layout) under `train/` and `test/`.

An `.npz` holds `train_images`, `train_labels`, `test_images`, `test_labels` (images uint8, (N, H, W) or
(N, H, W, C); labels whole numbers from 0) and optionally `classes` (the class names). A folder's images are
decoded once with Pillow and kept in the cache as an `.npz`, so later loads take a fraction of a second;
every image must have the same size and mode.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np

from nesy_gedi.data.images import ImageData, Split
from nesy_gedi.errors import UserError

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
KEYS = ("train_images", "train_labels", "test_images", "test_labels")


def _arrays(found: dict[str, np.ndarray], path: Path) -> ImageData:
    splits = []
    for part in ("train", "test"):
        images, labels = found[f"{part}_images"], found[f"{part}_labels"]
        if len(images) == 0:
            raise UserError(f"{path}: {part}_images is empty; a source needs images in both splits (train and test)")
        if images.dtype != np.uint8 or images.ndim not in (3, 4):
            raise UserError(
                f"{path}: {part}_images must be uint8 (N, H, W) or (N, H, W, C), got {images.dtype} {images.shape}"
            )
        if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
            raise UserError(f"{path}: {part}_labels must be one whole number from 0 per image ({len(images)})")
        splits.append(Split(images, labels.astype(np.int64)))
    if splits[0].images.shape[1:] != splits[1].images.shape[1:]:
        raise UserError(f"{path}: train and test images differ in shape")
    count = int(max(s.labels.max() for s in splits)) + 1
    classes = [str(c) for c in found["classes"]] if "classes" in found else [str(c) for c in range(count)]
    if len(classes) < count:
        raise UserError(f"{path}: {len(classes)} class names for labels up to {count - 1}")
    return ImageData(splits[0], splits[1], classes, str(path))


def load_npz(path: str | Path | None) -> ImageData:
    if path is None:
        raise UserError("npz: the source needs `path`, the .npz file")
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: npz file not found")
    try:
        with np.load(path, allow_pickle=False) as found:
            arrays = {k: found[k] for k in found.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise UserError(f"{path}: not a readable .npz ({exc})") from None
    missing = [k for k in KEYS if k not in arrays]
    if missing:
        raise UserError(f"{path}: lacks {', '.join(missing)} (an image source .npz holds {', '.join(KEYS)})")
    return _arrays(arrays, path)


def _files(root: Path, classes: list[str]) -> list[tuple[Path, int]]:
    """Each image file of a split with its class index; the split's class folders must be train/'s."""
    found = sorted(d.name for d in root.iterdir() if d.is_dir())
    if found != classes:
        missing, extra = sorted(set(classes) - set(found)), sorted(set(found) - set(classes))
        problems = []
        if missing:
            problems.append(f"lacks {', '.join(missing)}")
        if extra:
            problems.append(f"has {', '.join(extra)}, which train/ lacks")
        raise UserError(
            f"{root}: {' and '.join(problems)}; test/ and train/ need the same class sub-folders ({', '.join(classes)})"
        )
    return [
        (f, label)
        for label, name in enumerate(classes)
        for f in sorted((root / name).iterdir())
        if f.suffix.lower() in EXTENSIONS
    ]


def load_folder(path: str | Path | None, cache: Path) -> ImageData:
    if path is None:
        raise UserError("folder: the source needs `path`, a folder with train/<class>/ and test/<class>/")
    root = Path(path)
    if not (root / "train").is_dir() or not (root / "test").is_dir():
        raise UserError(f"{root}: an image folder holds train/ and test/, each with one sub-folder per class")
    classes = sorted(d.name for d in (root / "train").iterdir() if d.is_dir())
    if not classes:
        raise UserError(f"{root}/train: no class sub-folders")
    parts = {part: _files(root / part, classes) for part in ("train", "test")}
    listing = "\n".join(f"{f}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for items in parts.values() for f, _ in items)
    cached = cache / "folders" / f"{hashlib.sha256(listing.encode()).hexdigest()[:32]}.npz"
    if cached.is_file():
        return _with_source(load_npz(cached), str(root))
    from PIL import Image

    arrays: dict[str, np.ndarray] = {"classes": np.array(classes)}
    for part, items in parts.items():
        if not items:
            raise UserError(f"{root}/{part}: no images")
        images = []
        for f, _ in items:
            try:
                with Image.open(f) as image:
                    images.append(np.asarray(image))
            except OSError as exc:
                raise UserError(f"{f}: not an image Pillow can read ({exc})") from None
        if len({(i.shape, i.dtype) for i in images}) > 1:
            raise UserError(f"{root}/{part}: images differ in size or mode; give every image one size and mode")
        arrays[f"{part}_images"] = np.stack(images).astype(np.uint8)
        arrays[f"{part}_labels"] = np.array([label for _, label in items], dtype=np.int64)
    cached.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cached.with_suffix(".tmp.npz"), **arrays)
    cached.with_suffix(".tmp.npz").replace(cached)
    return _with_source(_arrays(arrays, cached), str(root))


def _with_source(data: ImageData, source: str) -> ImageData:
    return ImageData(data.train, data.test, data.classes, source)
