"""Batches of point clouds as one concatenated cloud with an ``offset`` of cumulative point counts
(the Pointcept convention), and their voxelisation for sparse convolution. The exchange type of the
scene half: datasets collate into it, encoders and methods take it (so it lives in the core).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import torch
from torch import Tensor

from geossl.errors import GeosslError
from geossl.frames import Views


class PointBatchError(GeosslError, ValueError):
    """A point batch that cannot be built or voxelised: empty clouds, NaN coordinates, bad sizes."""


@dataclass
class PointBatch:
    """A batch of ``B`` scenes.

    Attributes:
        coord: ``[N, 3]`` metres.
        feat: ``[N, C]`` point features (colours, normals, ...).
        offset: ``[B]`` cumulative point counts: scene ``b`` is ``coord[offset[b-1]:offset[b]]``.
        labels: optional per-point semantic class ``[N]`` (-1: ignored).
        boxes: optional per-scene boxes, a list of ``[K_b, 7]`` (centre, size, class) or ``[K_b, 8]``
            (centre, size, yaw, class).
        views: optional posed views of every scene (:class:`~geossl.frames.Views`).
        names: optional scene names.
    """

    coord: Tensor
    feat: Tensor
    offset: Tensor
    labels: Optional[Tensor] = None
    boxes: Optional[List[Tensor]] = None
    views: Optional[Views] = None
    names: Optional[List[str]] = None

    @property
    def batch_size(self) -> int:
        return len(self.offset)

    @property
    def batch_index(self) -> Tensor:
        """The scene of every point ``[N]``."""
        counts = torch.diff(self.offset, prepend=self.offset.new_zeros(1))
        return torch.repeat_interleave(torch.arange(len(counts), device=self.coord.device), counts)

    def scene_slices(self) -> List[slice]:
        """``coord[s]`` is scene ``b``'s points for the ``b``-th slice."""
        ends = self.offset.tolist()
        return [slice(a, b) for a, b in zip([0] + ends[:-1], ends)]

    def to(self, device) -> "PointBatch":
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return PointBatch(move(self.coord), move(self.feat), move(self.offset), move(self.labels),
                          None if self.boxes is None else [b.to(device) for b in self.boxes],
                          None if self.views is None else self.views.to(device), self.names)

    def voxelize(self, voxel_size: float, grid: Optional[Sequence[int]] = None):
        """Voxels of ``voxel_size`` metres per scene (cells of a world-aligned grid, shifted by whole
        voxels so that each scene's lowest occupied cell is 0).

        Returns ``(indices [M, 4] int32 (batch, z, y, x), features [M, C] (mean of the points in
        each voxel), inverse [N] (the voxel of every point), spatial_shape [3])``. ``grid`` bounds
        the spatial shape; a scene that does not fit is refused.
        """
        if not voxel_size > 0:
            raise PointBatchError(f"voxel_size must be > 0, got {voxel_size}.")
        if not torch.isfinite(self.coord).all():
            raise PointBatchError("coordinates contain NaN or inf.")
        b = self.batch_index
        cells = torch.floor(self.coord / voxel_size).long()  # a world-aligned grid...
        first = torch.stack([cells[s].min(0).values for s in self.scene_slices()])
        cells = cells - first[b]  # ...shifted by whole voxels so each scene starts at 0
        keys = torch.cat([b[:, None], cells[:, [2, 1, 0]]], 1)  # (batch, z, y, x)
        uniq, inverse = torch.unique(keys, dim=0, return_inverse=True)
        counts = torch.bincount(inverse, minlength=len(uniq)).clamp_min(1)[:, None].to(self.feat.dtype)
        feats = torch.zeros(len(uniq), self.feat.shape[1], dtype=self.feat.dtype, device=self.feat.device)
        feats = feats.index_add_(0, inverse, self.feat) / counts
        shape = (uniq[:, 1:].max(0).values + 1).tolist()
        if grid is not None:
            if any(s > g for s, g in zip(shape, grid)):
                raise PointBatchError(f"a scene spans {shape} voxels of {voxel_size} m (z, y, x), more than the configured "
                                      f"grid {list(grid)}: use a larger voxel or grid.")
            shape = list(grid)
        return uniq.to(torch.int32).contiguous(), feats, inverse, shape


def collate(scenes: Sequence[Dict[str, Any]]) -> PointBatch:
    """One :class:`PointBatch` from scenes given as dicts with ``coord``, ``feat`` and optionally
    ``labels``, ``boxes``, ``views`` (a list of :class:`~geossl.frames.RGBDFrame`) and ``name``."""
    if not scenes:
        raise PointBatchError("collate needs at least one scene.")
    for i, s in enumerate(scenes):
        if len(s["coord"]) == 0:
            raise PointBatchError(f"scene {i} has no points.")
        if s["coord"].shape[0] != s["feat"].shape[0]:
            raise PointBatchError(f"scene {i}: {s['coord'].shape[0]} coordinates but {s['feat'].shape[0]} feature rows.")
    offset = torch.cumsum(torch.tensor([len(s["coord"]) for s in scenes]), 0)
    labels = torch.cat([s["labels"] for s in scenes]) if all("labels" in s for s in scenes) else None
    boxes = [s["boxes"] for s in scenes] if all("boxes" in s for s in scenes) else None
    views = Views.stack([s["views"] for s in scenes]) if all(s.get("views") for s in scenes) else None
    names = [str(s["name"]) for s in scenes] if all("name" in s for s in scenes) else None
    return PointBatch(torch.cat([s["coord"] for s in scenes]).float(), torch.cat([s["feat"] for s in scenes]).float(),
                      offset, labels, boxes, views, names)


def devoxelize(voxel_features: Tensor, inverse: Tensor) -> Tensor:
    """Per-point features from per-voxel ones: ``voxel_features[inverse]``."""
    return voxel_features[inverse]
