"""Posed RGB-D sequences: 7-Scenes, Redwood (Open3D's trajectory.log layout) and the ScanNet export.

Every reader returns an :class:`RGBDSequence` of :class:`RGBDFrame` in one convention:
colour ``[H, W, 3]`` float in [0, 1], depth ``[H, W]`` metres with 0 = invalid, ``K`` ``[3, 3]`` for
that image size (OpenCV, see ``geossl.ops.camera``), ``cam_to_world`` ``[4, 4]``. Depth files are
16-bit PNGs in millimetres where 0 (and 65535 in 7-Scenes) mark invalid pixels. ``stride`` keeps
every n-th frame; ``size=(W, H)`` resizes colour (area averaging) and depth (nearest, so no
invalid pixel is blended into a valid one) and scales the intrinsics to match.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from geossl.errors import DatasetNotFoundError, GeosslError
from geossl.frames import RGBDFrame, RGBDSequence
from geossl.ops.camera import check_intrinsics, check_rigid, scale_intrinsics


class RGBDError(GeosslError, ValueError):
    """A frame that cannot be used: unreadable files, sizes that disagree, a singular pose."""


#: The most pixels an image file may decode to (a 7-Scenes frame has 0.3 M, a ScanNet colour frame 1.3 M).
MAX_PIXELS = 50_000_000


def _read_image(path: Path) -> np.ndarray:
    """An image file's pixels, refusing unreadable files and sizes beyond :data:`MAX_PIXELS` before decoding."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.size[0] * im.size[1] > MAX_PIXELS:
                raise RGBDError(f"{path} declares {im.size[0]}x{im.size[1]} pixels, more than {MAX_PIXELS}.")
            return np.array(im)
    except RGBDError:
        raise
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError, MemoryError) as e:
        raise RGBDError(f"Cannot read image {path}: {type(e).__name__}: {e}") from None


def _read_matrix(path: Path, rows: int = 4, finite: bool = True) -> Tensor:
    try:
        m = np.array(path.read_bytes().decode("utf-8").split(), dtype=np.float64)
    except (OSError, ValueError) as e:  # UnicodeDecodeError is a ValueError
        raise RGBDError(f"Cannot read the matrix in {path}: {type(e).__name__}: {e}") from None
    if m.size != rows * rows:
        raise RGBDError(f"{path} holds {m.size} numbers, expected a {rows}x{rows} matrix.")
    if finite and not np.isfinite(m).all():
        raise RGBDError(f"{path} holds NaN or infinite numbers.")
    return torch.from_numpy(m.reshape(rows, rows)).float()


def make_frame(color: np.ndarray, depth_mm: np.ndarray, K: Tensor, cam_to_world: Tensor, name: str,
               size: Optional[Tuple[int, int]] = None, invalid: Sequence[int] = (0,)) -> RGBDFrame:
    """An :class:`RGBDFrame` from raw arrays: uint8 colour ``[H, W, 3]``, depth in millimetres
    (``invalid`` values become 0), the intrinsics of the depth image's size. The colour is resized
    to the depth's size if they differ (with its own intrinsics assumed to be the depth's), then
    both to ``size``."""
    if color.ndim != 3 or color.shape[2] < 3:
        raise RGBDError(f"{name}: colour image must be H x W x 3, got shape {color.shape}.")
    if depth_mm.ndim != 2:
        raise RGBDError(f"{name}: depth image must be single-channel, got shape {depth_mm.shape}.")
    if depth_mm.dtype.kind not in "iu" or depth_mm.dtype.itemsize < 2:
        raise RGBDError(f"{name}: the depth image holds {depth_mm.dtype} values; depth images must be 16-bit images of "
                        "millimetres (an 8-bit image cannot hold them, a float image is not millimetres).")
    check_intrinsics(K, f"{name}: intrinsics")
    check_rigid(cam_to_world, f"{name}: pose")
    dh, dw = depth_mm.shape
    cx, cy = float(K[0, 2]), float(K[1, 2])
    if not (0 < cx < dw and 0 < cy < dh):
        raise RGBDError(f"{name}: the intrinsics' principal point ({cx:.1f}, {cy:.1f}) lies outside the "
                        f"{dw}x{dh} depth image: the intrinsics belong to another image size.")
    depth = torch.from_numpy(depth_mm.astype(np.float32))
    for v in invalid:
        depth[depth == v] = 0
    depth = depth / 1000.0
    rgb = torch.from_numpy(np.ascontiguousarray(color[..., :3])).float() / 255.0
    if rgb.shape[:2] != depth.shape:
        rgb = F.interpolate(rgb.permute(2, 0, 1)[None], size=(dh, dw), mode="area")[0].permute(1, 2, 0)
    if size is not None and tuple(size) != (dw, dh):
        w, h = size
        rgb = F.interpolate(rgb.permute(2, 0, 1)[None], size=(h, w), mode="area")[0].permute(1, 2, 0)
        depth = F.interpolate(depth[None, None], size=(h, w), mode="nearest")[0, 0]
        K = scale_intrinsics(K, w / dw, h / dh)
    return RGBDFrame(rgb.contiguous(), depth.contiguous(), K, cam_to_world, name)


