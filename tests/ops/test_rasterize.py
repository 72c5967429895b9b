"""The CPU Gaussian rasterizer against known answers, the naive dense evaluation, and gsplat's own
pure-torch projection and SH functions."""

import math

import pytest
import torch

from geossl.ops.camera import CameraError
from geossl.ops.rasterize import (RasterizeError, composite_dense, eval_sh, project_gaussians, quat_scale_to_covariance,
                                  rasterize_gaussians)

W = H = 48
F = 80.0


def _cam(n=1, dtype=torch.float32):
    K = torch.tensor([[F, 0, W / 2], [0, F, H / 2], [0, 0, 1]], dtype=dtype).repeat(n, 1, 1)
    return torch.eye(4, dtype=dtype).repeat(n, 1, 1), K


def _one(mean=(0.0, 0.0, 2.0), scale=0.05, opacity=0.8, colour=(1.0, 0.5, 0.25), dtype=torch.float32):
    return (torch.tensor([mean], dtype=dtype), torch.tensor([[1.0, 0, 0, 0]], dtype=dtype),
            torch.full((1, 3), scale, dtype=dtype), torch.tensor([opacity], dtype=dtype), torch.tensor([colour], dtype=dtype))


def _random(n, seed=0, dtype=torch.float32, spread=0.6):
    g = torch.Generator().manual_seed(seed)
    means = torch.cat([(torch.rand(n, 2, generator=g) - 0.5) * 2 * spread, 1.5 + 2 * torch.rand(n, 1, generator=g)], 1)
    quats = torch.randn(n, 4, generator=g)
    scales = 0.02 + 0.1 * torch.rand(n, 3, generator=g)
    opac = 0.2 + 0.75 * torch.rand(n, generator=g)
    cols = torch.rand(n, 3, generator=g)
    return [t.to(dtype) for t in (means, quats, scales, opac, cols)]


def test_single_isotropic_gaussian_is_the_analytic_2d_gaussian():
    means, quats, scales, opac, cols = _one()
    V, K = _cam()
    img, alpha, meta = rasterize_gaussians(means, quats, scales, opac, cols, V, K, W, H)
    assert img.shape == (1, H, W, 3) and alpha.shape == (1, H, W, 1)
    var = (F * 0.05 / 2.0) ** 2 + 0.3  # EWA: f * sigma / z, plus the 0.3 px^2 low-pass filter
    v, u = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    expected = 0.8 * torch.exp(-0.5 * ((u - W / 2) ** 2 + (v - H / 2) ** 2) / var)
    expected = torch.where(expected >= 1 / 255, expected, torch.zeros_like(expected))  # gsplat skips alpha < 1/255
    assert torch.allclose(alpha[0, ..., 0], expected, atol=1e-6)
    # peak at the projected centre (the four pixels around it), footprint of the expected radius
    assert math.isclose(float(alpha.max()), 0.8 * math.exp(-0.5 * 0.5 / var), rel_tol=1e-5)
    assert meta["radii"][0, 0].tolist() == [math.ceil(3.33 * math.sqrt(var))] * 2
    assert torch.allclose(img[0], alpha[0] * torch.tensor([1.0, 0.5, 0.25]), atol=1e-6)
    on = (alpha[0, ..., 0] > 0).nonzero()
    assert (on[:, 1].float() + 0.5 - W / 2).abs().max() <= math.sqrt(-2 * var * math.log(1 / (255 * 0.8)))


