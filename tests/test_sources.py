"""Image sources: each on a tiny fixture in its real on-disk format (the download-only sets in torchvision's
own layout, never run against the real downloads here), real Fashion-MNIST, and the errors of each."""

from __future__ import annotations

import gzip
import pickle

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from nesy_gedi.data.sources import SOURCES, load_source
from nesy_gedi.errors import UserError

RNG = np.random.default_rng(0)


def idx(array: np.ndarray) -> bytes:
    """An IDX file (unsigned bytes) for an array."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def images(n: int, *shape: int) -> np.ndarray:
    return RNG.integers(0, 256, size=(n, *shape), dtype=np.uint8)


def write_idx_set(folder, names: dict[str, np.ndarray], gz: bool) -> None:
    folder.mkdir(parents=True)
    for name, array in names.items():
        data = idx(array)
        (folder / (name + (".gz" if gz else ""))).write_bytes(gzip.compress(data) if gz else data)


def test_kmnist_in_torchvisions_layout(tmp_path):
    train, test = images(6, 28, 28), images(4, 28, 28)
    write_idx_set(
        tmp_path / "KMNIST" / "raw",
        {
            "train-images-idx3-ubyte": train,
            "train-labels-idx1-ubyte": np.arange(6) % 10,
            "t10k-images-idx3-ubyte": test,
            "t10k-labels-idx1-ubyte": np.arange(4),
        },
        gz=True,
    )
    data = load_source("kmnist", str(tmp_path), False, tmp_path)
    assert np.array_equal(data.train.images, train) and data.test.labels.tolist() == [0, 1, 2, 3]
    assert data.classes[:3] == ["o", "ki", "su"] and data.shape == (1, 28, 28)


def test_emnist_letters_are_transposed_and_labelled_from_zero(tmp_path):
    train = images(3, 28, 28)
    write_idx_set(
        tmp_path / "EMNIST" / "raw",
        {
            "emnist-letters-train-images-idx3-ubyte": train,
            "emnist-letters-train-labels-idx1-ubyte": np.array([1, 2, 26]),
            "emnist-letters-test-images-idx3-ubyte": images(2, 28, 28),
            "emnist-letters-test-labels-idx1-ubyte": np.array([3, 4]),
        },
        gz=False,
    )
    data = load_source("emnist_letters", str(tmp_path), False, tmp_path)
    assert np.array_equal(data.train.images, train.transpose(0, 2, 1))
    assert data.train.labels.tolist() == [0, 1, 25] and data.classes[25] == "z"


def test_cifar10_batches_as_torchvision_writes_them(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    first = None
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        pixels = images(2, 3 * 32 * 32)
        first = pixels if first is None else first
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": pixels, b"labels": [1, 9]}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog",
                                      b"horse", b"ship", b"truck"]}, f)  # fmt: skip
    data = load_source("cifar10", str(tmp_path), False, tmp_path)
    assert data.train.images.shape == (10, 32, 32, 3) and data.test.images.shape == (2, 32, 32, 3)
    assert np.array_equal(data.train.images[0], first[0].reshape(3, 32, 32).transpose(1, 2, 0))
    assert data.classes[9] == "truck" and data.shape == (3, 32, 32)


def test_a_cifar_batch_that_would_run_code_is_refused(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"a"]}))
    (folder / "data_batch_1").write_bytes(pickle.dumps(print))
    with pytest.raises(pickle.UnpicklingError, match="not allowed"):
        load_source("cifar10", str(tmp_path), False, tmp_path)


def test_svhn_mat_files_with_ten_for_zero(tmp_path):
    for part, n in (("train", 3), ("test", 2)):
        savemat(tmp_path / f"{part}_32x32.mat", {"X": images(32, 32, 3, n), "y": np.array([[10], [1], [9]][:n])})
    data = load_source("svhn", str(tmp_path), False, tmp_path)
    assert data.train.images.shape == (3, 32, 32, 3) and data.train.labels.tolist() == [0, 1, 9]


@pytest.mark.parametrize("kind", ["kmnist", "emnist_letters", "cifar10", "svhn"])
def test_a_download_only_set_offline_says_where_to_put_it(tmp_path, kind):
    with pytest.raises(UserError, match=rf"{kind}: .* is missing\. This set only downloads: set the source's `path`"):
        load_source(kind, str(tmp_path / "nothing"), False, tmp_path)


def test_npz_source(tmp_path):
    path = tmp_path / "mine.npz"
    arrays = {"train_images": images(5, 8, 8, 3), "train_labels": np.array([0, 1, 2, 1, 0])}
    arrays |= {
        "test_images": images(2, 8, 8, 3),
        "test_labels": np.array([2, 0]),
        "classes": np.array(["cat", "dog", "owl"]),
    }
    np.savez(path, **arrays)
    data = load_source("npz", str(path), False, tmp_path)
    assert data.classes == ["cat", "dog", "owl"] and data.shape == (3, 8, 8) and len(data.test.labels) == 2
    np.savez(path, train_images=images(5, 8, 8), train_labels=np.arange(5))
    with pytest.raises(UserError, match="lacks test_images, test_labels"):
        load_source("npz", str(path), False, tmp_path)
    with pytest.raises(UserError, match="npz file not found"):
        load_source("npz", str(tmp_path / "none.npz"), False, tmp_path)


def test_image_folder_source_is_decoded_once_then_cached(tmp_path):
    root = tmp_path / "photos"
    for part, count in (("train", 3), ("test", 1)):
        for name in ("ant", "bee"):
            (root / part / name).mkdir(parents=True)
            for i in range(count):
                Image.fromarray(images(1, 6, 6)[0]).save(root / part / name / f"{i}.png")
    data = load_source("folder", str(root), False, tmp_path / "cache")
    assert data.classes == ["ant", "bee"] and data.train.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert data.train.images.shape == (6, 6, 6)
    assert list((tmp_path / "cache" / "folders").glob("*.npz"))  # decoded once, kept in the cache
    again = load_source("folder", str(root), False, tmp_path / "cache")
    assert np.array_equal(again.train.images, data.train.images) and again.source == str(root)
    Image.fromarray(images(1, 7, 7)[0]).save(root / "test" / "bee" / "odd.png")
    with pytest.raises(UserError, match="images differ in size"):
        load_source("folder", str(root), False, tmp_path / "cache")


def test_fashion_mnist_is_real_and_verified(tmp_path):
    from nesy_gedi.data.mnist import default_cache_dir

    data = load_source("fashion_mnist", None, False, default_cache_dir())
    assert data.train.images.shape == (60000, 28, 28) and data.test.images.shape == (10000, 28, 28)
    assert np.bincount(data.train.labels).tolist() == [6000] * 10 and data.classes[9] == "boot"


def test_every_registered_source_is_documented():
    from .conftest import ROOT

    text = (ROOT / "docs" / "data.md").read_text()
    assert all(f"`{kind}`" in text for kind in SOURCES)
