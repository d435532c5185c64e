"""Fashion-MNIST (Zalando, MIT licence): an image source, and MNIST's default out-of-distribution set for
energy scores (DATA.md §4).

Sources, in order: `NESY_GEDI_FASHION` (a folder with the IDX files, plain or gzipped), the Debian
package's install folder, and the package unpacked into the cache (`apt-get download` + `dpkg -x`, no
root needed). The MD5 of the uncompressed file must be the canonical one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from nesy_gedi.data.images import ImageData, Split
from nesy_gedi.data.mnist import parse_idx, read_files
from nesy_gedi.errors import UserError

FILES = {
    "train_images": ("train-images-idx3-ubyte", "f4a8712d7a061bf5bd6d2ca38dc4d50a"),
    "train_labels": ("train-labels-idx1-ubyte", "9018921c3c673c538a1fc5bad174d6f9"),
    "test_images": ("t10k-images-idx3-ubyte", "8181f5470baa50b63fa0f6fddb340f0a"),
    "test_labels": ("t10k-labels-idx1-ubyte", "15d484375f8d13e6eb1aabb0c3f46965"),
}
CLASSES = ["tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]
DEBIAN_PACKAGE = "dataset-fashion-mnist"
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
UNPACKED = Path("fashion-mnist") / "usr/share/datasets/fashion-mnist"


def _unpack_debian(cache: Path) -> Path:
    """Download the .deb into the cache (or reuse one there) and unpack it without installing."""
    target = cache / "fashion-mnist"
    if (cache / UNPACKED).is_dir():
        return cache / UNPACKED
    for tool in ("apt-get", "dpkg"):
        if shutil.which(tool) is None:
            raise FileNotFoundError(f"{tool} is not installed")
    cache.mkdir(parents=True, exist_ok=True)
    debs = sorted(cache.glob(f"{DEBIAN_PACKAGE}_*.deb"))
    if not debs:
        subprocess.run(["apt-get", "download", DEBIAN_PACKAGE], cwd=cache, check=True, capture_output=True, timeout=600)
        debs = sorted(cache.glob(f"{DEBIAN_PACKAGE}_*.deb"))
    with tempfile.TemporaryDirectory(dir=cache, ignore_cleanup_errors=True) as tmp:  # renamed away when done
        subprocess.run(["dpkg", "-x", str(debs[-1]), tmp], check=True, capture_output=True, timeout=600)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    return cache / UNPACKED


def load_fashion(cache: Path, folder: str | Path | None = None) -> ImageData:
    """The 60,000 / 10,000 Fashion-MNIST images, MD5-verified, from `folder`, `NESY_GEDI_FASHION`, the
    Debian package's folder, or the package unpacked into the cache."""
    attempts = []
    named = folder or os.environ.get("NESY_GEDI_FASHION")
    if named and not Path(named).is_dir():
        raise UserError(
            f"{named}: Fashion-MNIST folder not found ({'the given folder' if folder else 'NESY_GEDI_FASHION'}); "
            "fix the path, or leave it out to use the Debian package"
        )
    folders = [Path(named)] if named else [SYSTEM_DIR]  # a folder the user names is the only place looked at
    raw = None
    for candidate in folders:
        raw = read_files(candidate, FILES)
        if raw is not None:
            where = str(candidate)
            break
        attempts.append(f"  - {candidate}: not the four Fashion-MNIST IDX files (plain or .gz)")
    if raw is None and not named:
        try:
            unpacked = _unpack_debian(cache)
            raw, where = read_files(unpacked, FILES), f"Debian package {DEBIAN_PACKAGE} in {cache}"
        except (OSError, subprocess.SubprocessError) as exc:
            attempts.append(f"  - Debian package {DEBIAN_PACKAGE} into {cache}: {type(exc).__name__}: {exc}")
    if raw is None:
        raise UserError(
            "Fashion-MNIST could not be loaded. Tried:\n" + "\n".join(attempts) + "\n"
            f"Fix: `apt-get install {DEBIAN_PACKAGE}` (the Debian package), or set NESY_GEDI_FASHION or the "
            "source's `path` to a folder with the IDX files (or set eval.ood: false where it is the OOD set)."
        )
    arrays = {}
    for key, (name, md5) in FILES.items():
        if hashlib.md5(raw[key]).hexdigest() != md5:
            raise UserError(f"Fashion-MNIST {name}: MD5 {hashlib.md5(raw[key]).hexdigest()}, expected {md5}")
        arrays[key] = parse_idx(raw[key], name)
    return ImageData(
        Split(arrays["train_images"], arrays["train_labels"].astype(np.int64)),
        Split(arrays["test_images"], arrays["test_labels"].astype(np.int64)),
        CLASSES,
        where,
    )
