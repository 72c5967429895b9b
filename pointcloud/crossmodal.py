"""Point-patch and image-patch tokens of one scene, aligned and masked complementarily.

Chen, Li, Lin, Zhou, Wang, Sun. "PiMAE: Point Cloud and Image Interactive Masked Autoencoders for 3D Object
Detection", CVPR 2023: every point patch's centre is projected into each posed view (intrinsics ``K`` and
camera-to-world pose) to find the image patch it lands in; the point tokens are masked at random, then every image
patch that a *visible* point patch lands in is masked, so that no region is visible in both modalities, and the
image patches that only *hidden* point patches land in are kept visible where the ratio allows. These are the
pieces of the dual-branch first stage of Gaussian2Scene (Liu et al., arXiv 2506.08777), whose paper describes it
as PiMAE's alignment and complementary masking.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from geossl.errors import ConfigError
from geossl.ops.camera import invert_pose, project_points


def patch_grid(width: int, height: int, patch: int) -> Tuple[int, int]:
    """``(columns, rows)`` of ``patch`` x ``patch`` image patches (a ViT's grid; edge pixels beyond it are dropped)."""
    if patch < 1 or width < patch or height < patch:
        raise ConfigError(f"Image patches of {patch} pixels need an image of at least {patch}x{patch}; got {width}x{height}.")
    return width // patch, height // patch


def image_patch_of_points(points: Tensor, K: Tensor, cam_to_world: Tensor, width: int, height: int, patch: int) -> Tensor:
    """For each view, the image patch each point projects into: ``[V, N]`` indices ``row * columns + column`` into
    the :func:`patch_grid`, or -1 for a point behind the camera or outside the grid.

    Args:
        points: ``[N, 3]`` world coordinates (patch centres).
        K: ``[V, 3, 3]`` OpenCV intrinsics of the ``width`` x ``height`` images.
        cam_to_world: ``[V, 4, 4]`` camera-to-world poses.
        width, height: image size in pixels.
        patch: image patch size in pixels.
    """
    cols, rows = patch_grid(width, height, patch)
    out = []
    for v in range(K.shape[0]):
        uv, z = project_points(points, invert_pose(cam_to_world[v]), K[v])
        col, row = torch.floor(uv[:, 0] / patch), torch.floor(uv[:, 1] / patch)
        inside = (z > 0) & (col >= 0) & (col < cols) & (row >= 0) & (row < rows)
        out.append(torch.where(inside, row.long() * cols + col.long(), torch.full_like(z, -1, dtype=torch.long)))
    return torch.stack(out)


def complementary_masks(patch_of_centre: Tensor, num_image_patches: int, ratio: float,
                        generator: Optional[torch.Generator] = None) -> Tuple[Tensor, Tensor]:
    """PiMAE's complementary masks of one scene: ``(point_hidden [G], image_hidden [V, P])``, True where hidden.

    ``int(ratio * G)`` point patches are hidden at random. In every view, each image patch that a visible point
    patch lands in is hidden (so no region is visible in both modalities); then image patches are hidden at random
    until ``int(ratio * P)`` are, drawing first from those that no hidden point patch lands in, so that the image
    patches of hidden point patches stay visible where the ratio allows. A view in which the visible point patches
    cover more than ``ratio`` of the image hides more than ``int(ratio * P)`` patches.

    Args:
        patch_of_centre: ``[V, G]`` image patch of each point patch's centre in each view (-1: not in the view), as
            :func:`image_patch_of_points` gives.
        num_image_patches: ``P``, image patches per view.
        ratio: share of hidden tokens in each modality (PiMAE and Point-MAE: 0.6), in (0, 1).
        generator: the random source.
    """
    if not 0.0 < ratio < 1.0:
        raise ConfigError(f"The mask ratio must be in (0, 1); got {ratio}.")
    views, centres = patch_of_centre.shape
    device = patch_of_centre.device
    point_hidden = torch.zeros(centres, dtype=torch.bool)
    point_hidden[torch.randperm(centres, generator=generator)[: int(ratio * centres)]] = True
    point_hidden = point_hidden.to(device)
    image_hidden = torch.zeros(views, num_image_patches, dtype=torch.bool, device=device)
    target = int(ratio * num_image_patches)
    for v in range(views):
        landed = patch_of_centre[v]
        of_visible = landed[(landed >= 0) & ~point_hidden]
        of_hidden = landed[(landed >= 0) & point_hidden]
        image_hidden[v, of_visible] = True
        keep_visible = torch.zeros(num_image_patches, dtype=torch.bool, device=device)
        keep_visible[of_hidden] = True
        need = target - int(image_hidden[v].sum())
        if need <= 0:
            continue
        order = torch.randperm(num_image_patches, generator=generator).to(device)
        free = order[~image_hidden[v, order]]
        free = torch.cat([free[~keep_visible[free]], free[keep_visible[free]]])  # others first, then hidden points' patches
        image_hidden[v, free[:need]] = True
    return point_hidden, image_hidden
