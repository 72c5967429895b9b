"""Posed RGB-D frames: the camera type that scene datasets produce and Gaussian fitting and rendering
consume (shared by ``geossl.pointcloud`` and ``geossl.gaussians``, so it lives in the core).

Conventions (those of ``geossl.ops.camera``): colour ``[H, W, 3]`` float in [0, 1], depth ``[H, W]``
metres along the optical axis with 0 = invalid, ``K`` ``[3, 3]`` OpenCV intrinsics of that image
size, ``cam_to_world`` ``[4, 4]`` camera -> world.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple

import torch
from torch import Tensor

from geossl.errors import GeosslError


class FramesError(GeosslError, ValueError):
    """Frames that cannot be batched or used together (different sizes, counts or shapes)."""


@dataclass
class RGBDFrame:
    """One posed RGB-D frame (see the module docstring for the conventions)."""

    color: Tensor
    depth: Tensor
    K: Tensor
    cam_to_world: Tensor
    name: str

    @property
    def size(self) -> Tuple[int, int]:
        """``(width, height)``."""
        return self.color.shape[1], self.color.shape[0]

    def to(self, device) -> "RGBDFrame":
        return RGBDFrame(self.color.to(device), self.depth.to(device), self.K.to(device), self.cam_to_world.to(device), self.name)


@dataclass
class RGBDSequence:
    """Frames of one scene, in recording order."""

    frames: List[RGBDFrame]
    name: str

    def split(self, test_every: int = 10) -> Tuple[List[RGBDFrame], List[RGBDFrame]]:
        """``(train, test)``: frames whose position is a multiple of ``test_every`` are held out."""
        test = [f for i, f in enumerate(self.frames) if i % test_every == 0]
        train = [f for i, f in enumerate(self.frames) if i % test_every != 0]
        return train, test


@dataclass
class Views:
    """``V`` posed views of each of ``B`` scenes, stacked: ``color [B, V, H, W, 3]``, ``depth [B, V, H, W]``,
    ``K [B, V, 3, 3]``, ``cam_to_world [B, V, 4, 4]``."""

    color: Tensor
    depth: Tensor
    K: Tensor
    cam_to_world: Tensor

    @classmethod
    def stack(cls, per_scene: Sequence[Sequence[RGBDFrame]]) -> "Views":
        """Views from ``per_scene[b][v]`` frames; every scene must bring as many frames of one size."""
        counts = {len(fs) for fs in per_scene}
        if len(counts) != 1 or 0 in counts:
            raise FramesError(f"every scene of a batch needs the same number (>= 1) of views, got {sorted(counts)}.")
        sizes = {f.size for fs in per_scene for f in fs}
        if len(sizes) != 1:
            raise FramesError(f"views of one batch must share one image size, got {sorted(sizes)} (width, height).")
        field = lambda name: torch.stack([torch.stack([getattr(f, name) for f in fs]) for fs in per_scene])  # noqa: E731
        return cls(field("color"), field("depth"), field("K"), field("cam_to_world"))

    @property
    def size(self) -> Tuple[int, int]:
        """``(width, height)``."""
        return self.color.shape[3], self.color.shape[2]

    def __len__(self) -> int:
        return self.color.shape[0]

    def scene(self, b: int) -> List[RGBDFrame]:
        """The views of scene ``b`` as frames."""
        return [RGBDFrame(self.color[b, v], self.depth[b, v], self.K[b, v], self.cam_to_world[b, v], f"view{v}")
                for v in range(self.color.shape[1])]

    def to(self, device) -> "Views":
        return Views(self.color.to(device), self.depth.to(device), self.K.to(device), self.cam_to_world.to(device))
