"""PNG views of a point-cloud scene so a user can look at what was loaded: a top view (x right,
y up) and a front view (x right, z up), points in their colours drawn far to near, boxes as
rectangles."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import numpy as np
from torch import Tensor


def _view(coord: np.ndarray, rgb: np.ndarray, boxes: np.ndarray, axes: tuple, depth_axis: int, size: int,
          box_names=None, point_px: int = 0):
    from PIL import Image, ImageDraw

    lo, hi = coord[:, axes].min(0), coord[:, axes].max(0)
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
    for i, b in enumerate(boxes):
        c, s = b[:3][list(axes)], b[3:6][list(axes)]
        x0, y0 = (c - s / 2 - lo) * scale + 10
        x1, y1 = (c + s / 2 - lo) * scale + 10
        draw.rectangle([x0, h - 1 - y1, x1, h - 1 - y0], outline=(220, 0, 0), width=2)
        cls = int(b[-1])
        label = box_names[cls] if box_names is not None and 0 <= cls < len(box_names) else str(cls)
        draw.text((x0 + 3, h - 1 - y1 + 2), label, fill=(220, 0, 0))
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
        _view(coord, rgb, boxes, axes, depth, size, box_names).save(path)
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