def test_two_overlapping_gaussians_composite_front_to_back():
    red, blue = (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)
    V, K = _cam()

    def render(z_red, z_blue, flip=False):
        a, b = _one((0, 0, z_red), 0.1, 0.9, red), _one((0, 0, z_blue), 0.1, 0.9, blue)
        parts = [torch.cat([x, y]) for x, y in (zip(b, a) if flip else zip(a, b))]
        return rasterize_gaussians(*parts, V, K, W, H)[0][0, H // 2, W // 2]

    # the same footprint size at the centre pixel: compare the red front / blue front orders
    near_red = render(2.0, 2.5)
    near_blue = render(2.5, 2.0)
    assert near_red[0] > near_red[2] and near_blue[2] > near_blue[0]
    # front alpha a1, back alpha a2: colour = a1 c1 + (1 - a1) a2 c2
    a1 = float(render(2.0, 50.0)[0])  # the far one is too small to reach the centre pixel's 1/255
    pix = near_red
    assert 0.85 < a1 < 0.9 and pix[2] < (1 - a1) * 0.9 + 1e-6
    assert torch.allclose(render(2.0, 2.5), render(2.0, 2.5, flip=True))  # input order does not matter


def test_tiled_rendering_equals_the_dense_evaluation_and_chunking_changes_nothing():
    means, quats, scales, opac, cols = _random(60)
    V, K = _cam()
    img, alpha, _ = rasterize_gaussians(means, quats, scales, opac, cols, V, K, W, H)
    p = project_gaussians(means, quat_scale_to_covariance(quats, scales), V[0], K[0], W, H)
    dense, dense_a = composite_dense(p["means2d"], p["conics"], p["depths"], p["radii"], opac, cols, W, H)
    assert torch.allclose(img[0], dense, atol=1e-5) and torch.allclose(alpha[0], dense_a, atol=1e-5)
    from geossl.ops.rasterize import rasterize_gaussians_torch

    small, small_a, _ = rasterize_gaussians_torch(means, quats, scales, opac, cols, V, K, W, H, tile_size=8, max_pairs=1)
    assert torch.allclose(img, small, atol=1e-6) and torch.allclose(alpha, small_a, atol=1e-6)


def test_gradcheck_tiny_float64():
    means, quats, scales, opac, cols = _random(3, seed=1, dtype=torch.float64, spread=0.2)
    scales = scales + 0.05
    V, K = _cam(dtype=torch.float64)
    V = V.clone()
    V[0, :3, 3] = torch.tensor([0.01, -0.02, 0.1], dtype=torch.float64)
    inputs = [t.clone().requires_grad_() for t in (means, quats, scales, opac, cols, V)]

    def f(m, q, s, o, c, v):
        img, alpha, _ = rasterize_gaussians(m, q, s, o, c, v, K, 12, 12, render_mode="RGB+ED")
        return img, alpha

    K = K.clone()
    K[0, :2, :] *= 12 / W  # a 12 x 12 image of the same field of view
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


def test_gaussians_behind_the_camera_or_outside_the_image_contribute_nothing():
    V, K = _cam()
    for mean in [(0.0, 0.0, -2.0), (0.0, 0.0, 0.005), (5.0, 0.0, 2.0), (0.0, -6.0, 2.0)]:
        img, alpha, meta = rasterize_gaussians(*_one(mean), V, K, W, H)
        assert alpha.abs().max() == 0 and img.abs().max() == 0 and meta["radii"].abs().max() == 0, mean
    means, quats, scales, opac, cols = [torch.cat([a, b]) for a, b in zip(_one((0, 0, 2.0)), _one((0, 0, -2.0), 0.5, 1.0))]
    both = rasterize_gaussians(means, quats, scales, opac, cols, V, K, W, H)[0]
    assert torch.equal(both, rasterize_gaussians(*_one((0, 0, 2.0)), V, K, W, H)[0])


def test_projection_agrees_with_gsplats_pure_torch_projection():
    from gsplat.cuda import _torch_impl as torch_impl
    means, quats, scales, _, _ = _random(200, seed=3, spread=2.0)
    means[:10, 2] = -1.0  # some behind the camera
    V, K = _cam(2)
    V[1, :3, :3] = torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])
    V[1, :3, 3] = torch.tensor([0.3, -0.1, 0.5])
    covars = quat_scale_to_covariance(quats, scales)
    ref_covars, _ = torch_impl._quat_scale_to_covar_preci(quats, scales, compute_preci=False)
    assert torch.allclose(covars, ref_covars, atol=1e-6)
    radii, means2d, depths, conics, _ = torch_impl._fully_fused_projection(means, covars, V, K, W, H)
    for cam in range(2):
        ours = project_gaussians(means, covars, V[cam], K[cam], W, H)
        seen = (radii[cam] > 0).all(-1)
        assert torch.equal(ours["radii"], radii[cam].int())
        assert torch.allclose(ours["means2d"][seen], means2d[cam][seen], atol=1e-4)
        assert torch.allclose(ours["conics"][seen], conics[cam][seen], rtol=1e-4, atol=1e-5)
        assert torch.allclose(ours["depths"], depths[cam])


def test_spherical_harmonics_agree_with_gsplat():
    from gsplat.cuda import _torch_impl as torch_impl
    g = torch.Generator().manual_seed(0)
    dirs, coeffs = torch.randn(50, 3, generator=g), torch.randn(50, 16, 3, generator=g)
    for degree in range(4):
        assert torch.allclose(eval_sh(degree, dirs, coeffs), torch_impl._spherical_harmonics(degree, dirs, coeffs), atol=1e-5)


