"""Scene data: TSDF fusion of real 7-Scenes frames against their own depth, and what the procedural
room generator produces.

TSDF: ``fuse_tsdf`` (open3d VoxelBlockGrid) on the 7-Scenes subset at 640x480, for several frame
counts; each fused point's distance to the nearest back-projected depth point of the same frames
(scipy cKDTree), and the fusion time. Rooms: ``make_room(seed)`` with the default settings for
seeds 0..n-1: objects per room, points, boxes per class, and the generation time (4 ray-cast
views at 320x240 included).

    python benchmarks/scene_data.py --threads 1

Writes the `scene_data` section of docs/results.md and docs/results/scene_data.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine_line, mean_std, write_json, write_section  # noqa: E402


def tsdf_rows(cases):
    import torch
    from scipy.spatial import cKDTree

    from geossl.ops.camera import backproject_depth
    from geossl.pointcloud.rgbd import sevenscenes
    from geossl.pointcloud.tsdf import fuse_tsdf

    rows = []
    for stride, frames, voxel, weight in cases:
        seq = sevenscenes(stride=stride, max_frames=frames)
        t0 = time.perf_counter()
        s = fuse_tsdf(seq.frames, voxel_size=voxel, weight_threshold=weight)
        seconds = time.perf_counter() - t0
        depth_points = torch.cat([backproject_depth(f.depth, f.K, f.cam_to_world)[0] for f in seq.frames])
        dist = torch.from_numpy(cKDTree(depth_points.numpy()).query(s["coord"].numpy())[0])
        rows.append({"frames": len(seq.frames), "stride": stride, "voxel_m": voxel, "weight_threshold": weight,
                     "points": len(s["coord"]), "median_mm": 1000 * float(dist.median()),
                     "p95_mm": 1000 * float(dist.quantile(0.95)), "within_2cm": float((dist < 0.02).double().mean()),
                     "seconds": seconds})
        print(rows[-1], flush=True)
    return rows


def room_rows(seeds):
    from geossl.pointcloud.rooms import CLASSES, make_room

    rows = []
    for seed in seeds:
        t0 = time.perf_counter()
        r = make_room(seed)
        seconds = time.perf_counter() - t0
        valid = [float((f.depth > 0).double().mean()) for f in r["frames"].frames]
        rows.append({"seed": seed, "seconds": seconds, "points": len(r["coord"]), "objects": len(r["boxes"]),
                     "room_m": [round(float(x), 2) for x in r["room_size"]],
                     "classes": dict(Counter(CLASSES[int(c)] for c in r["boxes"][:, 6])), "valid_depth": sum(valid) / len(valid)})
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--rooms", type=int, default=10, help="room seeds 0..n-1")
    args = ap.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    tsdf = tsdf_rows([(40, 5, 0.01, 2.0), (20, 10, 0.01, 3.0), (5, 40, 0.01, 3.0), (1, 200, 0.02, 3.0)])
    rooms = room_rows(range(args.rooms))
    lines = ["## Scene data: TSDF fusion on 7-Scenes, procedural rooms", "",
             "`python benchmarks/scene_data.py` — TSDF fusion (`geossl.pointcloud.tsdf.fuse_tsdf`, open3d VoxelBlockGrid, "
             "truncation 4 voxels, depth <= 4 m) of the real 7-Scenes frames at 640×480; distance = each fused point to the "
             "nearest back-projected depth point of the same frames.", "", machine_line(), "",
             "| frames (every n-th of the 200) | voxel | min weight | fused points | median distance (mm) | 95th pct (mm) | within 2 cm | fusion s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in tsdf:
        lines.append(f"| {r['frames']} (n = {r['stride']}) | {r['voxel_m'] * 100:g} cm | {r['weight_threshold']:g} | {r['points']:,} | "
                     f"{r['median_mm']:.1f} | {r['p95_mm']:.1f} | {100 * r['within_2cm']:.1f}% | {r['seconds']:.1f} |")
    secs, objs = mean_std([r["seconds"] for r in rooms]), mean_std([r["objects"] for r in rooms])
    per_class = Counter()
    for r in rooms:
        per_class.update(r["classes"])
    lines += ["", f"Procedural rooms (`make_room(seed)`, defaults: 50,000 points, 4 views at 320×240), seeds 0–{args.rooms - 1}: "
              f"{objs[0]:.1f} ± {objs[1]:.1f} objects per room ({', '.join(f'{k} {v}' for k, v in sorted(per_class.items()))} in all), "
              f"{secs[0]:.2f} ± {secs[1]:.2f} s per room including the ray-cast views (the first includes importing open3d), "
              f"{100 * mean_std([r['valid_depth'] for r in rooms])[0]:.0f}% of view pixels with depth (the rest look out through the open top).", "",
              "| seed | room (m) | objects | classes | s |", "|---|---|---|---|---|"]
    for r in rooms:
        lines.append(f"| {r['seed']} | {' × '.join(f'{x:g}' for x in r['room_m'])} | {r['objects']} | "
                     f"{', '.join(f'{k} {v}' for k, v in sorted(r['classes'].items()))} | {r['seconds']:.2f} |")
    write_section("scene_data", "\n".join(lines))
    write_json("scene_data", {"tsdf": tsdf, "rooms": rooms})
    print("\n".join(lines))


if __name__ == "__main__":
    main()
