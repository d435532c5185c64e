"""The sample judge: a classifier of the source's labelled images that tells data-like samples from noise."""

from __future__ import annotations

import logging

import pytest
import torch

from nesy_gedi.analysis.sample_quality import judge_arch, judge_samples, sample_quality, train_judge
from nesy_gedi.data.images import to_tensor
from nesy_gedi.networks import build_network


@pytest.fixture(scope="module")
def judged(mnist, tmp_path_factory):
    """A judge trained on 10,000 real MNIST training images, in a cache of its own."""
    cache = tmp_path_factory.mktemp("cache")
    images = to_tensor(mnist.train.images[:10000])
    judge, path = train_judge(images, mnist.train.labels[:10000], 10, "mnist_lenet", cache)
    return judge, path, images, cache


def test_real_images_are_recognised_and_noise_is_not(judged, mnist):
    judge = judged[0]
    real = judge_samples(judge, to_tensor(mnist.test.images[:1000]), 10)
    noise = judge_samples(judge, torch.rand(1000, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1, 10)
    blank = judge_samples(judge, -torch.ones(100, 1, 28, 28), 10)
    assert real["confident"] > 0.7 and real["classes_present"] == 10
    assert abs(sum(real["class_shares"]) - 1) < 1e-3 and max(real["class_shares"]) < 0.2
    assert noise["confident"] < 0.05 and blank["confident"] < 0.05


def test_one_class_of_samples_is_seen_as_one_class(judged, mnist):
    ones = to_tensor(mnist.test.images[mnist.test.labels == 1][:200])
    verdict = judge_samples(judged[0], ones, 10)
    assert verdict["classes_present"] <= 3 and verdict["class_shares"][1] > 0.9


def test_the_judge_is_trained_once_and_reloaded(judged, mnist, caplog):
    judge, path, images, cache = judged
    assert path.is_file() and path.parent == cache / "judges"
    with caplog.at_level(logging.INFO, logger="nesy_gedi.analysis.sample_quality"):
        again, same = train_judge(images, mnist.train.labels[:10000], 10, "mnist_lenet", cache)
    assert same == path and "training the sample judge" not in caplog.text
    assert all(torch.equal(a, b) for a, b in zip(judge.state_dict().values(), again.state_dict().values(), strict=True))
    other_labels = mnist.train.labels[:10000].copy()
    other_labels[0] = (other_labels[0] + 1) % 10
    _, other = train_judge(images[:600], other_labels[:600], 10, "mnist_lenet", cache)
    assert other != path  # other content, other judge


def test_sample_quality_reports_energies_of_samples_and_data(judged, mnist):
    net = build_network("mnist_lenet", 10)
    test = to_tensor(mnist.test.images[:200])
    quality = sample_quality(net, test[:100], test, judged[0], 10)
    assert set(quality) == {
        "samples_confident",
        "samples_classes_present",
        "samples_class_shares",
        "energy_samples",
        "energy_test",
    }
    assert quality["samples_confident"] > 0.5


def test_judge_architecture_follows_the_image_shape():
    assert judge_arch((1, 28, 28), None) == "mnist_lenet" and judge_arch((3, 32, 32), None) == "small_cnn"
    assert judge_arch((1, 28, 28), "mnist_lenet_bn") == "mnist_lenet_bn"
    from nesy_gedi.errors import UserError

    with pytest.raises(UserError, match="eval.judge_arch"):
        judge_arch((1, 64, 64), None)
