"""The per-point Gaussian head (geossl.gaussians.head): its activations, ranges and first prediction."""

import pytest
import torch

from geossl.errors import ConfigError
from geossl.gaussians.head import GaussianHead, stack_gaussians
from geossl.ops import rasterize_gaussians


def test_the_first_prediction_sits_on_the_points_with_the_initial_scale():
    head = GaussianHead(8, scale_init=0.03)
    points = torch.randn(50, 3)
    g = head(points, torch.randn(50, 8))
    assert torch.equal(g.means, points) and torch.allclose(g.scales, torch.full((50, 3), 0.03))
    assert torch.equal(g.quats, torch.tensor([[1.0, 0, 0, 0]]).expand(50, 4))
    assert torch.allclose(g.opacities, torch.full((50,), 0.5)) and torch.allclose(g.colors, torch.full((50, 3), 0.5))


def test_the_first_colours_are_the_base_colours_and_stay_in_range():
    head = GaussianHead(8)
    base = torch.tensor([[0.2, 0.5, 0.9], [0.0, 1.0, 0.5]])
    g = head(torch.zeros(2, 3), torch.randn(2, 8), base)
    assert torch.allclose(g.colors, torch.tensor([[0.2, 0.5, 0.9], [0.01, 0.99, 0.5]]), atol=1e-6)  # clamped to logit range
    torch.nn.init.normal_(head.mlp[-1].weight, std=50.0)
    g = head(torch.zeros(2, 3), torch.randn(2, 8), base)
    assert ((g.colors >= 0) & (g.colors <= 1)).all()


def test_activations_keep_every_parameter_in_its_range_for_any_raw_output():
    head = GaussianHead(4, offset_scale=0.1, min_scale=0.005, scale_init=0.02, max_scale=0.3)
    torch.nn.init.normal_(head.mlp[-1].weight, std=50.0)  # raw outputs far beyond every bound
    points, features = torch.randn(400, 3), torch.randn(400, 4)
    g = head(points, features)
    assert (g.means - points).abs().max() <= 0.1 + 1e-6
    assert g.scales.min() >= 0.005 - 1e-7 and g.scales.max() <= 0.3 + 1e-6
    assert torch.allclose(g.quats.norm(dim=-1), torch.ones(400))
    assert ((g.opacities >= 0) & (g.opacities <= 1)).all() and ((g.colors >= 0) & (g.colors <= 1)).all()
    assert g.is_finite() and len(g[:10].means) == 10


def test_the_head_renders_and_takes_gradients_through_the_rasterizer():
    head = GaussianHead(6)
    points = torch.tensor([[0.0, 0.0, 2.0], [0.1, 0.05, 2.2]])
    g = head(points, torch.randn(2, 6))
    K = torch.tensor([[[50.0, 0, 16], [0, 50.0, 12], [0, 0, 1]]])
    image, _, _ = rasterize_gaussians(g.means, g.quats, g.scales, g.opacities, g.colors, torch.eye(4)[None], K, 32, 24)
    image.sum().backward()
    assert image.shape[-3:] == (24, 32, 3) and image.amax() > 0.1  # the Gaussians cover the image centre
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in head.parameters())


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="min_scale <= scale_init <= max_scale"):
        GaussianHead(4, scale_init=1.0, max_scale=0.5)


def test_stacking_pads_with_invisible_copies_and_keeps_gradients():
    head = GaussianHead(8, 16)
    small = head(torch.rand(3, 3), torch.randn(3, 8))
    large = head(torch.rand(5, 3), torch.randn(5, 8))
    g = stack_gaussians([small, large])
    assert g.means.shape == (2, 5, 3) and g.colors.shape == (2, 5, 3) and g.opacities.shape == (2, 5)
    assert torch.equal(g.means[0, 3:], small.means[:1].expand(2, 3)) and (g.opacities[0, 3:] == 0).all()
    assert torch.equal(g.opacities[1], large.opacities)
    g.colors.sum().backward()
    assert all(p.grad is not None for p in head.parameters() if p.requires_grad)
    with pytest.raises(ValueError, match="at least one Gaussian"):
        stack_gaussians([small, small[:0]])