def _folder(root: Optional[str], default: str, what: str, how: str) -> Path:
    from geossl.data import data_root

    path = Path(root) if root else data_root() / default
    if not path.is_dir():
        raise DatasetNotFoundError(f"{what} not found: looked in {path}. {how}")
    return path


#: The sample sequences' folders under the data root.
SEVENSCENES_FOLDER = "3d/7scenes_tsdf_fusion_every5th"
REDWOOD_FOLDER = "3d/redwood_livingroom1_open3d"


def sevenscenes(root: Optional[str] = None, stride: int = 1, size: Optional[Tuple[int, int]] = None,
                max_frames: Optional[int] = None) -> RGBDSequence:
    """A 7-Scenes sequence: ``frame-NNNNNN.color.{jpg,png}``, ``frame-NNNNNN.depth.png`` (mm,
    0 and 65535 invalid), ``frame-NNNNNN.pose.txt`` (camera -> world) and ``camera-intrinsics.txt``
    (a 3x3 K; Kinect default fx = fy = 585, cx = 320, cy = 240 when the file is absent).
    Default folder: ``$GEOSSL_DATA/3d/7scenes_tsdf_fusion_every5th``."""
    path = _folder(root, SEVENSCENES_FOLDER, "7-Scenes frames",
                   "Point dataset.root at a folder of frame-NNNNNN.color.jpg/.depth.png/.pose.txt files, or set GEOSSL_DATA.")
    intr = path / "camera-intrinsics.txt"
    K = _read_matrix(intr, 3) if intr.is_file() else torch.tensor([[585.0, 0, 320], [0, 585.0, 240], [0, 0, 1]])
    poses = sorted(path.glob("frame-*.pose.txt"))
    if not poses:
        raise DatasetNotFoundError(f"No frame-NNNNNN.pose.txt files in {path}: not a 7-Scenes sequence folder.")
    poses = poses[::stride][:max_frames]
    frames = []
    for pose in poses:
        stem = pose.name[: -len(".pose.txt")]
        color = next((c for c in (path / f"{stem}.color.jpg", path / f"{stem}.color.png") if c.is_file()), None)
        depth = path / f"{stem}.depth.png"
        if color is None or not depth.is_file():
            raise RGBDError(f"{stem}: the colour or depth image next to {pose} is missing.")
        frames.append(make_frame(_read_image(color), _read_image(depth), K.clone(), _read_matrix(pose), stem, size,
                                 invalid=(0, 65535)))
    return RGBDSequence(frames, path.name)


