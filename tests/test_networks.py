"""Every MNIST architecture of the registry: logits for a batch of digits, and the 84/128-d features and
head that SwAV and the prototype checks read."""

from __future__ import annotations

import torch

from nesy_gedi.networks import ARCHITECTURES, build_network


def test_every_mnist_architecture_gives_logits_features_and_head():
    names = [name for name in ARCHITECTURES if name.startswith("mnist_")]
    assert "mnist_lenet_wide" in names
    x = torch.randn(6, 1, 28, 28)
    for name in names:
        net = build_network(name, 7).eval()  # training mode moves spectral norm's power iteration per call
        logits = net(x)
        assert logits.shape == (6, 7), name
        features = net.features(x)
        assert torch.allclose(net.head(features), logits, atol=1e-5), name
