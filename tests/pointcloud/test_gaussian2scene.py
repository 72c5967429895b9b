"""Gaussian2Scene (geossl.pointcloud.methods.gaussian2scene): stage switching, a stage-2 loss that falls on one
room, defined behaviour for views that see nothing and for non-finite Gaussians, the CLI end to end with a
held-out views PNG, and a run resumed across the stage boundary equal to an uninterrupted one."""

import json

import pytest
import torch

from geossl.errors import ConfigError
from geossl.pointcloud.datasets import rooms
from geossl.pointcloud.encoders.patch_transformer import PointPatchTransformer
from geossl.pointcloud.methods.gaussian2scene import Gaussian2Scene, point_baseline, supervised_pixels
from geossl.pointcloud.transforms import TransformConfig
from geossl.points import collate
from tests.pointcloud.test_pimae import TINY
from tests.conftest import run_killed_after_epoch


@pytest.fixture(scope="module")
def room():
    ds = rooms(split="train", views=2, num_views=2, width=64, height=48, num_points=4096)
    ds.transform = TransformConfig(points=1024, budget="subsample").train()
    return collate([ds[(0, 0)]])


def _model(batch, **kwargs):
    torch.manual_seed(0)
    enc = PointPatchTransformer(in_dim=batch.feat.shape[1], centres=16, patch=16, dim=32, depth=2, heads=2, tokeniser=16)
    return Gaussian2Scene(enc, batch.feat.shape[1], image_patch=16, decoder_depth=1, decoder_heads=2, render_width=32,
                          render_height=24, **kwargs)


def test_the_stage_follows_the_epoch_and_stage_two_losses_fall_on_one_room(room):
    model = _model(room, stage1_epochs=2)
    model.before_epoch(1)
    assert model.stage == 1 and set(model(room)) == {"loss", "chamfer", "image_mse"}
    model.before_epoch(2)
    assert model.stage == 2
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    first = last = None
    for step in range(25):
        out = model(room, torch.Generator().manual_seed(step))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        first = first or {k: float(v.detach()) for k, v in out.items()}
        last = {k: float(v.detach()) for k, v in out.items()}
    assert {"render_rgb", "render_depth", "gaussian_position"} <= set(last)
    assert last["loss"] < 0.8 * first["loss"] and last["render_rgb"] < first["render_rgb"]
    metrics = model.held_out_metrics(room, torch.Generator().manual_seed(0))
    assert set(metrics) == {"render_psnr", "render_ssim", "baseline_psnr", "baseline_ssim"}
    assert all(v == v for v in metrics.values())


def test_gaussians_start_from_visible_points_colours_and_grey_elsewhere_and_nothing_hidden_sees_every_point(room):
    model = _model(room)  # the head's last layer starts at zero: Gaussians on their points, colours = base colours
    rec = model.reconstruct(room, torch.Generator().manual_seed(0))
    g = model.gaussians(rec)[0]
    hidden = rec["point_hidden"][0][:, None].expand(-1, rec["local"].shape[2]).reshape(-1)
    assert 0 < int(hidden.sum()) < len(hidden)
    colours = rec["local_feat"][0, ..., :3].reshape(-1, 3)
    assert torch.allclose(g.colors[~hidden], colours[~hidden].clamp(0.01, 0.99), atol=1e-5)
    assert torch.allclose(g.colors[hidden], torch.full_like(g.colors[hidden], 0.5))
    rec = model.reconstruct(room, mask=False)
    assert not rec["point_hidden"].any() and float(rec["loss"].detach()) == 0.0
    g = model.gaussians(rec)[0]  # every Gaussian on a real input point, with that point's colour
    points = (rec["centres"][:, :, None] + rec["local"])[0].reshape(-1, 3)
    assert torch.allclose(g.means, points) and torch.allclose(g.colors, rec["local_feat"][0, ..., :3].reshape(-1, 3).clamp(0.01, 0.99), atol=1e-5)
    d = torch.cdist(g.means, room.coord, compute_mode="donot_use_mm_for_euclid_dist").min(1).values
    assert d.max() < 1e-5


def test_the_point_baseline_is_one_isotropic_gaussian_per_point_at_its_neighbour_distance():
    points = torch.tensor([[0.0, 0.0, 0.0], [0.3, 0.0, 0.0], [0.3, 0.4, 0.0]])
    g = point_baseline(points, torch.tensor([[1.0, 0.0, 0.0]] * 3))
    assert torch.allclose(g.scales[:, 0], torch.tensor([0.3, 0.3, 0.4])) and torch.equal(g.scales[:, 0], g.scales[:, 2])
    assert torch.equal(g.means, points) and (g.opacities == 1).all()


def test_views_that_see_no_point_give_a_finite_loss_and_nan_gaussians_give_a_nan_loss(room):
    model = _model(room, stage1_epochs=0)
    views = room.views
    blind = type(views)(views.color, views.depth, views.K.clone(), views.cam_to_world)
    blind.K[..., 0, 2] += 1e5  # the principal point far off the image: every point projects outside it
    import dataclasses

    out = model(dataclasses.replace(room, views=blind))
    assert torch.isfinite(out["loss"])  # no alignment (image masks drawn at random), an empty render
    torch.nn.init.constant_(model.head.mlp[-1].bias, float("nan"))
    assert torch.isnan(model(room)["loss"])  # the engine stops on it and keeps the last good checkpoint


