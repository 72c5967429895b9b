"""A semantic segmenter: any scene encoder as the backbone and a per-point head of :data:`geossl.registry.HEADS`
(``group="segmentation"``: ``linear``), saved and loaded like a detector (:mod:`geossl.pointcloud.finetuned`).

A whole scene is segmented as Pointcept tests: grid-sampled at the training voxel size, covered by pieces of the
training point budget (crops around the points no piece has covered yet, or a random partition for a subsample
budget), each piece's class probabilities summed over the pieces that hold a point, and every original point given
the class of its grid cell's point (:func:`segment_scene`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch
from torch import Tensor

from geossl.encoder import Encoder
from geossl.errors import ConfigError
from geossl.points import PointBatch, collate
from geossl.registry import HEADS
from geossl.pointcloud.finetuned import FinetunedModel, finetuned_kind, load_finetuned, save_finetuned
from geossl.pointcloud.transforms import CenterShift, grid_cells, select_points


@finetuned_kind
class Segmenter(FinetunedModel):
    """``backbone`` + a per-point segmentation head.

    Args:
        backbone: a scene :class:`~geossl.encoder.Encoder` (per-point features).
        classes: the semantic class names (a point's label indexes them; -1: unlabelled).
        head: registry name of the head (``HEADS``, group ``segmentation``).
        head_config: the head's keyword arguments (besides ``in_dim`` and ``num_classes``).
        freeze_backbone: keep the backbone as it is (no gradients, eval mode): a probe of the frozen features.
        backbone_lr: the backbone's learning rate as a fraction of the head's (0 < x <= 1; ignored when frozen).
        voxel, points, budget: the training items' grid size (metres, 0: none), point budget and budget mode (the
            run's ``transform``): whole scenes are segmented at that density in pieces of that size
            (:func:`segment_scene`), and a saved segmenter keeps them, so its scores do not depend on later settings.
    """

    FORMAT, FORMAT_VERSION = "geossl-segmenter", 1

    def __init__(self, backbone: Encoder, classes: Sequence[str], head: str = "linear", head_config: Optional[Dict[str, Any]] = None,
                 freeze_backbone: bool = False, backbone_lr: float = 1.0, voxel: float = 0.05, points: int = 2048, budget: str = "crop"):
        super().__init__(backbone, "segmentation", freeze_backbone, backbone_lr)
        if not (voxel >= 0 and points >= 1 and budget in ("crop", "view_crop", "subsample")):
            raise ConfigError(f"A segmenter segments scenes in pieces of points >= 1 at voxel >= 0 with budget crop, view_crop or "
                              f"subsample; got points={points}, voxel={voxel}, budget={budget!r}.")
        self.voxel, self.points, self.budget = float(voxel), int(points), str(budget)
        head_cls = HEADS.get(head, domain="scene")
        if HEADS.tags(head).get("group") != "segmentation":
            raise ConfigError(f"{head!r} is a {HEADS.tags(head).get('group')} head; segmentation heads: "
                              f"{', '.join(n for n in HEADS.having('group', 'scene') if HEADS.tags(n).get('group') == 'segmentation')}.")
        if len(classes) < 2:
            raise ConfigError(f"A segmenter needs at least two classes, got {list(classes)}.")
        self.classes, self.head_name, self.head_config = list(classes), head, dict(head_config or {})
        self.head = head_cls(in_dim=backbone.out_dim, num_classes=len(self.classes), **self.head_config)

    def forward(self, batch: PointBatch) -> Tensor:
        """Class scores ``[N, classes]`` of every point of the batch."""
        return self.head(batch, self.features(batch))

    def loss(self, batch: PointBatch) -> Dict[str, Tensor]:
        if batch.labels is None:
            raise ConfigError("Training a segmenter needs per-point labels: the dataset's items carry none.")
        return self.head.loss(self(batch), batch.labels)

    def config(self) -> Dict[str, Any]:
        return {"classes": self.classes, "head": self.head_name, "head_config": self.head_config,
                "freeze_backbone": self.freeze_backbone, "backbone_lr": self.backbone_lr, "voxel": self.voxel, "points": self.points,
                "budget": self.budget}


def scene_pieces(coord: Tensor, points: int, budget: str, seed: int = 0) -> List[Tensor]:
    """Index sets of at most ``points`` points that together hold every point of ``coord`` ``[M, 3]``: the whole
    scene when it fits; for a ``subsample`` budget a random partition (its last piece topped up to ``points`` with
    points of the others, so every piece has the training density); else (``crop``, ``view_crop``) the ``points``
    nearest points around the lowest-index point no piece holds yet, until every point is held."""
    m = len(coord)
    if m <= points:
        return [torch.arange(m)]
    if budget == "subsample":
        perm = torch.randperm(m, generator=torch.Generator().manual_seed(seed))
        pieces = list(perm.split(points))
        if len(pieces[-1]) < points:
            pieces[-1] = torch.cat([pieces[-1], perm[: points - len(pieces[-1])]])
        return pieces
    held = torch.zeros(m, dtype=torch.bool)
    pieces = []
    while not bool(held.all()):
        centre = coord[int((~held).nonzero()[0])]
        idx = (coord - centre).pow(2).sum(1).topk(points, largest=False).indices
        held[idx] = True
        pieces.append(idx)
    return pieces


@torch.no_grad()
def segment_scene(model: Segmenter, scene: Dict[str, Any], batch_size: int = 8, device="cpu") -> Tensor:
    """The predicted class of every point of a raw (untransformed) ``scene`` dict: centred, grid-sampled at the model's
    ``voxel`` metres (0: every point), covered by :func:`scene_pieces` of its ``points`` points and ``budget``, the
    pieces' class probabilities summed per point, and every point given the class of its cell's point."""
    voxel, points, budget = model.voxel, model.points, model.budget
    scene = CenterShift()(scene, torch.Generator())
    if voxel > 0:
        kept, cell = grid_cells(scene["coord"], voxel)
        sampled = select_points(scene, kept)
    else:
        sampled, cell = scene, torch.arange(len(scene["coord"]))
    coord, feat = sampled["coord"].float(), sampled["feat"].float()
    sums = torch.zeros(len(coord), len(model.classes))
    was = model.training
    model.eval()
    try:
        pieces = scene_pieces(coord, points, budget)
        for start in range(0, len(pieces), batch_size):
            group = pieces[start:start + batch_size]
            batch = collate([{"coord": coord[idx], "feat": feat[idx]} for idx in group]).to(device)
            probs = model.head.scores(model(batch)).float().cpu()
            sums.index_add_(0, torch.cat(group), probs)
    finally:
        model.train(was)
    return sums.argmax(1)[cell]


def save_segmenter(segmenter: Segmenter, path: str | os.PathLike, metadata: Optional[Dict[str, Any]] = None) -> Path:
    """Write a segmenter to a ``.safetensors`` file (weights and a JSON header; no pickle)."""
    return save_finetuned(segmenter, path, metadata)


def load_segmenter(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Segmenter:
    """Rebuild a segmenter written by :func:`save_segmenter` (eval mode); any other file is refused with the reason."""
    return load_finetuned(path, Segmenter, map_location)
