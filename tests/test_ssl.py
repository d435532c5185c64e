"""GEDI's terms, the SGLD sampler and the objectives on hand-built logits and tiny networks."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nesy_gedi.networks import build_network
from nesy_gedi.ssl.augment import AugmentSpec, make_views
from nesy_gedi.ssl.objectives import OBJECTIVES, SSLContext, make_objective
from nesy_gedi.ssl.sgld import Domain, SGLDSampler, SGLDSpec
from nesy_gedi.ssl.terms import energy, generative_loss, invariance_loss, prior_loss, sinkhorn


def one_hot_logits(assignment: list[int], c: int, scale: float = 20.0) -> torch.Tensor:
    return nn.functional.one_hot(torch.tensor(assignment), c).float() * scale


def test_prior_is_smallest_at_a_uniform_marginal_and_large_when_collapsed():
    c = 4
    uniform = one_hot_logits([0, 1, 2, 3] * 8, c)
    collapsed = one_hot_logits([2] * 32, c)
    assert prior_loss(uniform).item() == pytest.approx(c * math.log(c), abs=1e-3)
    assert prior_loss(collapsed).item() > prior_loss(uniform).item() + 20
    skewed = one_hot_logits([0, 0, 0, 1, 2, 3] * 5, c, scale=3.0)
    assert prior_loss(uniform).item() < prior_loss(skewed).item() < prior_loss(collapsed).item()


def test_invariance_is_small_for_agreeing_views_and_large_for_permuted_ones():
    c = 5
    a = one_hot_logits([0, 1, 2, 3, 4] * 4, c)
    permuted = one_hot_logits([1, 2, 3, 4, 0] * 4, c)
    assert invariance_loss(a, a.clone()).item() < 1e-6
    assert invariance_loss(a, permuted).item() > 10
    assert invariance_loss(a, permuted, symmetric=True).item() > 10


def test_no_stop_gradient_in_the_invariance_term():
    a = torch.randn(8, 3, requires_grad=True)
    b = torch.randn(8, 3, requires_grad=True)
    invariance_loss(a, b).backward()
    assert a.grad.abs().sum() > 0 and b.grad.abs().sum() > 0


def test_generative_gradient_lowers_data_energy_and_raises_negative_energy():
    data = torch.randn(16, 3, requires_grad=True)
    negatives = torch.randn(16, 3, requires_grad=True)
    generative_loss(data, negatives).backward()
    with torch.no_grad():  # one descent step on the logits themselves
        assert energy(data - 0.1 * data.grad).mean() < energy(data).mean()
        assert energy(negatives - 0.1 * negatives.grad).mean() > energy(negatives).mean()
    # and through a network: the data's energy falls relative to the negatives'
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 16), nn.SiLU(), nn.Linear(16, 3))
    x, x_neg = torch.randn(64, 2) * 0.1 + 1.0, torch.rand(64, 2) * 4 - 2
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05)
    gap = [energy(net(x_neg)).mean().item() - energy(net(x)).mean().item()]
    for _ in range(5):
        optimizer.zero_grad()
        generative_loss(net(x), net(x_neg)).backward()
        optimizer.step()
    gap.append(energy(net(x_neg)).mean().item() - energy(net(x)).mean().item())
    assert gap[1] > gap[0]


def _sampler(steps: int = 5, reinit: float = 0.05, buffer: int = 500, seed: int = 0) -> SGLDSampler:
    domain = Domain(torch.full((2,), -3.0), torch.full((2,), 3.0))
    spec = SGLDSpec(steps=steps, step_size=0.1, noise=0.01, buffer_size=buffer, reinit=reinit)
    return SGLDSampler(spec, domain, torch.Generator().manual_seed(seed))


def test_sgld_steps_lower_the_energy_of_samples_on_a_fixed_network():
    class Wells(nn.Module):  # four energy wells: logits_k(x) = -|x - centre_k|^2
        def __init__(self) -> None:
            super().__init__()
            self.centres = nn.Parameter(torch.tensor([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]]))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return -torch.cdist(x, self.centres).pow(2)

    net = Wells()
    sampler = _sampler(steps=20, reinit=0.0)
    params_before = [p.clone() for p in net.parameters()]
    with torch.no_grad():
        start_energy = energy(net(sampler.buffer)).mean().item()  # chains start from this uniform buffer
    samples = sampler.sample(net, net, 200)
    with torch.no_grad():
        assert energy(net(samples)).mean().item() < start_energy - 1.0
    assert all(torch.equal(p, q) for p, q in zip(params_before, net.parameters(), strict=True))
    assert all(p.grad is None for p in net.parameters()) and net.training
    assert samples.min() >= -3 and samples.max() <= 3


def test_buffer_reinitialisation_rate_is_honoured():
    net = nn.Linear(2, 2)
    for rate in (0.0, 0.3, 1.0):
        sampler = _sampler(steps=1, reinit=rate, buffer=100_000)
        sampler.spec = sampler.spec.model_copy(update={"step_size": 0.0, "noise": 0.0})
        sampler.buffer.fill_(0.5)  # restarted chains are uniform noise, kept ones stay at 0.5
        samples = sampler.sample(net, net, 20_000)
        restarted = (samples != 0.5).any(-1).float().mean().item()
        assert restarted == pytest.approx(rate, abs=0.015)


def test_sinkhorn_codes_are_equipartitioned_assignments():
    scores = torch.nn.functional.normalize(torch.randn(64, 4), dim=-1)  # cosine scores, as SwAV's
    scores[:, 0] += 0.5  # most samples prefer cluster 0
    codes = sinkhorn(scores, epsilon=0.05, iterations=3)
    assert torch.allclose(codes.sum(1), torch.ones(64), atol=1e-5)
    raw = torch.softmax(scores / 0.05, -1).mean(0)
    assert (codes.mean(0) - 0.25).abs().max() < (raw - 0.25).abs().max() / 2
    converged = sinkhorn(scores, epsilon=0.05, iterations=200)
    assert torch.allclose(converged.mean(0), torch.full((4,), 0.25), atol=1e-3)


def _context(seed: int, kind: str = "images") -> SSLContext:
    generator = torch.Generator().manual_seed(seed)
    shape = (1, 28, 28) if kind == "images" else (2,)
    domain = Domain(torch.full(shape, -1.0), torch.full(shape, 1.0))
    return SSLContext(domain, make_views(AugmentSpec(), kind, generator), SGLDSpec(steps=2, buffer_size=64), generator)


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_every_objective_gives_finite_terms_and_gradients_on_images(name, mnist):
    torch.manual_seed(0)
    net = build_network("mnist_lenet", 10)
    objective = make_objective(name, {}, net, _context(0))
    x = torch.tensor(mnist.train.images[:32], dtype=torch.float32).div(127.5).sub(1).unsqueeze(1)
    terms, info = objective.loss_terms(x, step=0)
    loss = sum(terms.values())
    loss.backward()
    assert terms and all(torch.isfinite(t) for t in terms.values())
    assert all(math.isfinite(v) for v in info.values())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_same_seed_same_result():
    def once() -> list[float]:
        torch.manual_seed(3)
        net = build_network("mlp_2d", 2)
        objective = make_objective("gedi", {}, net, _context(3, "points"))
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
        values = []
        for step in range(5):
            terms, _ = objective.loss_terms(torch.randn(32, 2, generator=torch.Generator().manual_seed(step)), step)
            loss = sum(terms.values())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            values.append(loss.item())
        return values

    assert once() == once()


def test_gen_every_samples_and_adds_the_generative_term_on_every_kth_step_only():
    net = build_network("mlp_2d", 2)
    objective = make_objective("gedi", {"gen_every": 3}, net, _context(0, "points"))
    drawn = []
    sample = objective.sampler.sample
    objective.sampler.sample = lambda *args: drawn.append(1) or sample(*args)
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(0))
    with_gen = ["gen" in objective.loss_terms(x, step)[0] for step in range(7)]
    assert with_gen == [True, False, False, True, False, False, True]
    assert len(drawn) == 3  # the sampler runs only on the steps with the term


def test_misspelt_or_mistyped_method_args_are_clear_errors():
    from nesy_gedi.errors import UserError

    net = build_network("mlp_2d", 2)
    with pytest.raises(UserError, match="method_args.w_gen_typo: no such key"):
        make_objective("gedi-nogen", {"w_gen_typo": 1.0}, net, _context(0, "points"))
    with pytest.raises(UserError, match="method_args.data_noise"):
        make_objective("jem", {"data_noise": "some"}, net, _context(0, "points"))


def test_stroke_width_filter_is_a_3x3_max_filter():
    from nesy_gedi.ssl.augment import _max_filter

    x = torch.rand(4, 1, 28, 28) * 2 - 1
    assert torch.equal(_max_filter(x), nn.functional.max_pool2d(x, 3, stride=1, padding=1))


def test_stroke_width_dilates_or_erodes_each_image_by_its_drawn_amount():
    from nesy_gedi.ssl.augment import StrokeWidth

    x = torch.rand(32, 1, 28, 28) * 2 - 1
    out = StrokeWidth(0.7, torch.Generator().manual_seed(3))(x)
    amount = (torch.rand(32, 1, 1, 1, generator=torch.Generator().manual_seed(3)) * 2 - 1) * 0.7
    dilated = nn.functional.max_pool2d(x, 3, stride=1, padding=1)
    eroded = -nn.functional.max_pool2d(-x, 3, stride=1, padding=1)
    expected = x + amount.abs() * (torch.where(amount > 0, dilated, eroded) - x)
    assert (amount > 0).any() and (amount < 0).any()
    assert torch.equal(out, expected)  # exactly: runs made before the one-pass filter repeat bit for bit


def test_views_are_per_image_and_stay_in_range():
    x = torch.full((64, 1, 28, 28), -1.0)
    x[:, :, 10:18, 12:16] = 1.0  # a bar
    generator = torch.Generator().manual_seed(0)
    views = make_views(
        AugmentSpec(rotation=20, translate=0.15, scale=[0.8, 1.2], stroke=0.7, noise=0.0), "images", generator
    )
    out = views(x)
    assert out.shape == x.shape and out.min() >= -1 - 1e-5 and out.max() <= 1 + 1e-5
    assert len({tuple(o.flatten().tolist()) for o in out}) == 64  # every image got its own transform


def test_flip_mirrors_each_image_with_its_own_draw_and_is_off_for_digits():
    from nesy_gedi.ssl.augment import PerSampleFlip

    x = torch.rand(64, 1, 28, 28)
    out = PerSampleFlip(0.5, torch.Generator().manual_seed(1))(x)
    mirrored = torch.tensor([torch.equal(o, i.flip(-1)) for o, i in zip(out, x, strict=True)])
    kept = torch.tensor([torch.equal(o, i) for o, i in zip(out, x, strict=True)])
    assert (mirrored ^ kept).all() and 16 < int(mirrored.sum()) < 48
    assert AugmentSpec().flip == 0.0  # a mirrored digit is no digit: off unless a task asks
    assert torch.equal(PerSampleFlip(0.0, torch.Generator())(x), x)


def test_brightness_scales_each_image_by_its_own_factor_and_keeps_the_black_background():
    from nesy_gedi.ssl.augment import Brightness

    x = torch.rand(64, 1, 28, 28) * 2 - 1
    x[:, :, 0, 0], x[:, :, 0, 1] = -1.0, 1.0  # black background, one white pixel
    out = Brightness(0.5, torch.Generator().manual_seed(4))(x)
    factor = (out[:, :, 0, 1] + 1) / 2  # per image, one factor in [0.5, 1]
    assert torch.allclose(out + 1, (x + 1) * factor.view(-1, 1, 1, 1), atol=1e-6)
    assert factor.min() >= 0.5 - 1e-6 and factor.max() <= 1 + 1e-6 and factor.std() > 0.05
    assert torch.equal(out[:, :, 0, 0], x[:, :, 0, 0])
    assert AugmentSpec().brightness == 0.0
