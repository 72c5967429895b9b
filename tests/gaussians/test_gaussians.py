"""Gaussian sets: initialisation, PLY round trip, metrics, and fitting a synthetic scene."""

import math
from types import SimpleNamespace

import pytest
import torch

from geossl.gaussians.fit import FitConfig, fit_gaussians, voxel_downsample
from geossl.gaussians.metrics import psnr, ssim
from geossl.gaussians.model import GaussianSet, GaussianSetError
from geossl.gaussians.ply import load_ply, save_ply
from geossl.ops.camera import invert_pose


def test_from_points_scales_by_neighbour_distance_and_colours_by_sh_dc():
    grid = torch.stack(torch.meshgrid(*[torch.arange(4.0)] * 3, indexing="ij"), -1).reshape(-1, 3) * 0.5
    colors = torch.rand(len(grid), 3)
    g = GaussianSet.from_points(grid, colors, sh_degree=1, opacity=0.3)
    assert torch.allclose(g.scales, torch.full((64, 3), 0.5))  # the 3 nearest grid neighbours are 0.5 away
    assert torch.allclose(g.opacities, torch.full((64,), 0.3)) and g.sh.shape == (64, 4, 3)
    assert torch.allclose(g.sh_dc[:, 0] * 0.28209479177387814 + 0.5, colors, atol=1e-6)
    with pytest.raises(GaussianSetError, match="at least 2"):
        GaussianSet.from_points(torch.zeros(1, 3), torch.zeros(1, 3))


def test_ply_round_trip_in_the_3dgs_layout(tmp_path):
    g = GaussianSet.from_points(torch.randn(50, 3), torch.rand(50, 3), sh_degree=2)
    with torch.no_grad():
        g.sh_rest.normal_()
        g.quats.normal_()
    save_ply(g, tmp_path / "scene.ply")
    from plyfile import PlyData

    names = [p.name for p in PlyData.read(str(tmp_path / "scene.ply"))["vertex"].properties]
    assert names[:9] == ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    assert names[9:33] == [f"f_rest_{i}" for i in range(24)] and names[33:] == ["opacity", "scale_0", "scale_1", "scale_2",
                                                                                  "rot_0", "rot_1", "rot_2", "rot_3"]
    back = load_ply(tmp_path / "scene.ply")
    assert back.sh_degree == 2
    for name in ("means", "log_scales", "quats", "opacity_logits", "sh_dc", "sh_rest"):
        assert torch.equal(getattr(back, name), getattr(g, name)), name


def test_foreign_or_corrupt_ply_is_refused(tmp_path):
    import numpy as np
    from plyfile import PlyData, PlyElement

    pts = np.zeros(3, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
    PlyData([PlyElement.describe(pts, "vertex")]).write(str(tmp_path / "cloud.ply"))
    with pytest.raises(GaussianSetError, match="not a Gaussian splat PLY"):
        load_ply(tmp_path / "cloud.ply")
    (tmp_path / "junk.ply").write_bytes(b"not a ply at all")
    with pytest.raises(GaussianSetError, match="not a readable PLY"):
        load_ply(tmp_path / "junk.ply")


def test_psnr_and_ssim_known_values():
    a = torch.rand(32, 32, 3)
    assert math.isclose(psnr(a, a + 0.1), 20.0, rel_tol=1e-4)  # MSE 0.01
    assert math.isclose(float(ssim(a, a)), 1.0, rel_tol=1e-5)
    everywhere = torch.ones(32, 32, dtype=torch.bool)
    b = torch.rand(32, 32, 3)
    assert math.isclose(float(ssim(a, b, everywhere)), float(ssim(a, b)), rel_tol=1e-5)
    left = everywhere.clone()
    left[:, 16:] = False
    c = a.clone()
    c[:, 24:] = b[:, 24:]  # differs only beyond the reach (5 px) of the left half's windows
    assert math.isclose(float(ssim(a, c, left)), 1.0, rel_tol=1e-5) and float(ssim(a, c)) < 0.9
    assert float(ssim(a, torch.rand(32, 32, 3))) < 0.2


def test_voxel_downsample_averages_each_cell():
    p = torch.tensor([[0.01, 0.01, 0.01], [0.03, 0.03, 0.03], [0.5, 0.5, 0.5]])
    c = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])
    pts, cols = voxel_downsample(p, c, 0.1)
    order = pts[:, 0].argsort()
    assert torch.allclose(pts[order], torch.tensor([[0.02] * 3, [0.5] * 3])) and torch.allclose(cols[order][0], torch.tensor([0.5, 0.5, 0]))


