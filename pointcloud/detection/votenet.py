"""A VoteNet-style detection head (Qi, Litany, He, Guibas, "Deep Hough Voting for 3D Object Detection in
Point Clouds", ICCV 2019; mmdetection3d's ``VoteHead``) on the per-point features of any scene encoder.

Seeds (farthest-point-sampled points with their backbone features) vote: each predicts an offset towards
the centre of the object it lies on and a feature residual. Votes are grouped around farthest-point-sampled
vote positions (their nearest ``group`` votes, a PointNet over relative positions and features), and each
group proposes one box: objectness, a centre offset, a size (log scale), optional heading (bins and
residuals, for datasets with yaw) and class scores. Boxes are kept by per-class 3D non-maximum suppression.

Losses, as VoteNet's: the votes of seeds inside an object's box regress its centre (L1); a proposal whose
position is within ``positive_radius`` of an object's centre is positive, beyond ``negative_radius`` negative,
in between ignored (objectness cross-entropy, weights 0.2 / 0.8); positive proposals regress their nearest
object's centre and log size (L1) and classify its class (and heading); total = vote + 0.5 objectness +
centre + size + 0.1 class (+ 0.1 heading class + heading residual), with the vote term weighted by ``vote_weight``
(10 here: see its argument). Two departures from VoteNet, both measured on rooms: the vote loss weighs 10, not 1, and
the proposal stage does not back-propagate into the vote positions.
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geossl.errors import ConfigError
from geossl.ops.geometry import farthest_point_sampling, knn
from geossl.points import PointBatch
from geossl.registry import HEADS
from geossl.pointcloud.detection.evaluation import box_iou_3d

def _mlp(widths: List[int], last_plain: bool = True) -> nn.Sequential:
    layers: List[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if not (last_plain and i == len(widths) - 2):
            layers += [nn.LayerNorm(b), nn.ReLU()]
    return nn.Sequential(*layers)


def _pad_scenes(batch: PointBatch, values: Tensor, n: int, fill: Optional[float] = None) -> Tensor:
    """``[B, n, C]``: each scene's rows of ``values`` ``[N, C]``, padded with copies of its first row (or ``fill``)."""
    rows = []
    for s in batch.scene_slices():
        v = values[s]
        pad = v[:1].expand(n - len(v), -1) if fill is None else v.new_full((n - len(v), v.shape[1]), fill)
        rows.append(torch.cat([v, pad]))
    return torch.stack(rows)


def nms_3d(boxes: Tensor, scores: Tensor, labels: Tensor, iou: float = 0.25) -> Tensor:
    """Indices of the boxes kept by greedy per-class non-maximum suppression (highest score first; a box is
    dropped when its 3D IoU with a kept box of its class exceeds ``iou``). ``boxes`` ``[K, 6|7]``."""
    if not len(boxes):
        return torch.zeros(0, dtype=torch.long)
    # classes moved apart along x, so only pairs of one class are intersected (IoU does not change with a shift)
    boxes = boxes.double().clone()
    span = 2 * float(boxes[:, :2].abs().max() + boxes[:, 3:5].max()) + 1.0
    boxes[:, 0] += labels.double() * span
    over = (box_iou_3d(boxes, boxes) > iou).numpy()  # greedy pass in NumPy: no per-box tensor calls
    keep = []
    suppressed = np.zeros(len(boxes), dtype=bool)
    for i in scores.argsort(descending=True).tolist():
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= over[i]
    return torch.tensor(keep, dtype=torch.long)


