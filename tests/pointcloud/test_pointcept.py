"""Pointcept / PonderV2 SpUNet checkpoints (geossl.pointcloud.pointcept): a state dict in Pointcept's layout loads into
geossl's SpUNet (Pointcept variant) and gives the same features; foreign and unsafe checkpoints are refused with the
reason; `geossl import-pointcept` then `geossl finetune` runs end to end. Against Pointcept's own code: the last test,
which needs a checkout of Pointcept (GEOSSL_POINTCEPT=<checkout>; benchmarks/pointcept_spunet.py says how)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from geossl.errors import CheckpointError
from geossl.points import collate

SMALL = {"channels": [8, 16, 16, 16, 16, 16, 8, 8], "layers": [1, 2, 1, 1, 1, 1, 2, 1], "base": 8}


def pointcept_layout(encoder) -> dict:
    """The inverse of load_pointcept's mapping: geossl's SpUNet (Pointcept variant) as a Pointcept training checkpoint."""
    from geossl.pointcloud.pointcept import PATTERNS

    own = encoder.state_dict()
    names = []
    for key in own:  # every geossl key from a Pointcept key of the same role
        parts = key.split(".")
        if parts[0] == "stem":
            names.append(("conv_input.0.weight", key))
        elif parts[0] == "stem_bn":
            names.append((f"conv_input.1.{parts[-1]}", key))
        elif parts[0] in ("down", "up"):
            s = parts[1] if parts[0] == "down" else str(3 - int(parts[1]))
            names.append((f"{parts[0]}.{s}.0.weight", key))
        elif parts[0] in ("down_bn", "up_bn"):
            s = parts[1] if parts[0] == "down_bn" else str(3 - int(parts[1]))
            names.append((f"{parts[0][:-3]}.{s}.1.{parts[-1]}", key))
        elif parts[0] in ("enc", "dec"):
            s = parts[1] if parts[0] == "enc" else str(3 - int(parts[1]))
            role = {"conv1": "conv1.weight", "conv2": "conv2.weight", "proj": "proj.0.weight"}.get(parts[3], None)
            tail = role if role else (f"proj.1.{parts[-1]}" if parts[3] == "proj_bn" else f"{parts[3]}.{parts[-1]}")
            names.append((f"{parts[0]}.{s}.block{parts[2]}.{tail}", key))
        elif parts[0] == "head":
            names.append((f"final.{parts[1]}", key))
    for theirs, ours in names:  # the mapping the loader uses sends each Pointcept key back to where it came from
        assert any(p.match(theirs) and t(p.match(theirs)) == ours for p, t in PATTERNS), (theirs, ours)
    state = {}
    for theirs, ours in names:
        v = own[ours]
        if ours.endswith(("proj.weight", "head.weight")):
            v = v.t().contiguous().reshape(v.shape[0], 1, 1, 1, v.shape[1])
        elif v.dim() == 5:
            v = v.permute(0, 3, 2, 1, 4).contiguous()
        state[f"module.backbone.{theirs}"] = v
    return {"epoch": 3, "state_dict": state}


def _random_spunet(out_dim=None):
    from geossl.pointcloud.encoders.spunet import SpUNet

    torch.manual_seed(0)
    enc = SpUNet(in_dim=3, voxel_size=0.05, out_dim=out_dim, variant="pointcept", **SMALL)
    with torch.no_grad():
        for name, p in enc.state_dict().items():
            if p.dtype.is_floating_point and name.endswith(("running_var", "running_mean")):
                p.copy_(torch.rand(p.shape) + (0.5 if name.endswith("var") else -0.5))
    return enc.eval()


def _points():
    g = torch.Generator().manual_seed(1)
    return collate([{"coord": torch.rand(3000, 3, generator=g) * 3, "feat": torch.rand(3000, 3, generator=g)}])


@pytest.mark.parametrize("out_dim", [None, 5])
def test_a_pointcept_layout_state_dict_loads_and_gives_the_same_features(tmp_path, out_dim):
    from geossl.pointcloud.pointcept import load_pointcept

    enc = _random_spunet(out_dim)
    torch.save(pointcept_layout(enc), tmp_path / "model_best.pth")
    loaded = load_pointcept(tmp_path / "model_best.pth", voxel_size=0.05)
    assert loaded.config()["channels"] == SMALL["channels"] and loaded.config()["layers"] == SMALL["layers"]
    assert loaded.variant == "pointcept" and loaded.pretrained["format"] == "Pointcept SpUNet-v1m1"
    with torch.no_grad():
        assert torch.equal(loaded(_points()), enc(_points()))


def test_the_pointcept_variant_differs_from_geossls_block():
    from geossl.pointcloud.encoders.spunet import SpUNet

    ours, theirs = SpUNet(variant="geossl"), SpUNet(variant="pointcept")
    assert ours.stem_bn.eps == 1e-5 and theirs.stem_bn.eps == 1e-3 and theirs.stem_bn.momentum == 0.01
    assert ours.dec[0][0].proj_bn is None and isinstance(theirs.dec[0][0].proj_bn, torch.nn.BatchNorm1d)
    with pytest.raises(Exception, match="Valid choices: geossl, pointcept"):
        SpUNet(variant="minkowski")


def test_foreign_and_unsafe_checkpoints_are_refused(tmp_path):
    from geossl.pointcloud.pointcept import load_pointcept

    ptv3 = {"state_dict": {"module.backbone.embedding.stem.conv.weight": torch.zeros(48, 5, 5, 5, 6),
                           "module.backbone.enc.enc0.block0.norm1.0.weight": torch.zeros(48)}}
    torch.save(ptv3, tmp_path / "ptv3.pth")
    with pytest.raises(CheckpointError, match="not a Pointcept SpUNet-v1m1.*embedding.stem.conv.weight"):
        load_pointcept(tmp_path / "ptv3.pth")

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo ran > " + str(tmp_path / "ran"),))

    torch.save({"state_dict": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="weights-only"):
        load_pointcept(tmp_path / "evil.pth")
    assert not (tmp_path / "ran").exists()
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_pointcept(tmp_path / "junk.pth")
    with pytest.raises(CheckpointError, match="No checkpoint"):
        load_pointcept(tmp_path / "missing.pth")
    state = pointcept_layout(_random_spunet())
    del state["state_dict"]["module.backbone.dec.0.block0.conv2.weight"]
    torch.save(state, tmp_path / "cut.pth")
    with pytest.raises(CheckpointError, match="dec.3.0.conv2.conv.weight is missing"):
        load_pointcept(tmp_path / "cut.pth")


def test_import_pointcept_then_finetune_a_detector(tmp_path):
    from tests.cli.test_cli import TINY_DETECTION, geossl

    torch.save(pointcept_layout(_random_spunet()), tmp_path / "model_best.pth")
    res = geossl("import-pointcept", str(tmp_path / "model_best.pth"), f"out={tmp_path / 'spunet.safetensors'}", "voxel_size=0.05")
    assert res.returncode == 0, res.stderr
    assert "widths [8, 16, 16, 16, 16, 16, 8, 8]" in res.stdout
    res = geossl("finetune", "detection=votenet", "dataset=rooms", f"encoder={tmp_path / 'spunet.safetensors'}",
                 f"run_dir={tmp_path / 'det'}", *[o for o in TINY_DETECTION if not o.startswith("encoder.")], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    summary = json.loads((tmp_path / "det" / "summary.json").read_text())
    assert summary["backbone"] == "spunet" and "mAP@0.25" in summary
    res = geossl("import-pointcept", str(tmp_path / "model_best.pth"))
    assert res.returncode == 2 and "out=<encoder.safetensors>" in res.stderr


@pytest.mark.skipif(not os.environ.get("GEOSSL_POINTCEPT"), reason="needs a checkout of Pointcept/Pointcept in $GEOSSL_POINTCEPT "
                    "(git clone https://github.com/Pointcept/Pointcept; benchmarks/pointcept_spunet.py)")
def test_pointcepts_own_spunet_equals_geossls_import_on_scannet(tmp_path):
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "pointcept_spunet.py"
    res = subprocess.run([sys.executable, "-W", "ignore", str(script), "--pointcept", os.environ["GEOSSL_POINTCEPT"],
                          "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    result = json.loads(res.stdout.strip().splitlines()[-1])
    assert result["points"] > 10000 and result["max_abs_diff"] < 1e-5
