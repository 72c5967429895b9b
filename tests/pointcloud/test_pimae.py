"""PiMAE (geossl.pointcloud.methods.pimae): image patches, masks used by one step, learning on rooms, and the CLI."""

import json
import subprocess
import sys

import pytest
import torch

from geossl.errors import ConfigError
from geossl.pointcloud.datasets import rooms
from geossl.pointcloud.encoders.patch_transformer import PointPatchTransformer
from geossl.pointcloud.methods.pimae import PiMAE, image_patches, sincos_2d
from geossl.pointcloud.transforms import TransformConfig
from geossl.points import collate


def test_image_patches_are_row_major_blocks_of_pixels():
    color = torch.arange(4 * 6 * 3, dtype=torch.float32).reshape(4, 6, 3)  # H=4, W=6
    patches = image_patches(color, 2)  # a 3 x 2 grid of 2x2 patches
    assert patches.shape == (6, 12)
    assert torch.equal(patches[1].reshape(2, 2, 3), color[0:2, 2:4])  # row 0, column 1
    assert torch.equal(patches[3].reshape(2, 2, 3), color[2:4, 0:2])  # row 1, column 0
    emb = sincos_2d(3, 2, 8)
    assert emb.shape == (6, 8) and len({tuple(r) for r in emb.tolist()}) == 6


@pytest.fixture(scope="module")
def batch():
    ds = rooms(split="train", views=2, num_views=2, width=64, height=48, num_points=4096)
    ds.transform = TransformConfig(points=1024).train()
    return collate([ds[(i, i)] for i in range(2)])


def _model(batch):
    torch.manual_seed(0)
    enc = PointPatchTransformer(in_dim=batch.feat.shape[1], centres=16, patch=16, dim=32, depth=2, heads=2, tokeniser=16)
    return PiMAE(enc, batch.feat.shape[1], image_patch=16, decoder_depth=1, decoder_heads=2)


def test_masks_are_complementary_on_the_batch_and_the_loss_falls(batch):
    model = _model(batch)
    centres, _ = model.encoder.group(batch)
    point_hidden, image_hidden = model.masks(batch, centres, torch.Generator().manual_seed(0))
    assert point_hidden.shape == (2, 16) and image_hidden.shape == (2, 2, 12)  # 64x48 views: 4 x 3 patches of 16
    assert (point_hidden.sum(1) == int(0.6 * 16)).all() and (image_hidden.sum(-1) >= int(0.6 * 12)).all()
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    losses = []
    for step in range(15):
        out = model(batch, torch.Generator().manual_seed(step))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["loss"].item())
        assert torch.isclose(out["loss"].detach(), out["chamfer"] + out["image_mse"])
    assert losses[-1] < 0.7 * losses[0]


def test_a_batch_without_views_and_a_non_patch_encoder_are_refused(batch):
    model = _model(batch)
    plain = collate([rooms(split="train", num_points=4096)[(0, 0)] | {}])
    with pytest.raises(ConfigError, match="needs posed views"):
        model(plain)
    from geossl.pointcloud.encoders.spunet import SpUNet

    with pytest.raises(ConfigError, match="needs a patch encoder"):
        PiMAE.check_encoder(SpUNet)


TINY = ["dataset.splits.train=[0,4]", "dataset.splits.val=[1000,1002]", "dataset.splits.test=[2000,2002]", "dataset.num_points=3000",
        "dataset.batch_size=2", "dataset.width=64", "dataset.height=48", "dataset.num_views=2", "transform.points=512",
        "encoder.centres=8", "encoder.patch=16", "encoder.dim=32", "encoder.depth=1", "encoder.heads=4", "encoder.tokeniser=8",
        "scene.image_patch=16", "scene.decoder_depth=1", "scene.decoder_heads=4", "trainer.epochs=2", "trainer.warmup=1",
        "trainer.progress=false", "trainer.threads=1", "eval.train_scenes=4"]


def test_cli_pretrains_pimae_on_rooms_and_refuses_a_dataset_without_views(tmp_path):
    def geossl(*args):
        return subprocess.run([sys.executable, "-m", "geossl", "pretrain", "scene=pimae", "dataset=rooms", *args], capture_output=True,
                              text=True, cwd=tmp_path, timeout=600)

    res = geossl(*TINY, f"run_dir={tmp_path / 'run'}")
    assert res.returncode == 0, res.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["method"] == "pimae" and "seg_miou" in summary
    assert "train/image_mse" in (tmp_path / "run" / "metrics.csv").read_text()
    res = geossl(*TINY, "dataset.views=0")
    message = " ".join(res.stderr.split())
    assert res.returncode != 0 and "set dataset.views" in message and "Datasets with posed views: redwood, rooms" in message


def test_an_image_patch_larger_than_the_views_is_refused_before_the_method_is_built():
    """scene.image_patch=1000 allocated a 3 x 1000 x 1000-wide patch embedding (3.4 GB) before the first batch
    refused it (issue 45)."""
    from geossl.pipeline import configure

    _, cfg, adapter = configure("pretrain", ["scene=pimae", "dataset=rooms", *TINY, "scene.image_patch=1000"])
    data = adapter.load_dataset(cfg)
    with pytest.raises(ConfigError, match="scene.image_patch=1000 must be between 1 and the views' shorter side: dataset 'rooms' "
                                          "has 64x48 views"):
        adapter.check(cfg, data)
    _, cfg, _ = configure("pretrain", ["scene=pimae", "dataset=rooms", *TINY, "scene.image_patch=48"])
    adapter.check(cfg, data)
