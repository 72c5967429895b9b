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
