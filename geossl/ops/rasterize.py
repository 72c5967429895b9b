"""Differentiable rasterization of 3D Gaussians (3D Gaussian Splatting, Kerbl et al., SIGGRAPH 2023),
with gsplat's conventions and two backends behind one function.

``rasterize_gaussians`` takes the arguments of ``gsplat.rasterization`` (Ye et al., "gsplat: An
Open-Source Library for Gaussian Splatting", 2024) and returns what it returns. On CUDA tensors it
calls gsplat's CUDA rasterizer; on CPU it runs ``rasterize_gaussians_torch``, our PyTorch
reference: EWA projection of the 3D covariances (``project_gaussians``), culling of Gaussians
behind the near plane, beyond the far plane or outside the image, 8x8 tiles (shorter per-pixel
lists than gsplat's 16x16 GPU tiles, which is faster on a CPU), and front-to-back
alpha compositing with gsplat's rule (``alpha = min(0.999, opacity * exp(-sigma))``, skipped when
``alpha < 1/255`` or ``sigma < 0``, stop before the transmittance would fall to ``1e-4``). The
compositing runs in the compiled C++/OpenMP kernel (``composite_cpu``, float32, the default) or in
vectorised PyTorch (the test oracle, float64), which works through the tiles in chunks whose
pixel x Gaussian work is bounded (``max_pairs``) and recomputes each chunk in the backward pass
(activation checkpointing). Neither holds Gaussians x pixels; gradients reach every input gsplat
differentiates.
"""

from __future__ import annotations

import math
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from geossl.ops.camera import CameraError, check_intrinsics, check_pose

RENDER_MODES = ("RGB", "D", "ED", "RGB+D", "RGB+ED")
BACKENDS = ("auto", "torch", "gsplat")
COMPOSITORS = ("auto", "cpp", "torch")
ALPHA_MAX = 0.999
ALPHA_MIN = 1.0 / 255.0
T_MIN = 1e-4

SH_C0 = 0.28209479177387814
SH_C1 = 0.4886025119029199
SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
SH_C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154, -0.4570457994644658,
         1.445305721320277, -0.5900435899266435)


class RasterizeError(CameraError):
    """Inputs the rasterizer refuses (shapes, non-finite values, unknown modes)."""


def quat_scale_to_covariance(quats: Tensor, scales: Tensor) -> Tensor:
    """3D covariances ``R S S^T R^T`` ``[N, 3, 3]`` from wxyz quaternions ``[N, 4]`` (normalised
    here) and per-axis standard deviations ``scales`` ``[N, 3]``."""
    w, x, y, z = F.normalize(quats, dim=-1).unbind(-1)
    R = torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], -1).reshape(quats.shape[:-1] + (3, 3))
    M = R * scales[..., None, :]
    return M @ M.transpose(-1, -2)