def _synthetic_frames(n=6, size=32):
    """Views of a known Gaussian scene (a coloured blob field in front of the cameras), with
    rendered colour and expected depth as the frames' RGB-D."""
    g = torch.Generator().manual_seed(0)
    m = 300
    truth = GaussianSet(torch.cat([(torch.rand(m, 2, generator=g) - 0.5) * 1.6, 2 + 0.3 * torch.rand(m, 1, generator=g)], 1),
                        torch.full((m, 3), math.log(0.06)), torch.tensor([[1.0, 0, 0, 0]]).repeat(m, 1),
                        torch.full((m,), 2.0), ((torch.rand(m, 3, generator=g) - 0.5) / 0.28209479177387814)[:, None])
    K = torch.tensor([[size * 1.0, 0, size / 2], [0, size * 1.0, size / 2], [0, 0, 1]])
    frames = []
    for i in range(n):
        pose = torch.eye(4)
        pose[0, 3] = 0.05 * (i - n / 2)
        with torch.no_grad():
            img = truth.render(invert_pose(pose)[None], K[None], size, size, render_mode="RGB+ED")[0][0]
        depth = torch.where(img[..., 3] > 0.5, img[..., 3], torch.zeros_like(img[..., 3]))
        frames.append(SimpleNamespace(color=img[..., :3].clamp(0, 1), depth=depth, K=K, cam_to_world=pose))
    return frames


def test_fitting_a_synthetic_scene_improves_held_out_psnr():
    frames = _synthetic_frames()
    res = fit_gaussians(frames[1:], frames[:1], FitConfig(iterations=150, eval_every=50, voxel=0.05, densify_from=20,
                                                          densify_until=100, densify_every=40, densify_grad=1e-5))
    psnrs = [h["psnr"] for h in res.history]
    assert [h["iteration"] for h in res.history] == [0, 50, 100, 150]
    assert psnrs[-1] > psnrs[0] + 3, psnrs
    assert res.gaussians.means.requires_grad and len(res.gaussians) > 0


def test_frames_without_valid_depth_are_refused():
    frames = _synthetic_frames(2)
    for f in frames:
        f.depth = torch.zeros_like(f.depth)
    with pytest.raises(GaussianSetError, match="0 valid depth pixels"):
        fit_gaussians(frames, frames, FitConfig(iterations=1))


def test_densify_clones_small_splits_large_prunes_transparent_and_keeps_adam_state():
    from geossl.gaussians.fit import _optimizer
    from geossl.gaussians.strategy import densify_and_prune

    means = torch.tensor([[0.0, 0, 2], [1.0, 0, 2], [2.0, 0, 2], [3.0, 0, 2]])
    log_scales = torch.tensor([[-5.0] * 3, [-0.5] * 3, [-5.0] * 3, [-5.0] * 3])  # small, large, small, small
    logits = torch.tensor([2.0, 2.0, -8.0, 2.0])  # the third is nearly transparent
    g = GaussianSet(means, log_scales, torch.tensor([[1.0, 0, 0, 0]]).repeat(4, 1), logits, torch.zeros(4, 1, 3))
    cfg = FitConfig(densify_grad=1e-3, prune_opacity=0.005)
    opt = _optimizer(g, cfg, extent=1.0)
    (g.means.sum() + g.log_scales.sum() + g.opacity_logits.sum() + g.sh_dc.sum()).backward()
    opt.step()
    before, stepped, large = opt.state[g.means]["exp_avg"].clone(), g.means.detach().clone(), g.log_scales[1].detach().clone()
    stats = densify_and_prune(g, opt, torch.tensor([1.0, 1.0, 0.0, 0.0]), cfg.densify_grad, cfg.prune_opacity, extent=1.0)
    assert stats == {"cloned": 1, "split": 1, "pruned": 1}
    # kept: 0 and 3; appended: the clone of 0, then two samples of 1
    assert len(g) == 5 and torch.equal(g.means[:3].detach(), stepped[[0, 3, 0]])
    assert torch.allclose(g.log_scales[3:].detach(), (large - math.log(1.6)).expand(2, 3))  # split: scale / 1.6
    assert ((g.means[3:].detach() - torch.tensor([1.0, 0, 2])).norm(dim=1) < 3).all()
    state = opt.state[g.means]["exp_avg"]
    assert opt.param_groups[0]["params"][0] is g.means and torch.equal(state[:2], before[[0, 3]]) and (state[2:] == 0).all()


