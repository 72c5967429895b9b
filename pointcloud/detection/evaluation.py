"""Indoor 3D detection evaluation, as mmdetection3d's ``indoor_eval`` computes it (the protocol that VoteNet,
3DETR and every paper on ScanNet and SUN RGB-D report; 3DETR's ap_calculator is "exactly the same").

Per class, the detections of every scene are sorted by score; each takes the ground-truth box of its class
and scene with which it has the highest IoU: it is a true positive when that IoU is greater than the
threshold and that box is not matched yet (it is then matched), otherwise a false positive (a best box
already matched is not replaced by the second best). Recall and precision along the sorted list give the
class's AP as the area under the monotone precision envelope (VOC "area" mode). mAP is the mean over the
classes that have ground truth in the evaluated scenes; a class with ground truth and no detection scores
0. One deliberate difference: mmdetection3d also averages in classes that were detected but have no ground
truth, whose AP is 0/0 and makes its mAP NaN; here those classes are reported (AP None) and left out.

Boxes are ``[K, 7]`` (centre xyz, size xyz, class; axis-aligned, ScanNet after its axis-align matrix) or
``[K, 8]`` (centre, size, yaw about z, class; SUN RGB-D). IoU is the volume of the intersection over that
of the union, with the intersection of two yawed boxes computed as the overlap of their footprints
(convex polygon clipping) times the overlap of their height ranges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from geossl.errors import GeosslError


class DetectionEvalError(GeosslError, ValueError):
    """Boxes the evaluation cannot score (wrong shapes, non-positive sizes, non-finite numbers)."""


def check_boxes(boxes: Tensor, what: str) -> None:
    """Refuse boxes that are not ``[K, 7]``/``[K, 8]``, hold NaN or inf, or have a non-positive size."""
    if boxes.dim() != 2 or boxes.shape[1] not in (7, 8):
        raise DetectionEvalError(f"{what} must be [K, 7] (centre, size, class) or [K, 8] (centre, size, yaw, class); "
                                 f"got {list(boxes.shape)}.")
    if not torch.isfinite(boxes).all():
        raise DetectionEvalError(f"{what} hold NaN or infinite numbers.")
    if len(boxes) and (boxes[:, 3:6] <= 0).any():
        raise DetectionEvalError(f"{what} include a box with a non-positive size ({boxes[(boxes[:, 3:6] <= 0).any(1)][0].tolist()}).")


def bev_corners(boxes: Tensor) -> Tensor:
    """``[K, 4, 2]``: the footprint of boxes ``[K, 6|7]`` (centre, size[, yaw about z, counter-clockwise]) as 4
    counter-clockwise corners."""
    yaw = boxes[:, 6] if boxes.shape[1] > 6 else torch.zeros_like(boxes[:, 0])
    c, s = torch.cos(yaw), torch.sin(yaw)
    unit = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]], dtype=boxes.dtype, device=boxes.device)
    local = unit[None] * boxes[:, None, 3:5] / 2  # [K, 4, 2]
    x = local[..., 0] * c[:, None] - local[..., 1] * s[:, None]
    y = local[..., 0] * s[:, None] + local[..., 1] * c[:, None]
    return torch.stack([x, y], -1) + boxes[:, None, :2]


def _cross(u: Tensor, v: Tensor) -> Tensor:
    return u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]


def _inside(points: Tensor, poly: Tensor, eps: float = 1e-9) -> Tensor:
    """``[P, n]``: whether each of ``points`` ``[P, n, 2]`` lies in its convex counter-clockwise ``poly`` ``[P, 4, 2]``
    (on the boundary counts)."""
    edges = torch.roll(poly, -1, dims=1) - poly  # [P, 4, 2]
    rel = points[:, :, None, :] - poly[:, None, :, :]  # [P, n, 4, 2]
    return (_cross(edges[:, None], rel) >= -eps).all(-1)


def footprint_overlap(pa: Tensor, pb: Tensor, eps: float = 1e-9) -> Tensor:
    """``[P]``: the area where convex quadrilaterals ``pa[i]`` and ``pb[i]`` ``[P, 4, 2]`` (counter-clockwise) overlap,
    exactly: the overlap is the convex polygon whose corners are the corners of each inside the other and the crossings
    of their edges; those (up to 24 candidates, masked) are ordered by angle about their mean and summed by the
    shoelace formula, all pairs at once."""
    P = len(pa)
    if P == 0:
        return pa.new_zeros(0)
    ra = torch.roll(pa, -1, dims=1) - pa  # edge vectors [P, 4, 2]
    rb = torch.roll(pb, -1, dims=1) - pb
    d = pb[:, None, :, :] - pa[:, :, None, :]  # [P, 4 (a's edge), 4 (b's edge), 2]
    denom = _cross(ra[:, :, None], rb[:, None, :])
    safe = torch.where(denom.abs() > eps, denom, torch.ones_like(denom))
    t = _cross(d, rb[:, None, :]) / safe
    u = _cross(d, ra[:, :, None]) / safe
    crossing = (denom.abs() > eps) & (t >= -eps) & (t <= 1 + eps) & (u >= -eps) & (u <= 1 + eps)
    where = pa[:, :, None, :] + t[..., None] * ra[:, :, None, :]
    points = torch.cat([pa, pb, where.reshape(P, 16, 2)], 1)  # [P, 24, 2]
    mask = torch.cat([_inside(pa, pb, eps), _inside(pb, pa, eps), crossing.reshape(P, 16)], 1)
    count = mask.sum(1)
    centre = (points * mask[..., None]).sum(1) / count.clamp_min(1)[:, None]
    rel = points - centre[:, None]
    angle = torch.atan2(rel[..., 1], rel[..., 0]).masked_fill(~mask, float("inf"))
    order = angle.argsort(1)
    ordered = torch.gather(points, 1, order[..., None].expand(-1, -1, 2))
    kept = torch.gather(mask, 1, order)
    ordered = torch.where(kept[..., None], ordered, ordered[:, :1])  # masked points repeat the first: no area
    area = 0.5 * _cross(ordered, torch.roll(ordered, -1, dims=1)).sum(1).abs()
    return torch.where(count >= 3, area, torch.zeros_like(area))


def polygon_overlap_python(subject: np.ndarray, clipper: np.ndarray) -> float:
    """The overlap area of two convex counter-clockwise polygons ``[n, 2]`` by Sutherland-Hodgman clipping in plain
    Python, one pair at a time: the test oracle (and the timing baseline) of :func:`footprint_overlap`."""
    out = subject
    for i in range(len(clipper)):
        a, b = clipper[i], clipper[(i + 1) % len(clipper)]
        if len(out) == 0:
            break
        inp, out = out, []
        side = lambda p: (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])  # noqa: E731  >= 0: inside
        for j in range(len(inp)):
            p, q = inp[j], inp[(j + 1) % len(inp)]
            sp, sq = side(p), side(q)
            if sp >= 0:
                out.append(p)
            if (sp >= 0) != (sq >= 0):
                out.append(p + sp / (sp - sq) * (q - p))
        out = np.array(out).reshape(-1, 2)
    poly = np.asarray(out).reshape(-1, 2)
    if len(poly) < 3:
        return 0.0
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def box_iou_3d(a: Tensor, b: Tensor) -> Tensor:
    """``[N, M]`` 3D IoU of boxes ``a`` ``[N, 6|7]`` and ``b`` ``[M, 6|7]`` (centre, size[, yaw]); both
    axis-aligned (6 numbers) or both yawed (7). Yawed footprints are intersected exactly
    (:func:`footprint_overlap`) for the pairs whose heights overlap and whose footprints' bounding rectangles meet."""
    a, b = a.double(), b.double()
    out = torch.zeros(len(a), len(b), dtype=torch.float64)
    if not len(a) or not len(b):
        return out
    z_lo = torch.maximum((a[:, None, 2] - a[:, None, 5] / 2), (b[None, :, 2] - b[None, :, 5] / 2))
    z_hi = torch.minimum((a[:, None, 2] + a[:, None, 5] / 2), (b[None, :, 2] + b[None, :, 5] / 2))
    height = (z_hi - z_lo).clamp_min(0)
    vol_a, vol_b = a[:, 3:6].prod(1), b[:, 3:6].prod(1)
    if a.shape[1] == 6 or (not a[:, 6].any() and not b[:, 6].any()):  # axis-aligned: the footprints are rectangles
        lo = torch.maximum(a[:, None, :2] - a[:, None, 3:5] / 2, b[None, :, :2] - b[None, :, 3:5] / 2)
        hi = torch.minimum(a[:, None, :2] + a[:, None, 3:5] / 2, b[None, :, :2] + b[None, :, 3:5] / 2)
        footprint = (hi - lo).clamp_min(0).prod(-1)
    else:
        ca, cb = bev_corners(a), bev_corners(b)
        lo = torch.maximum(ca.amin(1)[:, None], cb.amin(1)[None])
        hi = torch.minimum(ca.amax(1)[:, None], cb.amax(1)[None])
        i, j = ((height > 0) & (hi > lo).all(-1)).nonzero(as_tuple=True)
        footprint = torch.zeros(len(a), len(b), dtype=torch.float64)
        for start in range(0, len(i), 65536):  # bounded memory for many pairs
            k = slice(start, start + 65536)
            footprint[i[k], j[k]] = footprint_overlap(ca[i[k]], cb[j[k]])
    inter = footprint * height
    return inter / (vol_a[:, None] + vol_b[None, :] - inter).clamp_min(1e-12)


