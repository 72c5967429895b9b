"""Camera helpers: OpenCV pinhole conventions, back-projection, projection, pose inversion."""

import math

import pytest
import torch

from geossl.ops.camera import (CameraError, backproject_depth, invert_pose, pixel_rays, project_points,
                               scale_intrinsics)

K = torch.tensor([[100.0, 0, 32.0], [0, 120.0, 24.0], [0, 0, 1]])


def _pose(angle=0.3, t=(0.5, -0.2, 1.0)):
    c, s = math.cos(angle), math.sin(angle)
    T = torch.eye(4)
    T[:3, :3] = torch.tensor([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    T[:3, 3] = torch.tensor(t)
    return T


def test_pixel_centres_follow_the_half_pixel_convention():
    rays = pixel_rays(K, 64, 48)
    assert rays.shape == (48, 64, 3)
    # the principal point (32, 24) is the corner between pixels 31 and 32: rays there are +-0.5 px
    assert torch.allclose(rays[24, 32], torch.tensor([0.5 / 100, 0.5 / 120, 1.0]))


def test_backprojected_depth_projects_back_to_its_pixels():
    depth = torch.full((48, 64), 2.0)
    depth[0, :] = 0.0  # invalid
    depth[5, 7] = float("nan")
    cam_to_world = _pose()
    pts, idx = backproject_depth(depth, K, cam_to_world)
    assert len(pts) == 48 * 64 - 64 - 1 and idx.min() == 64
    uv, z = project_points(pts, invert_pose(cam_to_world), K)
    assert torch.allclose(z, torch.full_like(z, 2.0), atol=1e-5)
    cols, rows = idx % 64, idx // 64
    assert torch.allclose(uv, torch.stack([cols + 0.5, rows + 0.5], -1).float(), atol=1e-3)


def test_invert_pose_and_refuse_singular_poses():
    T = _pose()
    assert torch.allclose(invert_pose(T) @ T, torch.eye(4), atol=1e-6)
    with pytest.raises(CameraError, match="not invertible"):
        invert_pose(torch.zeros(4, 4))
    bad = T.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(CameraError, match="NaN"):
        invert_pose(bad)


def test_scaled_intrinsics_keep_points_on_the_same_relative_pixel():
    p = torch.tensor([[0.3, -0.2, 2.0]])
    uv, _ = project_points(p, torch.eye(4), K)
    uv_half, _ = project_points(p, torch.eye(4), scale_intrinsics(K, 0.5, 0.25))
    assert torch.allclose(uv_half, uv * torch.tensor([0.5, 0.25]))


def test_non_positive_focal_lengths_are_refused():
    bad = K.clone()
    bad[1, 1] = -5.0
    with pytest.raises(CameraError, match="non-positive focal length"):
        project_points(torch.zeros(1, 3), torch.eye(4), bad)
