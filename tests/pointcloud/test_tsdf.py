"""TSDF fusion: a plane seen head-on is fused where it is; real 7-Scenes frames fuse into a surface
within 2 cm of their back-projected depth; unusable input is refused."""

import pytest
import torch

from geossl.ops.camera import backproject_depth
from geossl.frames import RGBDFrame
from geossl.pointcloud.rgbd import sevenscenes
from geossl.pointcloud.tsdf import FusionError, fuse_tsdf
from tests.conftest import requires_sevenscenes


def _plane_frames(depth_m=1.503, n=3):
    K = torch.tensor([[100.0, 0, 40], [0, 100.0, 30], [0, 0, 1]])
    frames = []
    for i in range(n):  # cameras slid sideways along x, all facing +z at the plane z = depth_m
        pose = torch.eye(4)
        pose[0, 3] = 0.05 * i
        frames.append(RGBDFrame(torch.full((60, 80, 3), 0.5), torch.full((60, 80), depth_m), K, pose, f"f{i}"))
    return frames


def test_a_plane_seen_head_on_is_fused_at_its_depth_with_its_colour():
    s = fuse_tsdf(_plane_frames(), voxel_size=0.01, weight_threshold=1.0)
    assert len(s["coord"]) > 1000
    assert (s["coord"][:, 2] - 1.503).abs().max() < 1e-4  # on the plane (interpolated zero crossing)
    inner = s["coord"][:, 1].abs() < 0.44  # rows at the image border (y = +-0.45 m) blend with unobserved voxels
    assert (s["feat"][inner] - 0.5).abs().max() < 1e-3
    assert (s["normal"][:, 2].abs() > 0.9).float().mean() > 0.95  # normals along the viewing axis
    # The footprint: the first camera sees x in [-0.6, 0.6] m at 1.5 m (80 px, fx 100, cx 40); the last 0.1 m further.
    assert -0.62 < s["coord"][:, 0].min() < -0.5 and 0.6 < s["coord"][:, 0].max() < 0.72


@requires_sevenscenes
def test_sevenscenes_frames_fuse_to_a_surface_within_2cm_of_the_backprojected_depth():
    from scipy.spatial import cKDTree

    seq = sevenscenes(stride=40, max_frames=5)  # frames 0, 200, ..., 800 of the real sequence, 640x480
    s = fuse_tsdf(seq.frames, voxel_size=0.01, weight_threshold=2.0)
    assert len(s["coord"]) > 20_000
    depth_points = torch.cat([backproject_depth(f.depth, f.K, f.cam_to_world)[0] for f in seq.frames])
    dist, _ = cKDTree(depth_points.numpy()).query(s["coord"].numpy())
    dist = torch.from_numpy(dist)
    assert (dist < 0.02).float().mean() > 0.99, (dist < 0.02).float().mean()  # measured 99.6%
    assert dist.median() < 0.005, dist.median()  # measured 2.8 mm
    assert 0 <= s["feat"].min() and s["feat"].max() <= 1


def test_unusable_input_is_refused():
    with pytest.raises(FusionError, match="at least one"):
        fuse_tsdf([])
    with pytest.raises(FusionError, match="voxel_size must be > 0"):
        fuse_tsdf(_plane_frames(), voxel_size=0.0)
    empty = _plane_frames(depth_m=0.0)
    with pytest.raises(FusionError, match="has a valid depth pixel"):
        fuse_tsdf(empty)
    with pytest.raises(FusionError, match="no voxel reached weight 10"):
        fuse_tsdf(_plane_frames(n=2), weight_threshold=10.0)
    bad = _plane_frames(n=1)
    bad[0].color = bad[0].color[:10]
    with pytest.raises(FusionError, match="does not match depth"):
        fuse_tsdf(bad)