def average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC "area" AP: the area under the precision envelope (precision made non-increasing from the right)."""
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    for i in range(len(mpre) - 1, 0, -1):
        mpre[i - 1] = max(mpre[i - 1], mpre[i])
    idx = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1]))


@dataclass
class DetectionResult:
    """mAP at each IoU threshold, per-class AP (None for a class detected but absent from the ground truth)
    and per-class recall at the end of the ranking."""

    thresholds: List[float]
    map: Dict[float, float]
    class_ap: Dict[float, Dict[str, Optional[float]]]
    class_recall: Dict[float, Dict[str, Optional[float]]] = field(default_factory=dict)

    def summary(self) -> Dict[str, object]:
        out: Dict[str, object] = {}
        for t in self.thresholds:
            out[f"mAP@{t:g}"] = self.map[t]
            out[f"class_AP@{t:g}"] = self.class_ap[t]
        return out


def indoor_map(predictions: Sequence[Dict[str, Tensor]], ground_truth: Sequence[Tensor], classes: Sequence[str],
               thresholds: Sequence[float] = (0.25, 0.5)) -> DetectionResult:
    """mAP of ``predictions`` against ``ground_truth`` over scenes (see the module docstring).

    Args:
        predictions: per scene, ``{"boxes": [P, 7|8] (centre, size[, yaw], class), "scores": [P]}``.
        ground_truth: per scene, ``[G, 7|8]`` boxes in the same layout (G may be 0: a scene without objects).
        classes: class names; a box's last number indexes them.
        thresholds: IoU thresholds.
    """
    if len(predictions) != len(ground_truth):
        raise DetectionEvalError(f"{len(predictions)} scenes of predictions for {len(ground_truth)} scenes of ground truth.")
    yaw = None
    for s, (p, g) in enumerate(zip(predictions, ground_truth)):
        check_boxes(p["boxes"], f"predicted boxes of scene {s}")
        check_boxes(g, f"ground-truth boxes of scene {s}")
        if len(p["scores"]) != len(p["boxes"]):
            raise DetectionEvalError(f"scene {s}: {len(p['scores'])} scores for {len(p['boxes'])} boxes.")
        for boxes in (p["boxes"], g):
            if len(boxes):
                this = boxes.shape[1] == 8
                if yaw is not None and yaw != this:
                    raise DetectionEvalError("predicted and ground-truth boxes must all be axis-aligned ([K, 7]) or all yawed ([K, 8]).")
                yaw = this
        for boxes, what in ((p["boxes"], "predicted"), (g, "ground-truth")):
            if len(boxes) and (boxes[:, -1] < 0).any() or len(boxes) and (boxes[:, -1] >= len(classes)).any():
                raise DetectionEvalError(f"scene {s}: a {what} box's class is not one of the {len(classes)} classes ({', '.join(classes)}).")
    present = sorted({int(c) for g in ground_truth for c in g[:, -1].tolist()})
    detected = sorted({int(c) for p in predictions for c in p["boxes"][:, -1].tolist()})
    class_ap = {t: {} for t in thresholds}
    class_recall = {t: {} for t in thresholds}
    for c in sorted(set(present) | set(detected)):
        name = classes[c]
        if c not in present:
            for t in thresholds:
                class_ap[t][name] = None
                class_recall[t][name] = None
            continue
        gts = [g[g[:, -1] == c, :-1] for g in ground_truth]
        npos = sum(len(g) for g in gts)
        dets = [(float(score), s, box[:-1]) for s, p in enumerate(predictions) for box, score in zip(p["boxes"], p["scores"]) if int(box[-1]) == c]
        dets.sort(key=lambda d: -d[0])  # stable (Python sorts are): tied scores keep scene order, then box order
        matched = {t: [torch.zeros(len(g), dtype=torch.bool) for g in gts] for t in thresholds}
        tp = {t: np.zeros(len(dets)) for t in thresholds}
        for d, (_, s, box) in enumerate(dets):
            if len(gts[s]):
                ious = box_iou_3d(box[None], gts[s])[0]
                best, j = float(ious.max()), int(ious.argmax())
            else:
                best, j = -math.inf, -1
            for t in thresholds:
                if best > t and not matched[t][s][j]:
                    tp[t][d], matched[t][s][j] = 1.0, True
        for t in thresholds:
            tps = np.cumsum(tp[t])
            fps = np.cumsum(1.0 - tp[t])
            recall = tps / npos
            precision = tps / np.maximum(tps + fps, np.finfo(np.float64).eps)
            class_ap[t][name] = average_precision(recall, precision) if len(dets) else 0.0
            class_recall[t][name] = float(recall[-1]) if len(dets) else 0.0
    maps = {t: (float(np.mean([class_ap[t][classes[c]] for c in present])) if present else float("nan")) for t in thresholds}
    return DetectionResult(list(thresholds), maps, class_ap, class_recall)