def project_gaussians(means: Tensor, covars: Tensor, viewmat: Tensor, K: Tensor, width: int, height: int,
                      near_plane: float = 0.01, far_plane: float = 1e10, eps2d: float = 0.3) -> Dict[str, Tensor]:
    """EWA splatting of 3D Gaussians into one pinhole camera (Zwicker et al., 2001), as gsplat does it.

    The covariance in camera space ``W Sigma W^T`` is pushed through the Jacobian ``J`` of the
    perspective map at the mean (the mean's ``x/z, y/z`` clamped to 1.3x the field of view, as
    gsplat does, so Gaussians at the image border stay well-conditioned), ``eps2d`` is added to
    the diagonal (a low-pass filter of about a third of a pixel), and the radius is
    ``ceil(3.33 sigma)`` per axis. Gaussians whose depth is not in ``(near_plane, far_plane)``, or
    whose footprint misses the image, get radius 0.

    Args:
        means ``[N, 3]``, covars ``[N, 3, 3]``: the Gaussians in world space.
        viewmat ``[4, 4]``: world -> camera. K ``[3, 3]``: intrinsics. width, height: image size.

    Returns:
        ``means2d [N, 2]`` (pixels), ``conics [N, 3]`` (the upper triangle ``a, b, c`` of the
        inverse 2D covariance), ``depths [N]`` (camera z), ``radii [N, 2]`` (int, 0 = culled).
    """
    R, t = viewmat[:3, :3], viewmat[:3, 3]
    mc = means @ R.T + t
    cc = R @ covars @ R.T
    tx, ty, tz = mc.unbind(-1)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    tan_x, tan_y = 0.5 * width / fx, 0.5 * height / fy
    # Gaussians at or behind the near plane are culled below; give them a harmless depth so that
    # no inf/NaN appears in their (unused) projections, whose zero gradients would become NaN.
    in_front = tz > near_plane
    safe_z = torch.where(in_front, tz, torch.ones_like(tz))
    lim_xp, lim_xn = (width - cx) / fx + 0.3 * tan_x, cx / fx + 0.3 * tan_x
    lim_yp, lim_yn = (height - cy) / fy + 0.3 * tan_y, cy / fy + 0.3 * tan_y
    jx = safe_z * torch.clamp(tx / safe_z, min=-lim_xn, max=lim_xp)
    jy = safe_z * torch.clamp(ty / safe_z, min=-lim_yn, max=lim_yp)
    zero = torch.zeros_like(tz)
    J = torch.stack([fx / safe_z, zero, -fx * jx / safe_z ** 2, zero, fy / safe_z, -fy * jy / safe_z ** 2], -1).reshape(-1, 2, 3)
    cov2d = J @ cc @ J.transpose(-1, -2) + eps2d * torch.eye(2, dtype=means.dtype, device=means.device)
    means2d = torch.stack([fx * tx / safe_z + cx, fy * ty / safe_z + cy], -1)
    det = (cov2d[:, 0, 0] * cov2d[:, 1, 1] - cov2d[:, 0, 1] * cov2d[:, 1, 0]).clamp_min(1e-10)
    conics = torch.stack([cov2d[:, 1, 1] / det, -(cov2d[:, 0, 1] + cov2d[:, 1, 0]) / 2 / det, cov2d[:, 0, 0] / det], -1)
    with torch.no_grad():
        radius = torch.stack([torch.ceil(3.33 * cov2d[:, 0, 0].clamp_min(0).sqrt()),
                              torch.ceil(3.33 * cov2d[:, 1, 1].clamp_min(0).sqrt())], -1)
        valid = (det > 0) & in_front & (tz < far_plane) & torch.isfinite(conics).all(-1)
        inside = ((means2d[:, 0] + radius[:, 0] > 0) & (means2d[:, 0] - radius[:, 0] < width)
                  & (means2d[:, 1] + radius[:, 1] > 0) & (means2d[:, 1] - radius[:, 1] < height))
        radius[~(valid & inside)] = 0
    return {"means2d": means2d, "conics": conics, "depths": tz, "radii": radius.int()}


def eval_sh(degree: int, dirs: Tensor, coeffs: Tensor) -> Tensor:
    """Real spherical harmonics of ``degree`` (0-3) with coefficients ``coeffs`` ``[N, K, D]``
    (``K >= (degree + 1)^2``) evaluated at unit directions ``dirs`` ``[N, 3]``: ``[N, D]``.
    The constants and signs are those of 3DGS and gsplat."""
    out = SH_C0 * coeffs[:, 0]
    if degree < 1:
        return out
    x, y, z = F.normalize(dirs, dim=-1).unbind(-1)
    x, y, z = x[:, None], y[:, None], z[:, None]
    out = out - SH_C1 * y * coeffs[:, 1] + SH_C1 * z * coeffs[:, 2] - SH_C1 * x * coeffs[:, 3]
    if degree < 2:
        return out
    xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
    out = (out + SH_C2[0] * xy * coeffs[:, 4] + SH_C2[1] * yz * coeffs[:, 5] + SH_C2[2] * (2 * zz - xx - yy) * coeffs[:, 6]
           + SH_C2[3] * xz * coeffs[:, 7] + SH_C2[4] * (xx - yy) * coeffs[:, 8])
    if degree < 3:
        return out
    return (out + SH_C3[0] * y * (3 * xx - yy) * coeffs[:, 9] + SH_C3[1] * xy * z * coeffs[:, 10]
            + SH_C3[2] * y * (4 * zz - xx - yy) * coeffs[:, 11] + SH_C3[3] * z * (2 * zz - 3 * xx - 3 * yy) * coeffs[:, 12]
            + SH_C3[4] * x * (4 * zz - xx - yy) * coeffs[:, 13] + SH_C3[5] * z * (xx - yy) * coeffs[:, 14]
            + SH_C3[6] * x * (xx - 3 * yy) * coeffs[:, 15])


