"""Scene encoders: shapes, per-point outputs, save/load round trip with identical outputs."""

import pytest
import torch

import geossl
from geossl.errors import ConfigError
from geossl.points import collate
from geossl.pointcloud.encoders import PointPatchTransformer, SpUNet


def _batch():
    g = torch.Generator().manual_seed(0)
    scenes = [{"coord": torch.rand(n, 3, generator=g) * torch.tensor([4.0, 3.0, 2.5]), "feat": torch.rand(n, 3, generator=g)}
              for n in (3000, 2000)]
    return collate(scenes)


@pytest.mark.parametrize("make", [lambda: SpUNet(in_dim=3, voxel_size=0.1, preset="small", out_dim=24),
                                  lambda: PointPatchTransformer(in_dim=3, centres=32, patch=16, dim=32, depth=2, heads=4)])
def test_encoder_outputs_per_point_features_and_survives_save_load(make, tmp_path):
    torch.manual_seed(0)
    enc = make().eval()
    batch = _batch()
    with torch.no_grad():
        out = enc(batch)
    assert out.shape == (5000, enc.out_dim) and torch.isfinite(out).all()
    geossl.save_encoder(enc, tmp_path / "enc.safetensors", metadata={"method": "test"})
    back = geossl.load_encoder(tmp_path / "enc.safetensors").eval()
    assert type(back) is type(enc)
    with torch.no_grad():
        assert torch.equal(back(batch), out)


def test_spunet_trains_and_its_presets_are_checked():
    enc = SpUNet(in_dim=3, voxel_size=0.2, preset="small")
    out = enc(_batch())
    out.square().mean().backward()
    assert all(p.grad is not None for p in enc.parameters() if p.requires_grad)
    assert SpUNet(preset="ponderv2").out_dim == 96
    with pytest.raises(ConfigError, match="Valid choices: ponderv2, small"):
        SpUNet(preset="huge")


def test_patch_transformer_gives_patch_features_and_refuses_tiny_scenes():
    enc = PointPatchTransformer(centres=8, patch=16, dim=32, depth=1)
    res = enc.encode(_batch())
    assert res["centres"].shape == (2, 8, 3) and res["patch_features"].shape == (2, 8, 32)
    tiny = collate([{"coord": torch.rand(10, 3), "feat": torch.rand(10, 3)}])
    with pytest.raises(ConfigError, match="needs at least"):
        enc(tiny)


def test_patch_grouping_of_a_batch_equals_scene_by_scene():
    """Scenes of different sizes are padded for batched sampling; each scene's centres and patches are what it
    gets alone (greedy farthest points from its first point, its own nearest neighbours)."""
    from geossl.ops.geometry import farthest_point_sampling, knn

    enc = PointPatchTransformer(centres=8, patch=16, dim=32, depth=1)
    batch = _batch()
    centres, nb = enc.group(batch)
    for b, s in enumerate(batch.scene_slices()):
        pts = batch.coord[s]
        alone = pts[farthest_point_sampling(pts, 8)]
        assert torch.equal(centres[b], alone)
        assert torch.equal(nb[b] - s.start, knn(alone, pts, 16)[1])


def test_visible_tokens_alone_decide_the_visible_codes():
    """A masked autoencoder's encoder sees only the visible tokens: changing a hidden patch's points
    leaves the visible patches' codes unchanged."""
    torch.manual_seed(0)
    enc = PointPatchTransformer(centres=8, patch=16, dim=32, depth=2).eval()
    batch = _batch()
    visible = torch.zeros(2, 8, dtype=torch.bool)
    visible[:, :5] = True
    with torch.no_grad():
        a = enc.encode(batch, visible)["patch_features"]
        centres, nb = enc.group(batch)
        hidden_points = nb[0, 7].unique()
        shown = nb[0, :5].unique()
        only_hidden = hidden_points[~torch.isin(hidden_points, shown)]
        batch.feat[only_hidden] = 0.0  # recolour points that only a hidden patch holds
        b = enc.encode(batch, visible)["patch_features"]
    assert a.shape == (2, 5, 32) and len(only_hidden) > 0 and torch.allclose(a, b)


def test_per_point_features_interpolate_the_nearest_centres():
    centres = torch.tensor([[[0.0, 0, 0], [1.0, 0, 0], [0.0, 5, 0]]])
    feats = torch.tensor([[[1.0], [3.0], [100.0]]])
    batch = collate([{"coord": torch.tensor([[0.0, 0, 0], [0.5, 0, 0], [0.25, 0, 0]]), "feat": torch.zeros(3, 3)}])
    out = PointPatchTransformer.interpolate(batch, centres, feats, k=2)
    w = torch.tensor([1 / 0.0625, 1 / 0.5625])  # 1 / squared distances of (0.25, 0, 0) to the two nearest centres
    assert torch.allclose(out[:, 0], torch.tensor([1.0, 2.0, float((w * torch.tensor([1.0, 3.0])).sum() / w.sum())]), atol=1e-4)
