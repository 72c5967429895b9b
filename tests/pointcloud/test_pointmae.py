"""Point-MAE: masking, the Chamfer loss on hidden patches, the copy baseline, and a loss that falls."""

import pytest
import torch

from geossl.errors import ConfigError
from geossl.points import collate
from geossl.pointcloud.encoders import PointPatchTransformer, SpUNet
from geossl.pointcloud.methods import PointMAE


def _scene(n=600, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"coord": torch.rand(n, 3, generator=g) * torch.tensor([3.0, 3.0, 1.0]), "feat": torch.rand(n, 3, generator=g)}


def _method(**kw):
    torch.manual_seed(0)
    enc = PointPatchTransformer(centres=10, patch=16, dim=32, depth=1, heads=4, tokeniser=8)
    return PointMAE(enc, 3, decoder_depth=1, decoder_heads=4, **kw)


def test_masks_hide_the_same_share_of_patches_in_every_scene():
    m = _method(mask_ratio=0.6)
    mask = m.random_mask(5, torch.Generator().manual_seed(0))
    assert mask.shape == (5, 10) and mask.sum(1).tolist() == [6] * 5  # int(0.6 * 10), as the reference
    assert not torch.equal(mask[0], mask[1])
    assert torch.equal(mask, m.random_mask(5, torch.Generator().manual_seed(0)))


def test_the_loss_is_the_chamfer_distance_of_the_hidden_patches_and_it_falls():
    m = _method()
    batch = collate([_scene(seed=0), _scene(seed=1)])
    out = m(batch)
    assert set(out) == {"loss", "chamfer"} and out["loss"] > 0
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    first = None
    for step in range(60):
        torch.manual_seed(step % 3)  # a few fixed masks: the model can fit them
        loss = m(batch)["loss"]
        first = first if first is not None else float(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.5 * first


def test_held_out_metrics_and_the_copy_baseline_on_known_answers():
    """Ten far-apart clusters of 16 copies of one point: each patch is one cluster, all its points at its
    centre, so copying any visible patch reconstructs a hidden one exactly (Chamfer 0); the model's distance
    is, per hidden patch, the mean squared norm of its predicted points plus the smallest one."""
    m = _method()
    spots = torch.rand(10, 3, generator=torch.Generator().manual_seed(0)) * 100
    coord = spots.repeat_interleave(16, 0)
    batch = collate([{"coord": coord, "feat": torch.rand(160, 3)}])
    metrics = m.held_out_metrics(batch, torch.Generator().manual_seed(0))
    assert set(metrics) == {"chamfer", "chamfer_copy"} and metrics["chamfer_copy"] == 0.0
    with torch.no_grad():
        pred, true, _ = m._predict(batch, m.random_mask(1, torch.Generator().manual_seed(0)))
    sq = pred.pow(2).sum(-1)
    assert true.abs().max() == 0 and metrics["chamfer"] == pytest.approx(float((sq.mean(-1) + sq.min(-1).values).mean()), rel=1e-5)


def test_point_mae_needs_a_patch_encoder_and_sane_ratios():
    with pytest.raises(ConfigError, match="scene=pointmae needs a patch encoder .* encoder=spunet"):
        PointMAE(SpUNet(preset="small"), 3)
    with pytest.raises(ConfigError, match="mask_ratio"):
        _method(mask_ratio=0.0)
    groups = _method().param_groups()
    assert groups[1]["weight_decay"] == 0.0 and all(p.ndim < 2 for p in groups[1]["params"][1:])
