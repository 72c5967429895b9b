"""Batches of point clouds as one concatenated cloud with an ``offset`` of cumulative point counts
(the Pointcept convention), and their voxelisation for sparse convolution.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import torch
from torch import Tensor

from geossl.errors import GeosslError


class PointBatchError(GeosslError, ValueError):
    """A point batch that cannot be built or voxelised: empty clouds, NaN coordinates, bad sizes."""


@dataclass
class PointBatch:
    """``coord`` ``[N, 3]`` metres, ``feat`` ``[N, C]`` (colours, normals, ...), ``offset`` ``[B]``
    cumulative point counts (scene ``b`` is ``coord[offset[b-1]:offset[b]]``), optional per-point
    ``labels`` ``[N]`` and per-scene ``boxes`` (a list of ``[K_b, 7]``: centre, size, class)."""

    coord: Tensor
    feat: Tensor
    offset: Tensor
    labels: Optional[Tensor] = None
    boxes: Optional[List[Tensor]] = None

    @property
    def batch_size(self) -> int:
        return len(self.offset)

    @property
    def batch_index(self) -> Tensor:
        """The scene of every point ``[N]``."""
        counts = torch.diff(self.offset, prepend=self.offset.new_zeros(1))
        return torch.repeat_interleave(torch.arange(len(counts), device=self.coord.device), counts)

    def to(self, device) -> "PointBatch":
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return PointBatch(move(self.coord), move(self.feat), move(self.offset), move(self.labels),
                          None if self.boxes is None else [b.to(device) for b in self.boxes])

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
        first = torch.stack([cells[b == i].min(0).values for i in range(self.batch_size)])
        cells = cells - first[b]  # ...shifted by whole voxels so each scene starts at 0
        keys = torch.cat([b[:, None], cells[:, [2, 1, 0]]], 1)  # (batch, z, y, x)
        uniq, inverse = torch.unique(keys, dim=0, return_inverse=True)
        counts = torch.bincount(inverse, minlength=len(uniq)).clamp_min(1)[:, None].to(self.feat.dtype)
        feats = torch.zeros(len(uniq), self.feat.shape[1], dtype=self.feat.dtype).index_add_(0, inverse, self.feat) / counts
        shape = (uniq[:, 1:].max(0).values + 1).tolist()
        if grid is not None:
            if any(s > g for s, g in zip(shape, grid)):
                raise PointBatchError(f"a scene spans {shape} voxels of {voxel_size} m (z, y, x), more than the configured "
                                      f"grid {list(grid)}: use a larger voxel or grid.")
            shape = list(grid)
        return uniq.to(torch.int32).contiguous(), feats, inverse, shape


def collate(scenes: Sequence[Dict[str, Tensor]]) -> PointBatch:
    """One :class:`PointBatch` from scenes given as dicts with ``coord``, ``feat`` and optionally
    ``labels`` and ``boxes``."""
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
    return PointBatch(torch.cat([s["coord"] for s in scenes]).float(), torch.cat([s["feat"] for s in scenes]).float(),
                      offset, labels, boxes)


def devoxelize(voxel_features: Tensor, inverse: Tensor) -> Tensor:
    """Per-point features from per-voxel ones: ``voxel_features[inverse]``."""
    return voxel_features[inverse]
