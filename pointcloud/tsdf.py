"""A coloured point cloud from posed RGB-D frames by TSDF fusion (Curless & Levoy, SIGGRAPH 1996;
the voxel-hashing variant of Niessner et al., SIGGRAPH Asia 2013), on open3d's ``VoxelBlockGrid``.

open3d's older ``ScalableTSDFVolume`` returns empty meshes in 0.20 (ANCHORS.md), so only the tensor
``VoxelBlockGrid`` is used. Each frame's depth is integrated into a hashed grid of truncated signed
distances with colour; the surface is read back as the zero crossing of the TSDF. (open3d finds a crossing between a voxel
and its neighbour by a sign change: a surface that passes exactly through voxel centres, as a
synthetic plane at a multiple of the voxel size can, is not extracted.)
"""

from __future__ import annotations

from typing import Dict, Sequence

import numpy as np
import torch
from torch import Tensor

from geossl.errors import GeosslError
from geossl.ops.camera import check_intrinsics, check_pose, invert_pose

from geossl.pointcloud.open3d_loader import import_open3d
from geossl.frames import RGBDFrame


class FusionError(GeosslError, ValueError):
    """Frames or settings that TSDF fusion cannot use."""


def fuse_tsdf(frames: Sequence[RGBDFrame], voxel_size: float = 0.01, trunc_voxels: float = 4.0,
              depth_max: float = 4.0, weight_threshold: float = 3.0, block_resolution: int = 8) -> Dict[str, Tensor]:
    """Fuse posed RGB-D frames into one coloured surface point cloud.

    Args:
        frames: :class:`~geossl.frames.RGBDFrame` s (depth in metres, 0 = invalid; colour in
            [0, 1] of the depth image's size; ``K`` of that size; ``cam_to_world`` poses).
        voxel_size: edge of a TSDF voxel in metres; the output has about one point per surface voxel.
        trunc_voxels: truncation distance of the signed distance, in voxels.
        depth_max: depths beyond this (metres) are ignored.
        weight_threshold: a surface voxel is kept when at least this many frame observations
            (integration weight) support it; 1 keeps everything seen once.
        block_resolution: voxels per edge of a hashed block (open3d allocates whole blocks).

    Returns:
        ``{"coord": [N, 3], "feat": [N, 3] rgb in [0, 1], "normal": [N, 3]}`` float32, world frame.
    """
    if len(frames) == 0:
        raise FusionError("TSDF fusion needs at least one RGB-D frame; got none.")
    if not voxel_size > 0:
        raise FusionError(f"voxel_size must be > 0 metres, got {voxel_size}.")
    if not trunc_voxels > 0 or not depth_max > 0:
        raise FusionError(f"trunc_voxels and depth_max must be > 0, got {trunc_voxels} and {depth_max}.")
    o3d = import_open3d()
    o3c = o3d.core
    grid = o3d.t.geometry.VoxelBlockGrid(
        attr_names=("tsdf", "weight", "color"), attr_dtypes=(o3c.float32, o3c.float32, o3c.float32),
        attr_channels=((1), (1), (3)), voxel_size=float(voxel_size), block_resolution=int(block_resolution),
        block_count=1000, device=o3c.Device("CPU:0"))  # the block hash map grows as needed
    valid_pixels = 0
    for f in frames:
        h, w = f.depth.shape
        if tuple(f.color.shape) != (h, w, 3):
            raise FusionError(f"{f.name}: colour {list(f.color.shape)} does not match depth {list(f.depth.shape)}.")
        check_intrinsics(f.K, f"{f.name}: K")
        check_pose(f.cam_to_world, f"{f.name}: pose")
        depth_np = torch.nan_to_num(f.depth.float(), nan=0.0, posinf=0.0, neginf=0.0).contiguous().numpy()
        valid = int((depth_np > 0).sum())
        if valid == 0:
            continue
        valid_pixels += valid
        depth = o3d.t.geometry.Image(o3c.Tensor(depth_np))
        color = o3d.t.geometry.Image(o3c.Tensor(f.color.float().contiguous().numpy()))
        K = o3c.Tensor(f.K.double().numpy())
        world_to_cam = o3c.Tensor(invert_pose(f.cam_to_world.double()).numpy())
        blocks = grid.compute_unique_block_coordinates(depth, K, world_to_cam, 1.0, float(depth_max), float(trunc_voxels))
        grid.integrate(blocks, depth, color, K, K, world_to_cam, 1.0, float(depth_max), float(trunc_voxels))
    if valid_pixels == 0:
        raise FusionError(f"None of the {len(frames)} frames has a valid depth pixel (all 0 or non-finite).")
    cloud = grid.extract_point_cloud(weight_threshold=float(weight_threshold))
    if "positions" not in cloud.point or cloud.point.positions.shape[0] == 0:
        raise FusionError(f"TSDF fusion kept no surface: no voxel reached weight {weight_threshold} "
                          f"over {len(frames)} frames; lower weight_threshold or add frames.")
    out = {"coord": cloud.point.positions, "feat": cloud.point.colors, "normal": cloud.point.normals}
    return {k: torch.from_numpy(np.ascontiguousarray(v.numpy(), dtype=np.float32)) for k, v in out.items()}
