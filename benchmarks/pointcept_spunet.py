"""Pointcept's own SpUNet-v1m1 against geossl's import of its weights, on the ScanNet sample scene0000_00.

Pointcept's model file (pointcept/models/sparse_unet/spconv_unet_v1m1_base.py, from a checkout outside this project) is
built with random weights and random batch-norm statistics, in eval mode, and run on the scene's points sampled to
one per 2 cm voxel (Pointcept's GridSample, the first point of each voxel), colours as features. Its state dict is
saved as a checkpoint shaped like Pointcept's (``{"state_dict": {"module.backbone.<key>": ...}}``), read back by
``geossl.pointcloud.pointcept.load_pointcept``, and geossl's encoder runs on the same points: the per-point features
must agree within 1e-5.

    git clone https://github.com/Pointcept/Pointcept /tmp/Pointcept      # or any checkout of it
    python benchmarks/pointcept_spunet.py --pointcept /tmp/Pointcept --out /tmp/pointcept_check

Pointcept's package __init__ files import every model (and their dependencies); only the SpUNet file and the small
modules it imports (its registry, offset2batch) are loaded, from the checkout, through package stubs. ``timm`` (for
``trunc_normal_``, the random initialisation only) is replaced by torch's ``nn.init.trunc_normal_`` when timm is not
importable, and its convolutions are set to spconv's Native algorithm (its default runs on CUDA only). Writes the
pointcept_spunet section of docs/results.md with --report.
"""

from __future__ import annotations

import argparse
import json
import sys
import types
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))


def pointcept_spunet(checkout: Path):
    """Pointcept's SpUNetBase class, imported from ``checkout`` without its package __init__ files."""
    for name in ("pointcept", "pointcept.models", "pointcept.models.sparse_unet"):
        module = types.ModuleType(name)
        module.__path__ = [str(checkout / name.replace(".", "/"))]
        sys.modules[name] = module
    try:
        import timm.layers  # noqa: F401
    except Exception:
        timm = types.ModuleType("timm")
        layers = types.ModuleType("timm.layers")
        layers.trunc_normal_ = torch.nn.init.trunc_normal_
        timm.layers = layers
        sys.modules.update({"timm": timm, "timm.layers": layers})
    from pointcept.models.sparse_unet.spconv_unet_v1m1_base import SpUNetBase

    return SpUNetBase


def randomise(model: torch.nn.Module, seed: int) -> None:
    """Random weights everywhere, and random batch-norm statistics (so that eval mode tests them too)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.state_dict().items():
            if not p.dtype.is_floating_point:
                continue
            if p.dim() > 1:  # kernels: the scale that keeps activations of order 1 through the layers
                p.copy_(torch.randn(p.shape, generator=g) / float(np.prod(p.shape[1:])) ** 0.5)
            elif name.endswith(("running_var", "weight")):
                p.copy_(torch.rand(p.shape, generator=g) + 0.5)
            else:  # biases and running means
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)


def scene_points(voxel: float):
    """scene0000_00's points, one per voxel (the first), as Pointcept's GridSample keeps them; colours in [0, 1]."""
    import os

    root = Path(os.environ.get("GEOSSL_DATA", "../shared/data")) / "3d/scannet_scene0000_mmdet3d/instance_data"
    vert = np.load(root / "scene0000_00_vert_all.npy", allow_pickle=False)
    grid = np.floor(vert[:, :3] / voxel).astype(np.int64)
    grid -= grid.min(0)
    _, first = np.unique(grid, axis=0, return_index=True)
    first = np.sort(first)
    return torch.from_numpy(grid[first]), torch.from_numpy(vert[first, 3:6].astype(np.float32) / 255.0)


def run_pointcept(args) -> None:
    SpUNetBase = pointcept_spunet(args.pointcept)
    model = SpUNetBase(in_channels=3, num_classes=args.classes)
    import spconv.pytorch as spconv

    for m in model.modules():  # spconv's default algorithm runs on CUDA only; on CPU only Native is correct (ANCHORS)
        if isinstance(m, spconv.conv.SparseConvolution):
            m.algo = spconv.ConvAlgo.Native
    randomise(model, 0)
    model.eval()
    grid, feat = scene_points(args.voxel)
    with torch.no_grad():
        out = model({"grid_coord": grid, "feat": feat, "offset": torch.tensor([len(grid)])})
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {f"module.backbone.{k}": v for k, v in model.state_dict().items()}}, args.out / "spunet_random.pth")
    torch.save({"grid": grid, "feat": feat, "out": out}, args.out / "pointcept_io.pt")


def compare(out: Path, voxel: float) -> dict:
    """geossl's import of the saved checkpoint on the same points: the largest difference from Pointcept's output."""
    from geossl.points import collate
    from geossl.pointcloud.pointcept import load_pointcept

    io = torch.load(out / "pointcept_io.pt", weights_only=True)
    encoder = load_pointcept(out / "spunet_random.pth", voxel_size=voxel)
    coord = (io["grid"].float() + 0.5) * voxel
    with torch.no_grad():
        ours = encoder(collate([{"coord": coord, "feat": io["feat"]}]))
    diff = (ours - io["out"]).abs()
    return {"points": len(coord), "width": int(ours.shape[1]), "max_abs_diff": float(diff.max()),
            "max_rel_diff": float((diff / io["out"].abs().clamp_min(1e-3)).max()), "output_scale": float(io["out"].abs().mean())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pointcept", type=Path, required=True, help="a checkout of Pointcept/Pointcept")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--voxel", type=float, default=0.02)
    ap.add_argument("--classes", type=int, default=0, help="num_classes of the model (0: the backbone alone, 96 wide)")
    ap.add_argument("--report", action="store_true", help="write docs/results.md")
    ap.add_argument("--commit", default="", help="the checkout's commit, where it is not a git repository (an archive)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    run_pointcept(args)
    result = compare(args.out, args.voxel)
    print(json.dumps(result))
    if args.report:
        from _report import machine_line, write_json, write_section

        commit = args.commit or ((args.pointcept / ".git").exists() and __import__("subprocess").run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=args.pointcept, capture_output=True, text=True).stdout.strip())
        write_section("pointcept_spunet", "## Pointcept's SpUNet-v1m1 imported into geossl\n\n"
                      "`python benchmarks/pointcept_spunet.py --pointcept <checkout> --out <folder> --report` — Pointcept's "
                      f"SpUNetBase{f' (Pointcept at {commit})' if commit else ''} with random weights and batch-norm "
                      "statistics, eval mode, on scene0000_00 at one point per 2 cm voxel; its state dict saved as a "
                      "Pointcept checkpoint and loaded by `geossl.pointcloud.pointcept.load_pointcept`; one thread.\n\n"
                      f"| points | output width | largest absolute difference | mean absolute output |\n|---|---|---|---|\n"
                      f"| {result['points']} | {result['width']} | {result['max_abs_diff']:.2e} | {result['output_scale']:.3f} |\n\n"
                      + machine_line(threads="1 torch thread"))
        write_json("pointcept_spunet", result)


if __name__ == "__main__":
    main()