def test_render_modes_depths_and_backgrounds():
    V, K = _cam()
    means, quats, scales, opac, cols = _one((0.1, 0.0, 3.0), 0.2, 0.99)
    img, alpha, _ = rasterize_gaussians(means, quats, scales, opac, cols, V, K, W, H, render_mode="RGB+ED",
                                        backgrounds=torch.tensor([[0.0, 1.0, 0.0]]))
    assert img.shape[-1] == 4
    hit = alpha[0, ..., 0] > 0.01
    assert torch.allclose(img[0, ..., 3][hit], torch.full_like(img[0, ..., 3][hit], 3.0), atol=1e-5)  # expected depth = z
    assert torch.allclose(img[0, ..., 1], 0.5 * alpha[0, ..., 0] + (1 - alpha[0, ..., 0]), atol=1e-6)  # green background
    d, a2, _ = rasterize_gaussians(means, quats, scales, opac, cols, V, K, W, H, render_mode="D")
    assert d.shape[-1] == 1 and torch.allclose(d[0, ..., 0], 3.0 * a2[0, ..., 0], atol=1e-5)  # accumulated depth
    sh = torch.zeros(1, 4, 3)
    sh[0, 0] = (torch.tensor([1.0, 0.5, 0.25]) - 0.5) / 0.28209479177387814  # degree-0 SH of the same colour
    rgb_sh = rasterize_gaussians(means, quats, scales, opac, sh, V, K, W, H, sh_degree=1)[0]
    assert torch.allclose(rgb_sh, rasterize_gaussians(means, quats, scales, opac, cols, V, K, W, H)[0], atol=1e-5)


def test_an_empty_set_renders_the_background():
    V, K = _cam(2)
    e = torch.zeros(0, 3)
    img, alpha, _ = rasterize_gaussians(e, torch.zeros(0, 4), e, torch.zeros(0), e, V, K, W, H,
                                        backgrounds=torch.tensor([[0.1, 0.2, 0.3], [1.0, 1.0, 1.0]]))
    assert img.shape == (2, H, W, 3) and alpha.abs().max() == 0
    assert torch.allclose(img[0], torch.tensor([0.1, 0.2, 0.3]).expand(H, W, 3)) and torch.equal(img[1], torch.ones(H, W, 3))


def test_bad_inputs_are_refused_with_the_reason():
    V, K = _cam()
    means, quats, scales, opac, cols = _one()
    with pytest.raises(RasterizeError, match="means has NaN or inf"):
        rasterize_gaussians(means * float("nan"), quats, scales, opac, cols, V, K, W, H)
    with pytest.raises(RasterizeError, match="opacities has NaN or inf"):
        rasterize_gaussians(means, quats, scales, opac * float("inf"), cols, V, K, W, H)
    with pytest.raises(CameraError, match="not invertible"):
        rasterize_gaussians(means, quats, scales, opac, cols, torch.zeros(1, 4, 4), K, W, H)
    bad_k = K.clone()
    bad_k[0, 0, 0] = 0.0
    with pytest.raises(CameraError, match="non-positive focal length"):
        rasterize_gaussians(means, quats, scales, opac, cols, V, bad_k, W, H)
    with pytest.raises(RasterizeError, match="Valid choices: RGB, D, ED"):
        rasterize_gaussians(means, quats, scales, opac, cols, V, K, W, H, render_mode="depth")
    with pytest.raises(RasterizeError, match="scales must have shape"):
        rasterize_gaussians(means, quats, scales[:, :2], opac, cols, V, K, W, H)
    with pytest.raises(RasterizeError, match="needs CUDA tensors"):
        rasterize_gaussians(means, quats, scales, opac, cols, V, K, W, H, backend="gsplat")
    with pytest.raises(RasterizeError, match="all-zero quaternions"):
        rasterize_gaussians(means, quats * 0, scales, opac, cols, V, K, W, H)