def read_trajectory_log(path: Path) -> List[Tensor]:
    """Camera -> world poses from a Redwood / Open3D ``trajectory.log`` (per frame: a line of three
    integers, then four rows of the 4x4 matrix)."""
    try:
        rows = [line.split() for line in path.read_bytes().decode("utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise RGBDError(f"{path}: not a readable trajectory.log ({type(e).__name__}).") from None
    if len(rows) % 5:
        raise RGBDError(f"{path}: {len(rows)} non-empty lines; a trajectory.log has 5 per frame.")
    try:
        return [torch.tensor([[float(v) for v in r] for r in rows[i + 1:i + 5]]) for i in range(0, len(rows), 5)]
    except ValueError as e:
        raise RGBDError(f"{path}: not a trajectory.log ({e}).") from e


def redwood(root: Optional[str] = None, stride: int = 1, size: Optional[Tuple[int, int]] = None,
            max_frames: Optional[int] = None) -> RGBDSequence:
    """A Redwood / Open3D RGB-D sequence: ``color/NNNNN.jpg``, ``depth/NNNNN.png`` (mm),
    ``trajectory.log`` (camera -> world per frame) and ``camera_primesense.json`` (Open3D's
    column-major ``intrinsic_matrix`` with ``width``/``height``).
    Default folder: ``$GEOSSL_DATA/3d/redwood_livingroom1_open3d``."""
    path = _folder(root, REDWOOD_FOLDER, "Redwood RGB-D sequence",
                   "Point dataset.root at a folder with color/, depth/, trajectory.log and camera_primesense.json.")
    intr_file = next(iter(sorted(path.glob("*.json"))), None)
    if intr_file is None:
        raise DatasetNotFoundError(f"No intrinsics JSON (camera_primesense.json) in {path}.")
    try:
        intr = json.loads(intr_file.read_bytes().decode("utf-8"))
        K = torch.tensor(intr["intrinsic_matrix"], dtype=torch.float32).reshape(3, 3).T
        size = (int(intr["width"]), int(intr["height"]))
    except (ValueError, KeyError, TypeError, RuntimeError) as e:  # JSON, UTF-8 and shape errors are ValueErrors
        raise RGBDError(f"{intr_file} is not an Open3D intrinsics file (width, height, intrinsic_matrix of 9 numbers): "
                        f"{type(e).__name__}: {e}") from None
    poses = read_trajectory_log(path / "trajectory.log")
    colors = sorted((path / "color").glob("*.*"))
    depths = sorted((path / "depth").glob("*.png"))
    if not (len(colors) == len(depths) == len(poses)):
        raise RGBDError(f"{path}: {len(colors)} colour images, {len(depths)} depth images and {len(poses)} poses; "
                        "they must match one to one.")
    frames = []
    for c, d, pose in list(zip(colors, depths, poses))[::stride][:max_frames]:
        depth = _read_image(d)
        if size != (depth.shape[1], depth.shape[0]):
            raise RGBDError(f"{intr_file} describes {size[0]}x{size[1]} images but {d} is {depth.shape[1]}x{depth.shape[0]}.")
        frames.append(make_frame(_read_image(c), depth, K.clone(), pose, c.stem, size))
    return RGBDSequence(frames, path.name)


def scannet_export(root: Optional[str] = None, stride: int = 1, size: Optional[Tuple[int, int]] = None,
                   max_frames: Optional[int] = None) -> RGBDSequence:
    """A scene exported by ScanNet's own ``reader.py``: ``color/<i>.jpg`` (1296x968),
    ``depth/<i>.png`` (mm, 640x480), ``pose/<i>.txt`` (camera -> world; frames whose pose holds
    inf/NaN, which ScanNet writes for lost tracking, are skipped), ``intrinsic/intrinsic_depth.txt``
    (4x4). Colour is resized to the depth image, whose intrinsics are used."""
    if not root:
        raise DatasetNotFoundError("dataset.root must point at an exported ScanNet scene (color/ depth/ pose/ intrinsic/).")
    path = _folder(root, "", "ScanNet export", "Export a scene with ScanNet's reader.py and point dataset.root at it.")
    K = _read_matrix(path / "intrinsic" / "intrinsic_depth.txt")[:3, :3]
    ids = sorted((int(p.stem) for p in (path / "pose").glob("*.txt") if re.fullmatch(r"\d+", p.stem)))
    if not ids:
        raise DatasetNotFoundError(f"No pose/<i>.txt files in {path}: not a ScanNet export.")
    frames = []
    for i in ids[::stride]:
        pose = _read_matrix(path / "pose" / f"{i}.txt", finite=False)  # ScanNet writes inf for lost tracking: skipped
        if not torch.isfinite(pose).all():
            continue
        frames.append(make_frame(_read_image(path / "color" / f"{i}.jpg"), _read_image(path / "depth" / f"{i}.png"),
                                 K.clone(), pose, str(i), size))
        if max_frames and len(frames) >= max_frames:
            break
    return RGBDSequence(frames, path.name)


#: RGB-D sequence readers by dataset name.
RGBD_DATASETS = {"sevenscenes": sevenscenes, "redwood": redwood, "scannet_export": scannet_export}
