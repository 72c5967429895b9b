"""PNG views of a point-cloud scene so a user can look at what was loaded: a top view (x right,
y up) and a front view (x right, z up), points in their colours drawn far to near, boxes as their
outlines (a yawed box's footprint turned by its yaw), every box inside the picture."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import numpy as np
from torch import Tensor


def box_outline(box: np.ndarray, axes: tuple) -> np.ndarray:
    """The outline of a box ``[7]`` (centre, size, class) or ``[8]`` (centre, size, yaw, class) seen along the third
    axis: in the top view (``axes=(0, 1)``) its footprint turned by its yaw (4 corners), in a side view the rectangle
    its turned footprint spans along ``axes[0]`` and its height along ``axes[1]``."""
    c, size = box[:3], box[3:6]
    yaw = float(box[6]) if len(box) == 8 else 0.0
    cos, sin = np.cos(yaw), np.sin(yaw)
    if tuple(axes) == (0, 1):
        corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * size[:2] / 2
        return corners @ np.array([[cos, sin], [-sin, cos]]) + c[:2]  # each corner turned by yaw, counter-clockwise
    extent = np.abs([[cos, -sin], [sin, cos]]) @ size[:2] / 2  # the turned footprint's half extent along x and y
    half = np.array([extent[axes[0]] if axes[0] < 2 else size[2] / 2, extent[axes[1]] if axes[1] < 2 else size[2] / 2])
    centre = c[list(axes)]
    return np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * half + centre


def _view(coord: np.ndarray, rgb: np.ndarray, box_sets, axes: tuple, depth_axis: int, size: int,
          box_names=None, point_px: int = 0):
    """One view of the points (far to near) and of every ``(boxes, colour)`` set's outlines, framed to hold both."""
    from PIL import Image, ImageDraw

    outlines = [(box_outline(b, axes), colour, int(b[-1])) for boxes, colour in box_sets for b in boxes]
    extent = np.concatenate([coord[:, axes]] + [o for o, _, _ in outlines])
    lo, hi = extent.min(0), extent.max(0)
    scale = (size - 20) / max(float((hi - lo).max()), 1e-6)
    w, h = (np.ceil((hi - lo) * scale).astype(int) + 20).tolist()
    px = ((coord[:, axes] - lo) * scale + 10).astype(int)
    px[:, 1] = h - 1 - px[:, 1]  # image rows grow downwards
    order = np.argsort(coord[:, depth_axis] * (1 if depth_axis == 2 else -1))  # far first, near last
    # points drawn as squares of about two pixels per 800 so that small furniture stays visible on white
    r = point_px or max(1, size // 400)
    img = np.full((h, w, 3), 255, np.uint8)
    colours = (rgb[order] * 255).clip(0, 255).astype(np.uint8)
    for dy in range(-r // 2, r - r // 2):
        for dx in range(-r // 2, r - r // 2):
            img[(px[order, 1] + dy).clip(0, h - 1), (px[order, 0] + dx).clip(0, w - 1)] = colours
    pil = Image.fromarray(img)
    draw = ImageDraw.Draw(pil)
    for outline, colour, cls in outlines:
        pts = (outline - lo) * scale + 10
        pts[:, 1] = h - 1 - pts[:, 1]
        draw.polygon([tuple(p) for p in pts.tolist()], outline=colour, width=2)
        label = box_names[cls] if box_names is not None and 0 <= cls < len(box_names) else str(cls)
        top = pts[np.argmin(pts[:, 1])]
        draw.text((float(top[0]) + 3, float(top[1]) + 2), label, fill=colour)
    return pil


def save_scene_views(scene: Dict[str, Tensor], out_dir: Path, name: str, size: int = 800, box_names=None) -> List[Path]:
    """Write ``<name>_top.png`` and ``<name>_front.png`` into ``out_dir``; return their paths. Boxes are drawn
    in red and labelled with their class (``box_names[class id]`` when given)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    coord, rgb = scene["coord"].numpy(), scene["feat"][:, :3].numpy()
    boxes = scene["boxes"].numpy() if "boxes" in scene else np.zeros((0, 7))
    paths = []
    for view, axes, depth in (("top", (0, 1), 2), ("front", (0, 2), 1)):
        path = out_dir / f"{name}_{view}.png"
        _view(coord, rgb, [(boxes, (220, 0, 0))], axes, depth, size, box_names).save(path)
        paths.append(path)
    return paths


def save_rgbd_views(frames, path: Path, max_views: int = 4) -> Path:
    """A PNG grid of up to ``max_views`` RGB-D frames, one row each: colour | depth (grey, near
    dark, far light, invalid black)."""
    from PIL import Image

    rows = []
    for f in list(frames)[:max_views]:
        rgb = (f.color.numpy().clip(0, 1) * 255).astype(np.uint8)
        d = f.depth.numpy()
        valid = d > 0
        scale = d[valid].max() if valid.any() else 1.0
        grey = np.where(valid, 40 + 215 * d / scale, 0).astype(np.uint8)
        rows.append(np.concatenate([rgb, np.repeat(grey[..., None], 3, 2)], 1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, 0)).save(path)
    return path


def save_render_pairs(pairs, path: Path, max_rows: int = 6) -> Path:
    """A PNG grid of ``(rendered, real)`` ``[H, W, 3]`` image pairs, one row each: rendered | real."""
    from PIL import Image

    rows = [np.concatenate([(a.detach().cpu().numpy().clip(0, 1) * 255).astype(np.uint8),
                            (b.detach().cpu().numpy().clip(0, 1) * 255).astype(np.uint8)], 1) for a, b in list(pairs)[:max_rows]]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, 0)).save(path)
    return path
