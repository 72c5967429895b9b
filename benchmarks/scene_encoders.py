"""Scene encoders' cost on ScanNet scene0000_00 and on a batch of 4 procedural rooms (seeds 0-3,
50,000 points each): forward+backward time and peak memory of each SpUNet preset at 2 cm and 5 cm
voxels and of the point-patch transformer, each case in a fresh process (peak resident memory
above the level after loading the scene).

    python benchmarks/scene_encoders.py --threads 1

Writes the `scene_encoders` section of docs/results.md and docs/results/scene_encoders.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine_line, write_json, write_section  # noqa: E402

CASES = [("spunet", "small", 0.05), ("spunet", "small", 0.02), ("spunet", "ponderv2", 0.05), ("spunet", "ponderv2", 0.02),
         ("point_patch_transformer", "128x32, dim 256, depth 6", 0.0)]


SCENES = {"scannet": "ScanNet scene0000_00", "rooms": "4 rooms (seeds 0-3)"}


def load(scenes: str):
    from geossl.points import collate

    if scenes == "scannet":
        from geossl.pointcloud.scannet import load_scannet_scene

        return collate([load_scannet_scene("scene0000_00")])
    from geossl.pointcloud.rooms import make_room

    return collate([make_room(seed, num_views=0) for seed in range(4)])


def one(scenes: str, encoder: str, preset: str, voxel: float, threads: int, repeats: int) -> dict:
    import resource
    import time

    import torch

    from geossl.pointcloud.encoders import PointPatchTransformer, SpUNet

    if threads:
        torch.set_num_threads(threads)
    batch = load(scenes)
    voxels = len(batch.voxelize(voxel)[0]) if voxel else 0
    torch.manual_seed(0)
    enc = SpUNet(in_dim=3, voxel_size=voxel, preset=preset) if encoder == "spunet" else \
        PointPatchTransformer(in_dim=3, centres=128, patch=32, dim=256, depth=6, heads=8)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def step():
        enc.zero_grad()
        enc(batch).square().mean().backward()

    step()
    t0 = time.perf_counter()
    for _ in range(repeats):
        step()
    return {"scenes": scenes, "encoder": encoder, "preset": preset, "voxel_m": voxel, "points": len(batch.coord), "voxels": voxels,
            "parameters": sum(p.numel() for p in enc.parameters()), "seconds": (time.perf_counter() - t0) / repeats,
            "peak_extra_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024, "threads": torch.get_num_threads()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--scenes", nargs="+", default=list(SCENES), choices=list(SCENES))
    ap.add_argument("--case", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.case:
        print(json.dumps(one(args.case[0], args.case[1], args.case[2], float(args.case[3]), args.threads, args.repeats)))
        return
    rows = []
    for scenes in args.scenes:
        for encoder, preset, voxel in CASES:
            res = subprocess.run([sys.executable, __file__, "--threads", str(args.threads), "--repeats", str(args.repeats),
                                  "--case", scenes, encoder, preset, str(voxel)], capture_output=True, text=True)
            rows.append(json.loads(res.stdout.strip().splitlines()[-1]) if res.returncode == 0 else
                        {"scenes": scenes, "encoder": encoder, "preset": preset, "voxel_m": voxel,
                         "error": (res.stderr.strip().splitlines() or ["?"])[-1]})
            print(rows[-1], flush=True)
    lines = ["## Scene encoders: forward + backward on ScanNet scene0000_00 and a 4-room batch", "",
             "`python benchmarks/scene_encoders.py` — one forward + backward (loss = mean squared per-point feature) on the "
             "81,369-vertex ScanNet scene and on one batch of 4 procedural rooms (`geossl.pointcloud.rooms`, seeds 0-3, "
             f"50,000 points each), mean of {args.repeats} steps after a warm-up, each case in a fresh process; peak memory = "
             "resident-set peak above the level after loading the scenes.", "", machine_line(), "",
             "| scenes | points | encoder | preset | voxel | voxels | parameters | s / step | peak extra MB | threads |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {SCENES[r['scenes']]} | | {r['encoder']} | {r['preset']} | {r['voxel_m']} | failed: {r['error'][:80]} | | | | |")
            continue
        vox = f"{r['voxel_m'] * 100:g} cm" if r["voxel_m"] else "-"
        voxels = f"{r['voxels']:,}" if r["voxel_m"] else "-"
        lines.append(f"| {SCENES[r['scenes']]} | {r['points']:,} | {r['encoder']} | {r['preset']} | {vox} | {voxels} | "
                     f"{r['parameters'] / 1e6:.2f} M | {r['seconds']:.2f} | {r['peak_extra_mb']:.0f} | {r['threads']} |")
    write_section("scene_encoders", "\n".join(lines))
    write_json("scene_encoders", rows)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
