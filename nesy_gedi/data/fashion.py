"""Fashion-MNIST test images, the out-of-distribution set for energy scores (DATA.md §4).

Sources, in order: `NESY_GEDI_FASHION` (a folder with the IDX files, plain or gzipped), the Debian
package's install folder, and the package unpacked into the cache (`apt-get download` + `dpkg -x`, no
root needed). The MD5 of the uncompressed file must be the canonical one.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from nesy_gedi.data.mnist import parse_idx
from nesy_gedi.errors import UserError

TEST_IMAGES = ("t10k-images-idx3-ubyte", "8181f5470baa50b63fa0f6fddb340f0a")
DEBIAN_PACKAGE = "dataset-fashion-mnist"
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
UNPACKED = Path("fashion-mnist") / "usr/share/datasets/fashion-mnist"


def _read(folder: Path) -> bytes | None:
    name = TEST_IMAGES[0]
    if (folder / name).is_file():
        return (folder / name).read_bytes()
    if (folder / f"{name}.gz").is_file():
        return gzip.decompress((folder / f"{name}.gz").read_bytes())
    return None


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


def load_fashion_test(cache: Path) -> np.ndarray:
    """The 10,000 Fashion-MNIST test images as uint8 (N, 28, 28)."""
    attempts = []
    folders = [Path(os.environ["NESY_GEDI_FASHION"])] if os.environ.get("NESY_GEDI_FASHION") else []
    folders += [SYSTEM_DIR]
    for folder in folders:
        raw = _read(folder)
        if raw is not None:
            break
        attempts.append(f"  - {folder}: no {TEST_IMAGES[0]}(.gz)")
    else:
        try:
            raw = _read(_unpack_debian(cache))
        except (OSError, subprocess.SubprocessError) as exc:
            attempts.append(f"  - Debian package {DEBIAN_PACKAGE} into {cache}: {type(exc).__name__}: {exc}")
            raw = None
    if raw is None:
        raise UserError(
            "Fashion-MNIST (for the OOD scores) could not be loaded. Tried:\n" + "\n".join(attempts) + "\n"
            f"Fix: `apt-get install {DEBIAN_PACKAGE}`, or set NESY_GEDI_FASHION to a folder with the IDX files, "
            "or set eval.ood: false."
        )
    if hashlib.md5(raw).hexdigest() != TEST_IMAGES[1]:
        raise UserError(
            f"Fashion-MNIST {TEST_IMAGES[0]}: MD5 {hashlib.md5(raw).hexdigest()}, expected {TEST_IMAGES[1]}"
        )
    return parse_idx(raw, TEST_IMAGES[0])