def _tile_intersections(means2d: Tensor, radii: Tensor, depths: Tensor, tiles_x: int, tiles_y: int, tile: int):
    """(tile id, Gaussian id) pairs for every tile a Gaussian's box touches, sorted by tile then
    depth (nearest first), and the number of Gaussians per tile."""
    vis = (radii > 0).all(-1).nonzero().view(-1)
    m, r = means2d.detach()[vis], radii[vis].to(means2d.dtype)
    x0 = ((m[:, 0] - r[:, 0]) / tile).floor().clamp(0, tiles_x).long()
    x1 = ((m[:, 0] + r[:, 0]) / tile).ceil().clamp(0, tiles_x).long()
    y0 = ((m[:, 1] - r[:, 1]) / tile).floor().clamp(0, tiles_y).long()
    y1 = ((m[:, 1] + r[:, 1]) / tile).ceil().clamp(0, tiles_y).long()
    nx, ny = x1 - x0, y1 - y0
    count = nx * ny
    keep = count > 0
    vis, x0, y0, nx, count = vis[keep], x0[keep], y0[keep], nx[keep], count[keep]
    owner = torch.repeat_interleave(torch.arange(len(vis), device=vis.device), count)
    start = torch.cumsum(count, 0) - count
    local = torch.arange(int(count.sum()), device=vis.device) - start[owner]
    tile_id = (y0[owner] + local // nx[owner]) * tiles_x + x0[owner] + local % nx[owner]
    rank = torch.empty_like(vis)
    rank[depths.detach()[vis].argsort()] = torch.arange(len(vis), device=vis.device)
    order = (tile_id * max(len(vis), 1) + rank[owner]).argsort()
    per_tile = torch.bincount(tile_id, minlength=tiles_x * tiles_y)
    return tile_id[order], vis[owner[order]], per_tile


def _composite_chunk(pix: Tensor, gid: Tensor, valid: Tensor, means2d: Tensor, conics: Tensor, opacities: Tensor,
                     feats: Tensor) -> Tuple[Tensor, Tensor]:
    """Front-to-back compositing for ``P`` pixels ``pix`` ``[T, P, 2]`` of ``T`` tiles over their
    depth-sorted Gaussians ``gid`` ``[T, K]`` (``valid`` marks real entries of the padding):
    ``(features [T, P, D], alpha [T, P])``."""
    d = pix[:, :, None, :] - means2d[gid][:, None, :, :]  # [T, P, K, 2]
    a, b, c = conics[gid].unbind(-1)  # [T, K]
    sigma = 0.5 * (a[:, None] * d[..., 0] ** 2 + c[:, None] * d[..., 1] ** 2) + b[:, None] * d[..., 0] * d[..., 1]
    alpha = torch.clamp(opacities[gid][:, None] * torch.exp(-sigma), max=ALPHA_MAX)
    use = valid[:, None, :] & (sigma >= 0) & (alpha >= ALPHA_MIN)
    alpha = torch.where(use, alpha, torch.zeros_like(alpha))
    after = torch.cumprod(1 - alpha, dim=-1)  # transmittance after each Gaussian
    before = torch.cat([torch.ones_like(after[..., :1]), after[..., :-1]], -1)
    weight = alpha * before * (after > T_MIN)
    return torch.einsum("tpk,tkd->tpd", weight, feats[gid]), weight.sum(-1)


def _render_camera_torch(means2d: Tensor, conics: Tensor, depths: Tensor, radii: Tensor, opacities: Tensor, feats: Tensor,
                         width: int, height: int, tile: int, max_pairs: int, compositor: str = "auto") -> Tuple[Tensor, Tensor]:
    tiles_x, tiles_y = math.ceil(width / tile), math.ceil(height / tile)
    out_f = feats.new_zeros(height * width, feats.shape[1])
    out_a = feats.new_zeros(height * width)
    tile_of, gauss_of, per_tile = _tile_intersections(means2d, radii, depths, tiles_x, tiles_y, tile)
    if len(gauss_of) == 0:
        return out_f.reshape(height, width, -1), out_a.reshape(height, width, 1)
    if _use_compiled(compositor, feats):
        from geossl.ops.composite_cpu import CompositeCPU

        offsets = torch.cat([per_tile.new_zeros(1), torch.cumsum(per_tile, 0)])
        return CompositeCPU.apply(means2d.float(), conics.float(), opacities.float(), feats.float(), offsets, gauss_of,
                                  width, height, tile)
    offsets = torch.cumsum(per_tile, 0) - per_tile
    busy = per_tile.nonzero().view(-1)
    busy = busy[per_tile[busy].argsort()]  # similar lengths together: little padding
    ly, lx = torch.meshgrid(torch.arange(tile, device=feats.device), torch.arange(tile, device=feats.device), indexing="ij")
    local = torch.stack([lx.reshape(-1), ly.reshape(-1)], -1)  # [P, 2]
    counts = per_tile[busy].tolist()
    i = 0
    while i < len(busy):
        j, k_max = i, 0
        while j < len(busy) and (j - i + 1) * max(k_max, counts[j]) * tile * tile <= max(max_pairs, counts[j] * tile * tile):
            k_max = max(k_max, counts[j])
            j += 1
        ids = busy[i:j]
        slot = torch.arange(k_max, device=feats.device)
        valid = slot[None, :] < per_tile[ids][:, None]
        gid = gauss_of[(offsets[ids][:, None] + slot[None, :]).clamp(max=len(gauss_of) - 1)]
        gid = torch.where(valid, gid, torch.zeros_like(gid))
        corner = torch.stack([ids % tiles_x, ids // tiles_x], -1) * tile  # [T, 2]
        px = corner[:, None, :] + local[None]  # [T, P, 2] integer pixels
        inside = (px[..., 0] < width) & (px[..., 1] < height)
        centre = px.to(feats.dtype) + 0.5
        if torch.is_grad_enabled() and (means2d.requires_grad or feats.requires_grad or opacities.requires_grad or conics.requires_grad):
            f, a = checkpoint(_composite_chunk, centre, gid, valid, means2d, conics, opacities, feats, use_reentrant=False)
        else:
            f, a = _composite_chunk(centre, gid, valid, means2d, conics, opacities, feats)
        flat = (px[..., 1] * width + px[..., 0])[inside]
        out_f = out_f.index_add(0, flat, f[inside])
        out_a = out_a.index_add(0, flat, a[inside])
        i = j
    return out_f.reshape(height, width, -1), out_a.reshape(height, width, 1)


def composite_dense(means2d: Tensor, conics: Tensor, depths: Tensor, radii: Tensor, opacities: Tensor, feats: Tensor,
                    width: int, height: int) -> Tuple[Tensor, Tensor]:
    """The naive evaluation: every visible Gaussian at every pixel (``[H*W, N]`` memory), with the
    same compositing rule as the tiled path but no tiles and no boxes. Only for tests and the
    benchmark's baseline; ``(features [H, W, D], alpha [H, W, 1])``."""
    keep = (radii > 0).all(-1).nonzero().view(-1)
    keep = keep[depths[keep].argsort()]
    v, u = torch.meshgrid(torch.arange(height, dtype=feats.dtype, device=feats.device) + 0.5,
                          torch.arange(width, dtype=feats.dtype, device=feats.device) + 0.5, indexing="ij")
    pix = torch.stack([u.reshape(-1), v.reshape(-1)], -1)[None]  # [1, P, 2]
    f, a = _composite_chunk(pix, keep[None], torch.ones(1, len(keep), dtype=torch.bool, device=feats.device),
                            means2d, conics, opacities, feats)
    return f[0].reshape(height, width, -1), a[0].reshape(height, width, 1)


def _use_compiled(compositor: str, feats: Tensor) -> bool:
    """Whether to composite with the C++ kernel: ``cpp`` always, ``torch`` never, ``auto`` for
    float32 CPU tensors when the kernel builds (float64, e.g. for gradcheck, stays in PyTorch)."""
    if compositor not in COMPOSITORS:
        raise RasterizeError(f"Unknown compositor {compositor!r}. Valid choices: {', '.join(COMPOSITORS)}.")
    if compositor == "torch" or feats.is_cuda:
        return False
    if compositor == "auto" and feats.dtype != torch.float32:
        return False
    from geossl.ops.composite_cpu import load_extension

    ext = load_extension()
    if ext is None and compositor == "cpp":
        raise RasterizeError("compositor='cpp': the compiled CPU compositor could not be built (see the warning above).")
    return ext is not None


def _check_inputs(means, quats, scales, opacities, colors, viewmats, Ks, width, height, sh_degree, render_mode, backgrounds):
    if render_mode not in RENDER_MODES:
        raise RasterizeError(f"Unknown render_mode {render_mode!r}. Valid choices: {', '.join(RENDER_MODES)}.")
    if width <= 0 or height <= 0:
        raise RasterizeError(f"width and height must be positive, got {width} x {height}.")
    n = means.shape[0]
    shapes = {"means": (means, (n, 3)), "quats": (quats, (n, 4)), "scales": (scales, (n, 3)), "opacities": (opacities, (n,))}
    for name, (t, shape) in shapes.items():
        if tuple(t.shape) != shape:
            raise RasterizeError(f"{name} must have shape {list(shape)} for {n} Gaussians, got {list(t.shape)}.")
    if sh_degree is None and (colors.dim() != 2 or colors.shape[0] != n):
        raise RasterizeError(f"colors must be [N, D] (or [N, K, 3] SH coefficients with sh_degree), got {list(colors.shape)}.")
    if sh_degree is not None:
        if not 0 <= sh_degree <= 3:
            raise RasterizeError(f"sh_degree must be 0-3, got {sh_degree}.")
        if colors.dim() != 3 or colors.shape[0] != n or colors.shape[1] < (sh_degree + 1) ** 2:
            raise RasterizeError(f"SH colors must be [N, K >= {(sh_degree + 1) ** 2}, D], got {list(colors.shape)}.")
    if viewmats.dim() != 3 or Ks.dim() != 3 or viewmats.shape[0] != Ks.shape[0]:
        raise RasterizeError(f"viewmats [C, 4, 4] and Ks [C, 3, 3] must have the same C, got {list(viewmats.shape)} and {list(Ks.shape)}.")
    check_pose(viewmats, "viewmats")
    check_intrinsics(Ks)
    for name, t in (("means", means), ("quats", quats), ("scales", scales), ("opacities", opacities), ("colors", colors)):
        if not torch.isfinite(t).all():
            bad = (~torch.isfinite(t)).reshape(n, -1).any(1).nonzero().view(-1)
            raise RasterizeError(f"{name} has NaN or inf values (Gaussians {bad[:5].tolist()}{' ...' if len(bad) > 5 else ''}).")
    if n and (quats.norm(dim=-1) == 0).any():
        raise RasterizeError("quats has all-zero quaternions: a rotation needs a non-zero quaternion.")
    if backgrounds is not None and backgrounds.shape[0] != viewmats.shape[0]:
        raise RasterizeError(f"backgrounds must be [C, channels] with C = {viewmats.shape[0]}, got {list(backgrounds.shape)}.")


def _colour_features(means, colors, viewmats, sh_degree):
    """``[C, N, D]`` colours per camera (SH evaluated towards each camera centre)."""
    if sh_degree is None:
        return colors[None].expand(viewmats.shape[0], -1, -1)
    centres = torch.linalg.inv(viewmats)[:, :3, 3]  # [C, 3]
    return torch.stack([torch.clamp_min(eval_sh(sh_degree, means - c, colors) + 0.5, 0.0) for c in centres])


def rasterize_gaussians_torch(means, quats, scales, opacities, colors, viewmats, Ks, width, height, near_plane=0.01,
                              far_plane=1e10, sh_degree=None, render_mode="RGB", backgrounds=None, eps2d=0.3,
                              tile_size=8, max_pairs=1 << 22, compositor="auto"):
    """The CPU (any-device) reference of ``rasterize_gaussians``; same arguments and returns, plus
    ``tile_size``, ``max_pairs`` (pixel x Gaussian evaluations per chunk of the PyTorch
    compositor) and ``compositor``: ``torch`` (vectorised PyTorch, the oracle), ``cpp`` (the
    compiled C++/OpenMP kernel, float32) or ``auto`` (cpp for float32 when it builds)."""
    covars = quat_scale_to_covariance(quats, scales)
    rgb = _colour_features(means, colors, viewmats, sh_degree)
    projected = [project_gaussians(means, covars, viewmats[cam], Ks[cam], width, height, near_plane, far_plane, eps2d)
                 for cam in range(viewmats.shape[0])]
    # one stacked tensor per quantity, used by the compositing below: meta["means2d"].retain_grad()
    # gives the screen-space gradients that densification reads, as with gsplat
    meta = {k: torch.stack([p[k] for p in projected]) for k in ("means2d", "conics", "depths", "radii")}
    imgs, alphas = [], []
    for cam in range(viewmats.shape[0]):
        parts = []
        if render_mode in ("RGB", "RGB+D", "RGB+ED"):
            parts.append(rgb[cam])
        if render_mode != "RGB":
            parts.append(meta["depths"][cam][:, None])
        feats = torch.cat(parts, -1)
        img, alpha = _render_camera_torch(meta["means2d"][cam], meta["conics"][cam], meta["depths"][cam],
                                          meta["radii"][cam], opacities, feats, width, height, tile_size, max_pairs,
                                          compositor)
        imgs.append(img)
        alphas.append(alpha)
    img, alpha = torch.stack(imgs), torch.stack(alphas)
    return _finish(img, alpha, render_mode, backgrounds), alpha, meta


def _finish(img: Tensor, alpha: Tensor, render_mode: str, backgrounds: Optional[Tensor]) -> Tensor:
    """Expected depth and backgrounds, gsplat's way: ED = D / alpha; the background fills the
    colour channels (``img + bg * (1 - alpha)``), never the depth channel."""
    if render_mode in ("ED", "RGB+ED"):
        img = torch.cat([img[..., :-1], img[..., -1:] / alpha.clamp_min(1e-10)], -1)
    if backgrounds is not None and render_mode != "D" and render_mode != "ED":
        n_rgb = img.shape[-1] - (0 if render_mode == "RGB" else 1)
        bg = backgrounds[:, None, None, :n_rgb] * (1 - alpha)
        img = torch.cat([img[..., :n_rgb] + bg, img[..., n_rgb:]], -1)
    return img


def _rasterize_gsplat(means, quats, scales, opacities, colors, viewmats, Ks, width, height, near_plane, far_plane,
                      sh_degree, render_mode, backgrounds, eps2d):
    """gsplat's CUDA rasterizer (classic mode, unpacked), which fills backgrounds and ED exactly as ``_finish``."""
    from gsplat import rasterization

    return rasterization(means, quats, scales, opacities, colors, viewmats, Ks, width, height, near_plane=near_plane,
                         far_plane=far_plane, sh_degree=sh_degree, render_mode=render_mode, backgrounds=backgrounds,
                         eps2d=eps2d, packed=False)


def rasterize_gaussians(means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor, colors: Tensor,
                        viewmats: Tensor, Ks: Tensor, width: int, height: int, near_plane: float = 0.01,
                        far_plane: float = 1e10, sh_degree: Optional[int] = None, render_mode: str = "RGB",
                        backgrounds: Optional[Tensor] = None, eps2d: float = 0.3, backend: str = "auto"):
    """Render ``C`` views of ``N`` 3D Gaussians; differentiable in every tensor argument. Batches of scenes render
    in one call, as in gsplat: give every tensor the same leading batch dimensions (``means [..., N, 3]`` with
    ``viewmats [..., C, 4, 4]``), each scene with its own ``N`` Gaussians and ``C`` cameras (pad scenes with fewer
    Gaussians with zero-opacity ones: they add nothing). gsplat renders the batch in one launch; the CPU path
    renders scene after scene, each parallel over its tiles.

    Args:
        means: ``[N, 3]`` centres in world space.
        quats: ``[N, 4]`` rotations as wxyz quaternions (normalised inside).
        scales: ``[N, 3]`` standard deviations along the rotated axes (already activated, > 0).
        opacities: ``[N]`` in [0, 1] (already activated).
        colors: ``[N, D]`` features, or ``[N, K, D]`` SH coefficients when ``sh_degree`` is given
            (then colour = ``max(SH(dir) + 0.5, 0)`` towards each camera, as in gsplat).
        viewmats: ``[C, 4, 4]`` world -> camera (OpenCV axes). Ks: ``[C, 3, 3]`` pinhole intrinsics.
        width, height: image size in pixels.
        near_plane, far_plane: Gaussians whose camera depth is outside this range are dropped.
        sh_degree: SH degree (0-3) of ``colors``, or None for plain features.
        render_mode: ``RGB`` colours; ``D`` accumulated depth ``sum w_i z_i``; ``ED`` expected depth
            ``D / alpha``; ``RGB+D`` / ``RGB+ED`` colours with the depth as the last channel.
        backgrounds: ``[C, D]`` colour behind the Gaussians (added as ``bg * (1 - alpha)``), or None.
        eps2d: added to the 2D covariance's diagonal (gsplat's default 0.3 px^2).
        backend: ``auto`` (gsplat on CUDA tensors, the PyTorch reference otherwise), ``torch``, ``gsplat``.

    Returns:
        ``(images [..., C, H, W, X], alphas [..., C, H, W, 1], meta)``; ``meta`` holds the per-camera
        ``means2d``, ``conics``, ``depths``, ``radii`` (gsplat's meta when gsplat ran).

    An empty set of Gaussians renders the background (or zeros). Non-finite parameters, a
    singular view matrix, non-positive focal lengths and mismatched shapes raise a
    :class:`RasterizeError` / :class:`CameraError` naming the input.
    """
    if backend not in BACKENDS:
        raise RasterizeError(f"Unknown backend {backend!r}. Valid choices: {', '.join(BACKENDS)}.")
    batched = means.dim() > 2
    if batched:
        flat = _flatten_batch(means, quats, scales, opacities, colors, viewmats, Ks, backgrounds, sh_degree)
        for scene in zip(*flat):  # every scene's inputs are checked, whichever backend renders
            _check_inputs(*scene[:7], width, height, sh_degree, render_mode, scene[7])
    else:
        _check_inputs(means, quats, scales, opacities, colors, viewmats, Ks, width, height, sh_degree, render_mode, backgrounds)
    if backend == "auto":
        backend = "gsplat" if means.is_cuda else "torch"
    if backend == "gsplat":
        if not means.is_cuda:
            raise RasterizeError("backend='gsplat' runs gsplat's CUDA kernels and needs CUDA tensors; use backend='torch' on CPU.")
        return _rasterize_gsplat(means, quats, scales, opacities, colors, viewmats, Ks, width, height, near_plane,
                                 far_plane, sh_degree, render_mode, backgrounds, eps2d)
    if batched:  # scene after scene; outputs and meta get the batch dimensions back
        parts = [rasterize_gaussians_torch(*scene[:7], width, height, near_plane, far_plane, sh_degree, render_mode, scene[7], eps2d)
                 for scene in zip(*flat)]
        batch = tuple(means.shape[:-2])
        # stacked copies: the per-scene means2d that densification reads (retain_grad) are those of unbatched calls
        return (torch.stack([p[0] for p in parts]).reshape(*batch, *parts[0][0].shape),
                torch.stack([p[1] for p in parts]).reshape(*batch, *parts[0][1].shape),
                {k: torch.stack([p[2][k] for p in parts]).reshape(*batch, *parts[0][2][k].shape) for k in parts[0][2]})
    return rasterize_gaussians_torch(means, quats, scales, opacities, colors, viewmats, Ks, width, height, near_plane,
                                     far_plane, sh_degree, render_mode, backgrounds, eps2d)


def _flatten_batch(means, quats, scales, opacities, colors, viewmats, Ks, backgrounds, sh_degree) -> list:
    """The inputs of a batched call with their leading batch dimensions ``[...]`` flattened into one (``[S, ...]``;
    ``backgrounds`` None becomes S Nones), after checking that every input has the same batch dimensions."""
    batch = tuple(means.shape[:-2])
    inputs = {"quats": (quats, 2), "scales": (scales, 2), "opacities": (opacities, 1), "viewmats": (viewmats, 3),
              "Ks": (Ks, 3), "colors": (colors, 2 if sh_degree is None else 3)}
    if backgrounds is not None:
        inputs["backgrounds"] = (backgrounds, 2)
    for name, (t, tail) in inputs.items():
        if t.dim() != len(batch) + tail or tuple(t.shape[:len(batch)]) != batch:
            raise RasterizeError(f"means has batch dimensions {list(batch)} (shape {list(means.shape)}): {name} must have the "
                                 f"same leading dimensions followed by {tail} more, got {list(t.shape)}.")
    flat = [t.reshape(-1, *t.shape[len(batch):]) for t in (means, quats, scales, opacities, colors, viewmats, Ks)]
    if flat[0].shape[0] == 0:
        raise RasterizeError(f"means has an empty batch (shape {list(means.shape)}): there is no scene to render.")
    return flat + [[None] * flat[0].shape[0] if backgrounds is None else backgrounds.reshape(-1, *backgrounds.shape[len(batch):])]