@HEADS.register("votenet", domain="scene", group="detection")
class VoteHead(nn.Module):
    """VoteNet's voting, grouping and proposal head (see the module docstring).

    Args:
        in_dim: width of the backbone's per-point features.
        num_classes: object classes.
        yaw: whether boxes have a heading (SUN RGB-D style); axis-aligned boxes otherwise (ScanNet style).
        num_seeds: seed points per scene (VoteNet: 1024).
        num_proposals: proposals per scene (VoteNet: 256).
        group: votes per proposal group (VoteNet: 16 within 0.3 m).
        width: hidden width of the head's MLPs.
        heading_bins: heading classes when ``yaw`` (VoteNet: 12).
        positive_radius, negative_radius: objectness labels by distance to the nearest object centre (metres).
        nms_iou: IoU of the per-class non-maximum suppression at prediction time.
        vote_weight: weight of the vote loss in the total (VoteNet: 1). Votes share their seed features with the
            proposals; at VoteNet's weight the proposal losses dominated those features and votes barely moved
            from their seeds on rooms, at 10 they converge (docs/detection.md).
    """

    def __init__(self, in_dim: int, num_classes: int, yaw: bool = False, num_seeds: int = 256, num_proposals: int = 64,
                 group: int = 16, width: int = 128, heading_bins: int = 12, positive_radius: float = 0.3,
                 negative_radius: float = 0.6, nms_iou: float = 0.25, vote_weight: float = 10.0):
        super().__init__()
        rules = {"num_seeds": num_seeds >= max(num_proposals, group, 1), "num_proposals": num_proposals >= 1, "group": group >= 1,
                 "width": width >= 1, "heading_bins": heading_bins >= 1, "positive_radius": 0 < positive_radius <= negative_radius,
                 "negative_radius": negative_radius >= positive_radius, "nms_iou": 0 <= nms_iou <= 1, "vote_weight": vote_weight > 0}
        bad = [k for k, ok in rules.items() if not ok]  # comparisons with NaN are false: NaN is refused too
        if bad or min(in_dim, num_classes) < 1:
            raise ConfigError(f"Bad VoteNet head settings ({', '.join(f'detection.{k}' for k in bad) or 'in_dim, num_classes'}): "
                              f"num_seeds={num_seeds} >= num_proposals={num_proposals} and group={group} (all >= 1), width={width} >= 1, "
                              f"heading_bins={heading_bins} >= 1, 0 < positive_radius={positive_radius} <= negative_radius={negative_radius}, "
                              f"0 <= nms_iou={nms_iou} <= 1, vote_weight={vote_weight} > 0.")
        self.num_classes, self.yaw, self.num_seeds, self.num_proposals, self.group = num_classes, yaw, num_seeds, num_proposals, group
        self.heading_bins, self.positive_radius, self.negative_radius, self.nms_iou = heading_bins, positive_radius, negative_radius, nms_iou
        self.vote_weight = vote_weight
        self.seed_proj = _mlp([in_dim, width, width], last_plain=False)
        self.vote = _mlp([width, width, width, 3 + width])
        self.group_mlp = _mlp([3 + width, width, width], last_plain=False)
        outputs = 2 + 3 + 3 + num_classes + (2 * heading_bins if yaw else 0)
        self.proposal = _mlp([width, width, width, outputs])

    @property
    def min_points(self) -> int:
        return self.num_seeds

    def forward(self, batch: PointBatch, features: Tensor) -> Dict[str, Tensor]:
        """Per scene: seeds, votes, proposal positions and the raw proposal outputs."""
        sizes = [s.stop - s.start for s in batch.scene_slices()]
        if min(sizes) < self.num_seeds:
            raise ConfigError(f"A scene has {min(sizes)} points; the VoteNet head samples detection.num_seeds={self.num_seeds} "
                              "seeds per scene: raise the point budget (transform.points) or lower num_seeds.")
        n = max(sizes)
        xyz = _pad_scenes(batch, batch.coord, n)
        with torch.no_grad():
            idx = farthest_point_sampling(xyz, self.num_seeds)
        seed_xyz = torch.gather(xyz, 1, idx[..., None].expand(-1, -1, 3))
        feats = _pad_scenes(batch, features, n)
        seed_feat = self.seed_proj(torch.gather(feats, 1, idx[..., None].expand(-1, -1, feats.shape[-1])))
        v = self.vote(seed_feat)
        vote_xyz = seed_xyz + v[..., :3]
        vote_feat = F.normalize(seed_feat + v[..., 3:], dim=-1)
        with torch.no_grad():
            centre_idx = farthest_point_sampling(vote_xyz.detach(), self.num_proposals)
        centres = torch.gather(vote_xyz, 1, centre_idx[..., None].expand(-1, -1, 3))
        nb = knn(centres.detach(), vote_xyz.detach(), self.group)[1]  # [B, P, G]
        gather = lambda t: torch.gather(t[:, None].expand(-1, nb.shape[1], -1, -1), 2, nb[..., None].expand(-1, -1, -1, t.shape[-1]))  # noqa: E731
        # Proposals read vote positions without sending gradients back into them: only the vote loss moves votes.
        # With gradients flowing, the proposal losses held the votes at their seeds (vote loss at the zero-offset
        # value, ~1.1, for 1,100 steps on rooms) and detection stayed near 0 mAP.
        centres = centres.detach()
        rel = (gather(vote_xyz.detach()) - centres[:, :, None]) / self.positive_radius
        grouped = self.group_mlp(torch.cat([rel, gather(vote_feat)], -1)).max(2).values
        out = self.proposal(grouped)
        return {"seed_xyz": seed_xyz, "vote_xyz": vote_xyz, "centres": centres, "raw": out}

    def _split(self, raw: Tensor) -> Dict[str, Tensor]:
        C, H = self.num_classes, self.heading_bins
        parts = {"objectness": raw[..., :2], "centre": raw[..., 2:5], "log_size": raw[..., 5:8], "class": raw[..., 8:8 + C]}
        if self.yaw:
            parts["heading_class"] = raw[..., 8 + C:8 + C + H]
            parts["heading_residual"] = raw[..., 8 + C + H:8 + C + 2 * H]
        return parts

    def loss(self, out: Dict[str, Tensor], boxes: List[Tensor]) -> Dict[str, Tensor]:
        """VoteNet's losses against per-scene ground-truth boxes ``[K, 7|8]`` (a scene may have none)."""
        p = self._split(out["raw"])
        device = out["raw"].device
        vote_terms, obj_terms, centre_terms, size_terms, cls_terms, hcls_terms, hres_terms = [], [], [], [], [], [], []
        for b, gt in enumerate(boxes):
            gt = gt.to(device)
            seeds, votes, centres = out["seed_xyz"][b], out["vote_xyz"][b], out["centres"][b]
            if len(gt) == 0:  # a scene without objects: every proposal is negative
                obj_terms.append(F.cross_entropy(p["objectness"][b], torch.zeros(len(centres), dtype=torch.long, device=device),
                                                 weight=torch.tensor([0.2, 0.8], device=device)))
                continue
            g_centre, g_size = gt[:, :3], gt[:, 3:6]
            # votes: seeds inside a box regress that box's centre (the smallest box when boxes overlap)
            yaw_boxes = gt.shape[1] == 8
            inside = _inside_yawed(seeds, gt) if yaw_boxes else ((seeds[:, None] - g_centre[None]).abs() <= g_size[None] / 2).all(-1)
            if inside.any():
                volume = g_size.prod(1)
                owner = torch.where(inside, volume[None], torch.full_like(inside, math.inf, dtype=volume.dtype)).argmin(1)
                on = inside.any(1)
                vote_terms.append((votes[on] - g_centre[owner[on]]).abs().sum(-1).mean())
            dist, nearest = torch.cdist(centres.detach(), g_centre).min(1)
            label = torch.full((len(centres),), -1, dtype=torch.long, device=device)
            label[dist > self.negative_radius] = 0
            label[dist < self.positive_radius] = 1
            known = label >= 0
            if known.any():
                obj_terms.append(F.cross_entropy(p["objectness"][b][known], label[known], weight=torch.tensor([0.2, 0.8], device=device)))
            pos = label == 1
            if pos.any():
                target = gt[nearest[pos]]
                centre = centres[pos] + p["centre"][b][pos]
                centre_terms.append(F.smooth_l1_loss(centre, target[:, :3], beta=0.15, reduction="sum") / pos.sum())
                size_terms.append((p["log_size"][b][pos] - target[:, 3:6].clamp_min(1e-3).log()).abs().sum(-1).mean())
                cls_terms.append(F.cross_entropy(p["class"][b][pos], target[:, -1].long()))
                if self.yaw and yaw_boxes:
                    angle = target[:, 6] % (2 * math.pi)
                    bin_size = 2 * math.pi / self.heading_bins
                    hbin = (angle / bin_size).long().clamp_max(self.heading_bins - 1)
                    residual = angle - (hbin.float() + 0.5) * bin_size
                    hcls_terms.append(F.cross_entropy(p["heading_class"][b][pos], hbin))
                    pred_res = p["heading_residual"][b][pos].gather(1, hbin[:, None])[:, 0]
                    hres_terms.append(F.smooth_l1_loss(pred_res, residual / (bin_size / 2)))
        zero = out["raw"].sum() * 0.0
        mean = lambda terms: torch.stack(terms).mean() if terms else zero  # noqa: E731
        losses = {"vote": mean(vote_terms), "objectness": mean(obj_terms), "centre": mean(centre_terms), "size": mean(size_terms),
                  "class": mean(cls_terms)}
        total = self.vote_weight * losses["vote"] + 0.5 * losses["objectness"] + losses["centre"] + losses["size"] + 0.1 * losses["class"]
        if self.yaw:
            losses["heading_class"], losses["heading_residual"] = mean(hcls_terms), mean(hres_terms)
            total = total + 0.1 * losses["heading_class"] + losses["heading_residual"]
        losses["loss"] = total
        return losses

    @torch.no_grad()
    def predict(self, out: Dict[str, Tensor]) -> List[Dict[str, Tensor]]:
        """Per scene, ``{"boxes": [K, 7|8] (centre, size[, yaw], class), "scores": [K]}`` after per-class NMS."""
        p = self._split(out["raw"])
        results = []
        for b in range(out["raw"].shape[0]):
            obj = p["objectness"][b].softmax(-1)[:, 1]
            cls_prob, cls = p["class"][b].softmax(-1).max(-1)
            centre = out["centres"][b] + p["centre"][b]
            size = p["log_size"][b].clamp(-5, 3).exp()
            parts = [centre, size]
            if self.yaw:
                bin_size = 2 * math.pi / self.heading_bins
                hbin = p["heading_class"][b].argmax(-1)
                res = p["heading_residual"][b].gather(1, hbin[:, None])[:, 0] * (bin_size / 2)
                parts.append(((hbin.float() + 0.5) * bin_size + res)[:, None])
            geometry = torch.cat(parts, 1)
            score = obj * cls_prob
            keep = nms_3d(geometry.cpu(), score.cpu(), cls.cpu(), self.nms_iou).to(geometry.device)
            results.append({"boxes": torch.cat([geometry[keep], cls[keep, None].float()], 1), "scores": score[keep]})
        return results


def _inside_yawed(points: Tensor, boxes: Tensor) -> Tensor:
    """``[N, K]``: whether each point lies inside each yawed box ``[K, 8]``."""
    d = points[:, None] - boxes[None, :, :3]
    c, s = boxes[:, 6].cos(), boxes[:, 6].sin()
    local_x = d[..., 0] * c + d[..., 1] * s
    local_y = -d[..., 0] * s + d[..., 1] * c
    half = boxes[None, :, 3:6] / 2
    return (local_x.abs() <= half[..., 0]) & (local_y.abs() <= half[..., 1]) & (d[..., 2].abs() <= half[..., 2])
