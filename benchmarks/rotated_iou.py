"""Rotated 3D IoU and NMS of yawed boxes: the batched tensor footprint overlap against plain-Python polygon clipping.

VoteNet-like proposals: K yawed boxes in a 6 x 6 m room (sizes 0.3-2 m, any yaw, 10 classes, scores random). For each K:
the [K, K] IoU matrix and per-class NMS (IoU 0.25) with the tensor code, and the IoU matrix with the plain-Python clipping
the evaluation used before (every pair whose heights overlap, one at a time: `polygon_overlap_python`), one torch thread,
median of repeats, both in this process.

    python benchmarks/rotated_iou.py [--sizes 64 256 1024] [--python-max 1024]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine_line, write_json, write_section  # noqa: E402


def proposals(k: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    centre = torch.cat([torch.rand(k, 2, generator=g) * 6, torch.rand(k, 1, generator=g)], 1)
    size = 0.3 + torch.rand(k, 3, generator=g) * 1.7
    yaw = (torch.rand(k, 1, generator=g) - 0.5) * 2 * torch.pi
    return torch.cat([centre, size, yaw], 1), torch.rand(k, generator=g), torch.randint(0, 10, (k,), generator=g)


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def python_iou(boxes):
    """The IoU matrix as the evaluation computed it before: height overlap, then plain-Python clipping pair by pair."""
    from geossl.pointcloud.detection.evaluation import bev_corners, polygon_overlap_python

    b = boxes.double()
    corners = [c.numpy() for c in bev_corners(b)]
    z_lo = torch.maximum(b[:, None, 2] - b[:, None, 5] / 2, b[None, :, 2] - b[None, :, 5] / 2)
    z_hi = torch.minimum(b[:, None, 2] + b[:, None, 5] / 2, b[None, :, 2] + b[None, :, 5] / 2)
    height = (z_hi - z_lo).clamp_min(0)
    foot = torch.zeros(len(b), len(b), dtype=torch.float64)
    for i in range(len(b)):
        for j in range(len(b)):
            if height[i, j] > 0:
                foot[i, j] = polygon_overlap_python(corners[i], corners[j])
    inter = foot * height
    vol = b[:, 3:6].prod(1)
    return inter / (vol[:, None] + vol[None] - inter)


def python_nms(boxes, scores, labels, iou: float = 0.25):
    """The same greedy per-class NMS with the IoU of each pair computed as before (plain-Python clipping, one pair at a
    time, only pairs of one class)."""
    from geossl.pointcloud.detection.evaluation import bev_corners, polygon_overlap_python

    b = boxes.double()
    corners = [c.numpy() for c in bev_corners(b)]
    vol = b[:, 3:6].prod(1).tolist()

    def pair_iou(i: int, j: int) -> float:
        h = min(b[i, 2] + b[i, 5] / 2, b[j, 2] + b[j, 5] / 2) - max(b[i, 2] - b[i, 5] / 2, b[j, 2] - b[j, 5] / 2)
        if h <= 0:
            return 0.0
        inter = polygon_overlap_python(corners[i], corners[j]) * float(h)
        return inter / (vol[i] + vol[j] - inter)

    keep, suppressed = [], set()
    order = scores.argsort(descending=True).tolist()
    for n, i in enumerate(order):
        if i in suppressed:
            continue
        keep.append(i)
        for j in order[n + 1:]:
            if j not in suppressed and labels[j] == labels[i] and pair_iou(i, j) > iou:
                suppressed.add(j)
    return torch.tensor(keep, dtype=torch.long)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", type=int, default=[64, 256, 1024])
    ap.add_argument("--python-max", type=int, default=1024, help="largest K timed with the plain-Python clipping")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from geossl.pointcloud.detection.evaluation import box_iou_3d
    from geossl.pointcloud.detection.votenet import nms_3d

    rows = []
    for k in args.sizes:
        boxes, scores, labels = proposals(k)
        fast_iou = timed(lambda: box_iou_3d(boxes, boxes), 5)
        fast_nms = timed(lambda: nms_3d(boxes, scores, labels, 0.25), 5)
        row = {"proposals": k, "tensor_iou_s": fast_iou, "tensor_nms_s": fast_nms}
        if k <= args.python_max:
            slow = python_iou(boxes)
            row["python_iou_s"] = timed(lambda: python_iou(boxes), 1)
            row["max_abs_difference"] = float((slow - box_iou_3d(boxes, boxes)).abs().max())
            row["python_nms_s"] = timed(lambda: python_nms(boxes, scores, labels, 0.25), 1)
            row["same_kept"] = python_nms(boxes, scores, labels, 0.25).tolist() == nms_3d(boxes, scores, labels, 0.25).tolist()
        rows.append(row)
        print(row, flush=True)
    lines = ["`python benchmarks/rotated_iou.py` — K VoteNet-like yawed proposals in a 6 x 6 m room (sizes 0.3-2 m, any yaw, "
             "10 classes); the [K, K] 3D IoU with the batched tensor footprint overlap (only pairs whose heights overlap and "
             "whose footprints' bounding rectangles meet) against the plain-Python polygon clipping of every height-overlapping "
             "pair (the code before; `polygon_overlap_python`, kept as the test oracle), and per-class NMS at IoU 0.25 "
             "(classes moved apart, so only pairs of one class are intersected), against the same greedy NMS with the plain-Python "
             "IoU of each pair of one class. One torch thread; tensor rows: median of 5.",
             "", machine_line(threads="1 torch thread"), "",
             "| proposals | IoU matrix, plain Python (s) | IoU matrix, tensor (ms) | speed-up | NMS, plain Python (s) | NMS, tensor (ms) | "
             "same boxes kept | largest IoU difference |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        py, fast, pn = r.get("python_iou_s"), r["tensor_iou_s"], r.get("python_nms_s")
        lines.append(f"| {r['proposals']} | {f'{py:.2f}' if py is not None else 'not run'} | {1000 * fast:.1f} | "
                     f"{f'{py / fast:.0f}x' if py is not None else '-'} | {f'{pn:.2f}' if pn is not None else 'not run'} | "
                     f"{1000 * r['tensor_nms_s']:.1f} | {('yes' if r['same_kept'] else 'NO') if 'same_kept' in r else '-'} | "
                     f"{r.get('max_abs_difference', float('nan')):.1e} |")
    write_section("rotated_iou", "## Rotated 3D IoU and NMS\n\n" + "\n".join(lines))
    write_json("rotated_iou", {"rows": rows})


if __name__ == "__main__":
    main()