def test_a_non_finite_loss_stops_the_fit_and_keeps_the_last_good_gaussians():
    frames = _synthetic_frames(3)
    frames[2].depth[:4] = 0.0  # no Gaussians start from these pixels...
    frames[2].color[:4] = float("nan")  # ...whose colour makes the loss of this view NaN
    res = fit_gaussians(frames[:3], frames[:1], FitConfig(iterations=50, eval_every=100))
    assert "non-finite loss" in res.stopped and res.iterations < 50
    assert all(torch.isfinite(p).all() for p in res.gaussians.parameters())
    assert res.history[-1]["iteration"] == res.iterations


def test_fitting_allocates_on_the_frames_device_only():
    """Under a `meta` default device, any tensor made without an explicit device lands on `meta` and cannot
    meet the CPU frames: the fit (densification and evaluation included) must run through."""
    from geossl.gaussians.fit import FitConfig, fit_gaussians
    from geossl.pointcloud.rooms import make_room

    frames = make_room(2, num_points=100, num_views=3, width=32, height=24)["frames"].frames
    cfg = FitConfig(iterations=4, eval_every=2, voxel=0.2, densify_from=1, densify_until=4, densify_every=2)
    with torch.device("meta"):
        result = fit_gaussians(frames[1:], frames[:1], cfg)
    assert result.gaussians.means.device.type == "cpu" and [h["iteration"] for h in result.history] == [0, 2, 4]


def test_point_mae_steps_allocate_on_the_batch_device_only():
    from geossl.points import collate
    from geossl.pointcloud.encoders import PointPatchTransformer
    from geossl.pointcloud.methods import PointMAE

    g = torch.Generator().manual_seed(0)
    batch = collate([{"coord": torch.rand(300, 3, generator=g), "feat": torch.rand(300, 3, generator=g)} for _ in range(2)])
    m = PointMAE(PointPatchTransformer(centres=8, patch=16, dim=32, depth=1, tokeniser=8), 3, decoder_depth=1, decoder_heads=4)
    with torch.device("meta"):
        loss = m(batch)["loss"]
        loss.backward()
        metrics = m.held_out_metrics(batch, torch.Generator().manual_seed(0))
    assert loss.device.type == "cpu" and metrics["chamfer"] > 0


def test_the_fit_device_is_auto_cpu_or_cuda():
    from geossl.errors import ConfigError
    from geossl.gaussians.run import fit_device

    assert fit_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu") and fit_device("cpu").type == "cpu"
    with pytest.raises(ConfigError, match="Valid choices: auto, cpu, cuda"):
        fit_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            fit_device("cuda")


def test_default_strategy_gathers_gradients_in_its_window_and_densifies_every_n_steps():
    """Gradients count only for steps in [densify_from, densify_until); density changes on multiples of densify_every,
    and the gathered gradients start again after each."""
    from geossl.gaussians.fit import _optimizer
    from geossl.gaussians.strategy import DefaultStrategy

    g = GaussianSet(torch.tensor([[0.0, 0, 2], [1.0, 0, 2]]), torch.full((2, 3), -5.0), torch.tensor([[1.0, 0, 0, 0]]).repeat(2, 1),
                    torch.tensor([2.0, 2.0]), torch.zeros(2, 1, 3))
    opt = _optimizer(g, FitConfig(), extent=1.0)
    strategy = DefaultStrategy(densify_from=2, densify_until=5, densify_every=2, densify_grad=0.5, prune_opacity=0.005, extent=1.0)
    state = strategy.initialize_state(g)
    means2d = torch.zeros(1, 2, 2, requires_grad=True)
    meta = {"means2d": means2d, "radii": torch.ones(1, 2, 2)}
    means2d.grad = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])  # Gaussian 0 moves 1 pixel-unit x (w/2), Gaussian 1 not at all
    assert strategy.step_post_backward(g, opt, state, 1, meta, 2, 2) is None and state["grad_count"].sum() == 0  # before
    assert strategy.step_post_backward(g, opt, state, 2, meta, 2, 2) == {"cloned": 1, "split": 0, "pruned": 0}
    assert len(g) == 3 and torch.equal(state["grad_count"], torch.zeros(3))  # state restarted for the new set
    meta = {"means2d": torch.zeros(1, 3, 2, requires_grad=True), "radii": torch.ones(1, 3, 2)}
    meta["means2d"].grad = torch.zeros(1, 3, 2)
    assert strategy.step_post_backward(g, opt, state, 3, meta, 2, 2) is None and torch.equal(state["grad_count"], torch.ones(3))
    assert strategy.step_post_backward(g, opt, state, 5, meta, 2, 2) is None and len(g) == 3  # past densify_until
