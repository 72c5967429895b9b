"""Pinhole camera helpers in the OpenCV convention, shared by rendering and the RGB-D datasets.

Conventions (the same as gsplat's):

* Camera frame: x right, y down, z forward (OpenCV). A point is in front of the camera when z > 0.
* ``viewmat`` is world -> camera (a 4x4 ``[R | t]``, ``x_cam = R x_world + t``); ``cam_to_world``
  is its inverse, the "pose" most datasets store.
* ``K`` is ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]`` in pixels. Image coordinates are continuous:
  pixel ``(row r, column c)`` covers ``[c, c + 1) x [r, r + 1)`` and its centre is
  ``(c + 0.5, r + 0.5)``; ``u = fx * x / z + cx``, ``v = fy * y / z + cy``.
"""

from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor

from geossl.errors import GeosslError


class CameraError(GeosslError, ValueError):
    """A camera that cannot be used: non-positive focal lengths, a singular pose, bad shapes."""


def check_intrinsics(Ks: Tensor, name: str = "Ks") -> None:
    """Refuse intrinsics ``[..., 3, 3]`` that are not finite or whose focal lengths are not positive."""
    if Ks.shape[-2:] != (3, 3):
        raise CameraError(f"{name} must have shape [..., 3, 3], got {list(Ks.shape)}.")
    if not torch.isfinite(Ks).all():
        raise CameraError(f"{name} contains NaN or inf.")
    f = torch.stack([Ks[..., 0, 0], Ks[..., 1, 1]], -1)
    if (f <= 0).any():
        raise CameraError(f"{name} has a non-positive focal length (fx, fy = {f.reshape(-1, 2)[0].tolist()} ...); "
                          "focal lengths are in pixels and must be > 0.")


def check_pose(T: Tensor, name: str = "pose") -> None:
    """Refuse 4x4 rigid transforms ``[..., 4, 4]`` that are not finite or whose rotation part is singular."""
    if T.shape[-2:] != (4, 4):
        raise CameraError(f"{name} must have shape [..., 4, 4], got {list(T.shape)}.")
    if not torch.isfinite(T).all():
        raise CameraError(f"{name} contains NaN or inf.")
    det = torch.linalg.det(T[..., :3, :3].double())
    if (det.abs() < 1e-6).any():
        raise CameraError(f"{name} is not invertible: its 3x3 rotation part has determinant {float(det.reshape(-1)[det.reshape(-1).abs().argmin()]):.3g}.")


def check_rigid(T: Tensor, name: str = "pose", tol: float = 1e-2) -> None:
    """Refuse a camera -> world pose ``[4, 4]`` read from a file that is not a rigid motion: its bottom row must be
    ``0 0 0 1`` and its 3x3 part a rotation (``R^T R = I`` within ``tol``, determinant +1), so a reflection, a scale
    or a projective row is named instead of silently warping the views. ``tol`` allows the rounding of poses
    printed with a few decimals (7-Scenes' sample poses are orthonormal to 4e-4)."""
    check_pose(T, name)
    M = T.double()
    if (M[..., 3, :] - M.new_tensor([0.0, 0.0, 0.0, 1.0])).abs().max() > 1e-6:
        raise CameraError(f"{name} has bottom row {M[..., 3, :].reshape(-1, 4)[0].tolist()}; a rigid pose's is 0 0 0 1.")
    R = M[..., :3, :3]
    error = float((R.transpose(-1, -2) @ R - torch.eye(3, dtype=M.dtype)).abs().max())
    if error > tol:
        raise CameraError(f"{name} is not a rotation and translation: R^T R differs from the identity by {error:.3g} "
                          f"(a scale or shear; allowed {tol}).")
    if (torch.linalg.det(R) < 0).any():
        raise CameraError(f"{name} is a reflection (its rotation part has determinant -1); a camera pose must be a rotation.")


def invert_pose(T: Tensor) -> Tensor:
    """The inverse of 4x4 transforms ``[..., 4, 4]`` (world->camera <-> camera->world), after
    checking that they are invertible."""
    check_pose(T)
    return torch.linalg.inv(T)


def transform_points(T: Tensor, points: Tensor) -> Tensor:
    """``T`` ``[4, 4]`` applied to ``points`` ``[N, 3]``: ``R p + t``, ``[N, 3]``."""
    return points @ T[:3, :3].T + T[:3, 3]


def project_points(points: Tensor, viewmat: Tensor, K: Tensor) -> Tuple[Tensor, Tensor]:
    """World ``points`` ``[N, 3]`` to continuous pixel coordinates ``uv`` ``[N, 2]`` and camera
    depths ``z`` ``[N]`` through ``viewmat`` (world->camera, ``[4, 4]``) and ``K`` ``[3, 3]``.
    Points with ``z <= 0`` are behind the camera; their ``uv`` is meaningless (check ``z``)."""
    check_intrinsics(K, "K")
    cam = transform_points(viewmat, points)
    z = cam[:, 2]
    safe = torch.where(z.abs() > 1e-12, z, torch.full_like(z, 1e-12))
    uv = torch.stack([K[0, 0] * cam[:, 0] / safe + K[0, 2], K[1, 1] * cam[:, 1] / safe + K[1, 2]], -1)
    return uv, z


def pixel_rays(K: Tensor, width: int, height: int) -> Tensor:
    """Camera-frame directions with ``z = 1`` through every pixel centre: ``[H, W, 3]``."""
    check_intrinsics(K, "K")
    v, u = torch.meshgrid(torch.arange(height, dtype=K.dtype, device=K.device) + 0.5,
                          torch.arange(width, dtype=K.dtype, device=K.device) + 0.5, indexing="ij")
    return torch.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], torch.ones_like(u)], -1)


def backproject_depth(depth: Tensor, K: Tensor, cam_to_world: Tensor, min_depth: float = 0.0,
                      max_depth: float = float("inf")) -> Tuple[Tensor, Tensor]:
    """World points of the valid pixels of a depth image.

    Args:
        depth: ``[H, W]`` metric depth (z along the optical axis, not ray length); ``0`` (or
            anything outside ``(min_depth, max_depth)``, or NaN) marks an invalid pixel.
        K: ``[3, 3]`` intrinsics of this image size.
        cam_to_world: ``[4, 4]`` camera pose (camera -> world).
        min_depth, max_depth: the valid depth range (exclusive, inclusive).

    Returns:
        ``(points [M, 3], pixel_index [M])`` where ``pixel_index = row * W + column`` of each point.
    """
    if depth.dim() != 2:
        raise CameraError(f"depth must be [H, W], got {list(depth.shape)}.")
    check_pose(cam_to_world, "cam_to_world")
    h, w = depth.shape
    valid = torch.isfinite(depth) & (depth > min_depth) & (depth <= max_depth)
    idx = valid.reshape(-1).nonzero().view(-1)
    rays = pixel_rays(K.to(depth.dtype), w, h).reshape(-1, 3)[idx]
    cam = rays * depth.reshape(-1)[idx, None]
    return transform_points(cam_to_world.to(depth.dtype), cam), idx


def scale_intrinsics(K: Tensor, sx: float, sy: float) -> Tensor:
    """Intrinsics for an image resized by ``sx`` horizontally and ``sy`` vertically (pixel-edge
    convention: ``u' = sx * u``, so ``fx' = sx fx``, ``cx' = sx cx``)."""
    out = K.clone()
    out[..., 0, 0] *= sx
    out[..., 0, 2] *= sx
    out[..., 1, 1] *= sy
    out[..., 1, 2] *= sy
    return out