@pytest.mark.parametrize("mode", ["RGB", "RGB+ED"])
def test_compiled_compositor_equals_the_pytorch_oracle_in_values_and_gradients(mode):
    from geossl.ops.composite_cpu import load_extension
    from geossl.ops.rasterize import rasterize_gaussians_torch

    assert load_extension() is not None, "the C++/OpenMP compositor must build on this machine"
    means, quats, scales, opac, cols = _random(400, seed=4, spread=0.8)
    V, K = _cam(2)
    V[1, :3, 3] = torch.tensor([0.2, 0.1, 0.3])
    g = torch.Generator().manual_seed(9)
    grad_img = torch.randn(2, H, W, 3 if mode == "RGB" else 4, generator=g)
    grad_alpha = torch.randn(2, H, W, 1, generator=g)
    results = {}
    for comp in ("torch", "cpp"):
        params = [t.clone().requires_grad_() for t in (means, quats, scales, opac, cols)]
        img, alpha, _ = rasterize_gaussians_torch(*params, V, K, W, H, render_mode=mode, compositor=comp,
                                                  backgrounds=torch.tensor([[0.2, 0.3, 0.4]] * 2))
        ((img * grad_img).sum() + (alpha * grad_alpha).sum()).backward()
        results[comp] = (img.detach(), alpha.detach(), [p.grad for p in params])
    (img_t, a_t, g_t), (img_c, a_c, g_c) = results["torch"], results["cpp"]
    assert torch.allclose(img_t, img_c, atol=1e-4) and torch.allclose(a_t, a_c, atol=1e-5)
    for name, x, y in zip(["means", "quats", "scales", "opacities", "colors"], g_t, g_c):
        assert (x - y).abs().max() <= 1e-4 * x.abs().max() + 1e-6, name
    with pytest.raises(RasterizeError, match="Valid choices: auto, cpp, torch"):
        rasterize_gaussians_torch(means, quats, scales, opac, cols, V, K, W, H, compositor="numba")


def test_gaussians_on_the_camera_plane_get_finite_zero_gradients():
    # a Gaussian at z ~ 0 used to give inf projections whose zero gradients turned into NaN
    means = torch.tensor([[0.0, 0, 2.0], [0.1, 0, 1e-13], [0.0, 0.0, -1.0], [0.2, 0.1, 0.0]], requires_grad=True)
    rest = [torch.tensor([[1.0, 0, 0, 0]] * 4), torch.full((4, 3), 0.1), torch.full((4,), 0.5), torch.rand(4, 3)]
    rest = [t.requires_grad_() for t in rest]
    V, K = _cam()
    img, _, _ = rasterize_gaussians(means, *rest, V, K, W, H)
    img.sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in [means, *rest])
    assert means.grad[1:].abs().max() == 0 and rest[1].grad[1:].abs().max() == 0


def test_a_batch_of_scenes_renders_in_one_call_as_each_scene_alone():
    """Two scenes with two cameras each, batched ``[2, N, ...]``: the same images, alphas and gradients as two
    unbatched calls; a zero-opacity Gaussian (padding) changes nothing; mismatched batch shapes are refused."""
    scenes = [_random(40, seed=s) for s in (1, 2)]
    V, K = _cam(2)
    V[1, 0, 3] = 0.2  # the second camera moved sideways
    batched = [torch.stack([sc[i] for sc in scenes]).requires_grad_() for i in range(5)]
    img, alpha, meta = rasterize_gaussians(*batched, torch.stack([V, V]), torch.stack([K, K]), W, H, render_mode="RGB+ED")
    assert img.shape == (2, 2, H, W, 4) and alpha.shape == (2, 2, H, W, 1) and meta["means2d"].shape == (2, 2, 40, 2)
    img.sum().backward()
    for b, sc in enumerate(scenes):
        alone = [t.clone().requires_grad_() for t in sc]
        one, one_alpha, _ = rasterize_gaussians(*alone, V, K, W, H, render_mode="RGB+ED")
        one.sum().backward()
        assert torch.equal(img[b], one) and torch.equal(alpha[b], one_alpha)
        for t_batched, t_alone in zip(batched, alone):
            assert torch.allclose(t_batched.grad[b], t_alone.grad, rtol=1e-4, atol=1e-5)
    padded = [torch.cat([t, t[:, :1]], 1) for t in (x.detach() for x in batched)]
    padded[3][:, -1] = 0.0  # opacity of the padding Gaussian
    img_padded, _, _ = rasterize_gaussians(*padded, torch.stack([V, V]), torch.stack([K, K]), W, H, render_mode="RGB+ED")
    assert torch.equal(img_padded, img.detach())
    backgrounds = torch.rand(2, 2, 3)
    img_bg, _, _ = rasterize_gaussians(*padded, torch.stack([V, V]), torch.stack([K, K]), W, H, backgrounds=backgrounds)
    for b, sc in enumerate(scenes):
        assert torch.equal(img_bg[b], rasterize_gaussians(*sc, V, K, W, H, backgrounds=backgrounds[b])[0])
    with pytest.raises(RasterizeError, match="viewmats must have the same leading dimensions"):
        rasterize_gaussians(*(t.detach() for t in batched), V, K, W, H)
    with pytest.raises(RasterizeError, match="empty batch"):
        rasterize_gaussians(*(t.detach()[:0] for t in batched), torch.stack([V, V])[:0], torch.stack([K, K])[:0], W, H)