def test_supervised_pixels_are_those_whose_surface_is_near_a_point():
    """A camera at the origin looking at a wall 2 m away (f = 10 px, 20x10 pixels of 0.2 m on the wall); points on
    the wall cover x in [-1, 0], y in [-0.5, 0.5]: pixel columns 5-9 and rows 2-7 land within 5 cm of them."""
    K = torch.tensor([[10.0, 0.0, 10.0], [0.0, 10.0, 5.0], [0.0, 0.0, 1.0]])
    depth = torch.full((10, 20), 2.0)
    depth[4, 6] = 0.0  # no depth: never supervised
    x, y = torch.meshgrid(torch.linspace(-1, 0, 101), torch.linspace(-0.5, 0.5, 101), indexing="ij")
    points = torch.stack([x.reshape(-1), y.reshape(-1), torch.full((101 * 101,), 2.0)], 1)
    mask = supervised_pixels(depth[None, None], K[None, None], torch.eye(4)[None, None], [points], 0.05)[0, 0]
    expected = torch.zeros(10, 20, dtype=torch.bool)
    expected[2:8, 5:10] = True
    expected[4, 6] = False
    assert torch.equal(mask, expected)


def test_a_render_radius_scores_the_pixels_near_the_points_only(room):
    model = _model(room, stage1_epochs=0, render_radius=0.1)
    out = model(room)
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and out["render_rgb"] > 0
    metrics = model.held_out_metrics(room, torch.Generator().manual_seed(0))
    assert 0 < metrics["supervised_share"] < 1 and metrics["render_psnr"] == metrics["render_psnr"]
    import dataclasses

    with pytest.raises(ConfigError, match="render_radius=-0.1"):
        _model(room, render_radius=-0.1)
    far = dataclasses.replace(room, coord=room.coord + 100.0)  # no pixel's surface near any point
    assert torch.isfinite(model(far)["loss"])
    metrics = model.held_out_metrics(far, torch.Generator().manual_seed(0))
    assert metrics["supervised_share"] == 0 and metrics["render_psnr"] != metrics["render_psnr"]  # NaN: nothing scored


def test_too_few_views_are_refused(room):
    model = _model(room, input_views=2)
    with pytest.raises(ConfigError, match="more than scene.input_views=2 posed views"):
        model(room)


G2S = ["scene=gaussian2scene", "dataset.views=2", "scene.render_width=32", "scene.render_height=24", "scene.stage1_epochs=1",
       "scene.head_hidden=16", "eval=none"]


def test_cli_runs_both_stages_writes_held_out_views_and_resumes_across_the_boundary(tmp_path, monkeypatch):
    from geossl import cli

    args = ["pretrain", "dataset=rooms", *[o for o in TINY if not o.startswith("eval.")], *G2S]
    assert cli.main([*args, f"run_dir={tmp_path / 'full'}"]) == 0
    summary = json.loads((tmp_path / "full" / "summary.json").read_text())
    assert summary["method"] == "gaussian2scene" and {"render_rgb", "gaussian_position"} <= set(summary["final_losses"])
    assert summary["test_render_psnr"] > 0 and summary["test_baseline_psnr"] > 0
    from PIL import Image

    assert Image.open(summary["held_out_views_png"]).size == (64, 24 * 2)  # rendered | real; a row per view of 2 test rooms
    assert run_killed_after_epoch(monkeypatch, 1, lambda: cli.main([*args, f"run_dir={tmp_path / 'cut'}"])) == 130  # after stage 1
    assert cli.main([*args, f"trainer.resume={tmp_path / 'cut'}"]) == 0
    full = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)
    cut = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)
    assert full["epoch"] == cut["epoch"] == 2
    for k, v in full["model"].items():
        assert torch.equal(v, cut["model"][k]), k
    assert cli.main(["pretrain", "dataset=rooms", *[o for o in TINY if not o.startswith("eval.")], *G2S[:1], "dataset.views=1",
                     "eval=none", f"run_dir={tmp_path / 'few'}"]) == 2


def test_a_per_point_encoder_runs_stage_two_alone(room):
    from geossl.pointcloud.encoders.spunet import SpUNet

    torch.manual_seed(0)
    encoder = SpUNet(in_dim=room.feat.shape[1], voxel_size=0.1, out_dim=16)
    with pytest.raises(ConfigError, match="set scene.stage1_epochs=0"):
        Gaussian2Scene(encoder, room.feat.shape[1], stage1_epochs=3)
    model = Gaussian2Scene(encoder, room.feat.shape[1], stage1_epochs=0, render_width=32, render_height=24)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    losses = []
    for step in range(15):
        out = model(room)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["loss"].item())
    assert "chamfer" not in out and losses[-1] < 0.8 * losses[0]
    assert len(model.held_out_views(room, torch.Generator())) == 1


def test_a_render_size_that_cannot_fit_is_refused_by_its_keys():
    """scene.render_width=100000 x scene.render_height=100000 (about 240 GB of images) is refused when the method is
    built, before any batch (issue 45)."""
    from geossl.errors import ConfigError
    from geossl.pointcloud.encoders import PointPatchTransformer
    from geossl.pointcloud.methods.gaussian2scene import Gaussian2Scene

    enc = PointPatchTransformer(centres=8, patch=16, dim=32, depth=1, tokeniser=8)
    with pytest.raises(ConfigError, match="scene.render_width=100000 x scene.render_height=100000 would take at least"):
        Gaussian2Scene(enc, 3, render_width=100_000, render_height=100_000)
