"""SUN RGB-D (Song, Lichtenberg, Xiao, CVPR 2015) for 3D detection, in the two layouts its users have.

* **mmdetection3d's prepared data** (``tools/create_data.py sunrgbd``, mmdet3d >= 1.0): ``points/<id>.bin`` (float32
  ``[N, 6]``: x, y, z in upright depth coordinates, r, g, b in [0, 1]; 50,000 points sampled per frame) and the info
  files ``sunrgbd_infos_train.pkl`` / ``sunrgbd_infos_val.pkl`` (format v2: ``data_list`` entries with ``lidar_points``
  and ``instances``, each ``bbox_3d`` = centre, size, yaw and ``bbox_label_3d`` in the 10 classes, -1 for others). The
  pickles are read with an unpickler that admits only numpy's arrays, scalars and dtypes
  (:func:`geossl.pointcloud.scannet.read_info_pickle`). Info files of mmdet3d < 1.0 (a list, not ``data_list``) are
  refused: their yaw has the opposite sign; mmdet3d's ``tools/dataset_converters/update_infos_to_v2.py`` or a fresh
  ``create_data.py`` run converts them.
* **The VoteNet / mmdetection3d export** (``extract_rgbd_data_v2.m``): ``sunrgbd_trainval/depth/<id>.mat`` (``instance``:
  the whole frame's ``[N, 6]`` points, upright depth coordinates, rgb in [0, 1]), ``label/<id>.txt`` (one object a
  line: class, 2D box, centroid, half sizes, orientation) and ``train_data_idx.txt`` / ``val_data_idx.txt``. A box is
  built as mmdet3d's converter builds it (``SUNRGBDInstance``): size = 2 x (length, width, height) with length along
  the box's own x axis, yaw = atan2(orientation y, orientation x), counter-clockwise about z from +x, the convention
  of mmdet3d's ``DepthInstance3DBoxes`` and of geossl's yawed boxes.

Either way a scene is ``coord`` ``[N, 3]``, ``feat`` ``[N, 3]`` (rgb), ``boxes`` ``[K, 8]`` (centre, size, yaw, class
id into :data:`CLASSES`) and ``name``; objects of other classes are left out. SUN RGB-D has no public test labels:
the test split is the val split, as mmdet3d evaluates.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

from geossl.errors import DatasetNotFoundError
from geossl.pointcloud.scannet import SceneFileError, read_info_pickle

#: VoteNet's 10 SUN RGB-D detection classes, in mmdet3d's order (its label ids).
CLASSES = ("bed", "table", "sofa", "chair", "toilet", "desk", "dresser", "night_stand", "bookshelf", "bathtub")
#: The most points a frame may hold (a full 730 x 530 depth frame has under 400,000).
MAX_POINTS = 2_000_000
#: The largest label or index file read (a frame's label file is a few hundred bytes).
MAX_TEXT_BYTES = 1 << 20
_ID = re.compile(r"^\d{1,9}$")
#: The most bytes of numbers a .mat file may declare per byte of file (the export's frames compress about 3x).
MAT_EXPANSION = 16
_MAT_BYTES = {"double": 8, "single": 4, "int64": 8, "uint64": 8, "int32": 4, "uint32": 4, "int16": 2, "uint16": 2,
              "int8": 1, "uint8": 1, "logical": 1}


def layout(root: Path) -> str:
    """``"prepared"`` (mmdet3d's info files) or ``"export"`` (``sunrgbd_trainval/``); a folder with neither is refused
    naming what was looked for."""
    if (root / "sunrgbd_infos_train.pkl").is_file() or (root / "sunrgbd_infos_val.pkl").is_file():
        return "prepared"
    if (root / "sunrgbd_trainval").is_dir():
        return "export"
    raise DatasetNotFoundError(
        f"No SUN RGB-D data in {root}: looked for mmdetection3d's prepared data (sunrgbd_infos_train.pkl, "
        "sunrgbd_infos_val.pkl and points/) and for the VoteNet export (sunrgbd_trainval/ with depth/, label/ and "
        "train_data_idx.txt / val_data_idx.txt). Point dataset.root at the folder that holds them (docs/detection.md).")


def _text(path: Path) -> str:
    if not path.is_file():
        raise DatasetNotFoundError(f"SUN RGB-D file {path} not found.")
    if path.stat().st_size > MAX_TEXT_BYTES:
        raise SceneFileError(f"{path} is {path.stat().st_size} bytes; a SUN RGB-D label or index file is far smaller "
                             f"(at most {MAX_TEXT_BYTES} read).")
    try:
        return path.read_text()
    except UnicodeDecodeError as e:
        raise SceneFileError(f"{path} is not text: {e}.") from None


def _finite(values: List[float], what: str) -> List[float]:
    if not all(math.isfinite(v) for v in values):
        raise SceneFileError(f"{what} holds NaN or infinite values.")
    return values


# --- mmdetection3d's prepared data ---------------------------------------------------------------------------

def prepared_frames(root: Path, split: str) -> List[Dict[str, Any]]:
    """The frames of ``split`` in ``sunrgbd_infos_<train|val>.pkl``: ``{"name", "points", "boxes"}`` each, checked."""
    path = root / f"sunrgbd_infos_{'train' if split == 'train' else 'val'}.pkl"
    if not path.is_file():
        raise DatasetNotFoundError(f"SUN RGB-D info file {path} not found (mmdetection3d's create_data.py writes "
                                   "sunrgbd_infos_train.pkl and sunrgbd_infos_val.pkl).")
    info = read_info_pickle(path)
    if isinstance(info, list):
        raise SceneFileError(f"{path} is an info file of mmdetection3d < 1.0 (a list of frames), whose yaw has the opposite "
                             "sign; convert it with mmdet3d's tools/dataset_converters/update_infos_to_v2.py or run "
                             "create_data.py of mmdet3d >= 1.0 (or point dataset.root at a folder holding only the "
                             "VoteNet export, sunrgbd_trainval/: the info files are read first when both are there).")
    if not isinstance(info, dict) or not isinstance(info.get("data_list"), list):
        raise SceneFileError(f"{path} holds no data_list: not an mmdetection3d SUN RGB-D info file.")
    frames = []
    for i, entry in enumerate(info["data_list"]):
        where = f"{path} entry {i}"
        lidar = entry.get("lidar_points") if isinstance(entry, dict) else None
        if not isinstance(lidar, dict) or not isinstance(lidar.get("lidar_path"), str):
            raise SceneFileError(f"{where} has no lidar_points.lidar_path.")
        name = lidar["lidar_path"]
        if Path(name).name != name or name in ("", ".", ".."):
            raise SceneFileError(f"{where}: lidar_path {name!r} is not a file name in points/.")
        feats = lidar.get("num_pts_feats", 6)
        if isinstance(feats, bool) or not isinstance(feats, (int, np.integer)) or not 6 <= int(feats) <= 16:
            raise SceneFileError(f"{where}: num_pts_feats {feats!r} is not 6 (x, y, z, r, g, b) or a few more.")
        boxes = []
        instances = entry.get("instances", [])
        if not isinstance(instances, list):
            raise SceneFileError(f"{where}: instances is not a list.")
        for inst in instances:
            box, label = (inst.get("bbox_3d"), inst.get("bbox_label_3d")) if isinstance(inst, dict) else (None, None)
            try:
                values = [float(v) for v in box]
                label = int(label)
            except (TypeError, ValueError):
                raise SceneFileError(f"{where}: an instance without a numeric bbox_3d and bbox_label_3d.") from None
            if len(values) != 7 or not -1 <= label < len(CLASSES) or isinstance(inst["bbox_label_3d"], bool):
                raise SceneFileError(f"{where}: bbox_3d needs 7 numbers (centre, size, yaw) and bbox_label_3d a class id "
                                     f"in [-1, {len(CLASSES) - 1}]; got {len(values)} numbers and {label}.")
            if label >= 0:
                boxes.append(_finite(values, where) + [float(label)])
        frames.append({"name": Path(name).stem, "points": root / "points" / name, "feats": int(feats), "boxes": boxes})
    return frames


def read_points_bin(path: Path, feats: int = 6, max_points: int = MAX_POINTS) -> np.ndarray:
    """``[N, feats]`` float32 points of an mmdet3d ``.bin`` file, its size checked against ``feats`` and ``max_points``
    before it is read."""
    if not path.is_file():
        raise DatasetNotFoundError(f"SUN RGB-D points file {path} not found.")
    size = path.stat().st_size
    if size % (4 * feats):
        raise SceneFileError(f"{path} holds {size} bytes, not a whole number of {feats}-float32 points.")
    n = size // (4 * feats)
    if n > max_points or n == 0:
        raise SceneFileError(f"{path} holds {n} points; a frame has 1 to {max_points} (dataset.max_points).")
    points = np.fromfile(path, dtype="<f4", count=n * feats).reshape(n, feats)
    if not np.isfinite(points[:, :6]).all():
        raise SceneFileError(f"{path} holds NaN or infinite values.")
    return points


# --- the VoteNet export ------------------------------------------------------------------------------------

def export_ids(root: Path, split: str) -> List[int]:
    """The frame ids of ``split`` from ``sunrgbd_trainval/<train|val>_data_idx.txt``."""
    lines = [s.strip() for s in _text(root / "sunrgbd_trainval" / f"{'train' if split == 'train' else 'val'}_data_idx.txt").splitlines()]
    bad = [s for s in lines if s and not _ID.match(s)]
    if bad:
        raise SceneFileError(f"{root / 'sunrgbd_trainval'}: the split index lists {bad[0]!r}, not a frame number.")
    return [int(s) for s in lines if s]


def parse_label_line(line: str, where: str) -> Optional[List[float]]:
    """One object of a VoteNet label file as ``[x, y, z, dx, dy, dz, yaw, class]`` (mmdet3d's ``SUNRGBDInstance``),
    or None for an object outside :data:`CLASSES`."""
    fields = line.split()
    if len(fields) != 13:
        raise SceneFileError(f"{where}: expected 13 fields (class, 2D box, centroid, half sizes, orientation), got {len(fields)}.")
    try:
        v = _finite([float(x) for x in fields[1:]], where)
    except ValueError:
        raise SceneFileError(f"{where}: the fields after the class name must be numbers.") from None
    if fields[0] not in CLASSES:
        return None
    width, length, height = v[7], v[8], v[9]
    if min(width, length, height) <= 0:
        raise SceneFileError(f"{where}: half sizes must be positive, got {width}, {length}, {height}.")
    return [v[4], v[5], v[6], 2 * length, 2 * width, 2 * height, math.atan2(v[11], v[10]), float(CLASSES.index(fields[0]))]


def read_export_labels(path: Path) -> List[List[float]]:
    return [b for i, line in enumerate(_text(path).splitlines()) if line.strip()
            for b in [parse_label_line(line, f"{path} line {i + 1}")] if b is not None]


def read_depth_mat(path: Path, max_points: int = MAX_POINTS) -> np.ndarray:
    """The ``[N, 6]`` points (``instance``) of a VoteNet depth ``.mat`` file, its declared shape checked before it is
    read (scipy reads MATLAB 5 files without running code)."""
    from scipy import io as sio

    if not path.is_file():
        raise DatasetNotFoundError(f"SUN RGB-D depth file {path} not found.")
    with open(path, "rb") as f:
        head = f.read(128)
    if not head.startswith(b"MATLAB 5.0 MAT-file") or head[126:128] not in (b"IM", b"MI"):
        raise SceneFileError(f"{path} is not a MATLAB 5 (v6/v7) file; the VoteNet export writes those (v4 and v7.3 files "
                             "are not read).")
    try:
        declared = {name: (shape, kind) for name, shape, kind in sio.whosmat(str(path))}
    except Exception as e:  # scipy raises many kinds of errors on damaged files
        raise SceneFileError(f"{path} is not a readable MATLAB file: {type(e).__name__}: {e}") from None
    shape, kind = declared.get("instance", (None, None))
    if shape is None or len(shape) != 2 or shape[1] != 6 or not 0 < shape[0] <= max_points:
        raise SceneFileError(f"{path} declares {'no instance array' if shape is None else f'instance of shape {shape}'}; "
                             f"expected [N, 6] points with 1 <= N <= {max_points}.")
    size = shape[0] * 6 * _MAT_BYTES.get(kind, 8)
    if size > MAT_EXPANSION * path.stat().st_size:
        raise SceneFileError(f"{path} declares {size} bytes of points in a {path.stat().st_size}-byte file; point data "
                             f"compresses about 3x, so more than {MAT_EXPANSION}x is refused as damaged.")
    try:
        points = np.asarray(sio.loadmat(str(path), variable_names=["instance"])["instance"])
    except Exception as e:
        raise SceneFileError(f"{path} is not a readable MATLAB file: {type(e).__name__}: {e}") from None
    if points.shape != tuple(shape) or not np.issubdtype(points.dtype, np.number) or not np.isfinite(points).all():
        raise SceneFileError(f"{path}: instance is {points.dtype} {points.shape} with finite numbers expected.")
    return points.astype(np.float32)


# --- one interface ---------------------------------------------------------------------------------------

def frames(root: Path, split: str) -> Tuple[str, List[Any]]:
    """``(layout, keys)`` of ``split``: prepared frames' dicts or exported frame ids."""
    kind = layout(root)
    return kind, (prepared_frames(root, split) if kind == "prepared" else export_ids(root, split))


def load_frame(root: Path, kind: str, key: Any, max_points: int = MAX_POINTS) -> Dict[str, Any]:
    """One frame as a scene dict (see the module docstring)."""
    if kind == "prepared":
        points, boxes, name = read_points_bin(key["points"], key["feats"], max_points), key["boxes"], key["name"]
    else:
        folder = root / "sunrgbd_trainval"
        points = read_depth_mat(folder / "depth" / f"{key:06d}.mat", max_points)
        boxes, name = read_export_labels(folder / "label" / f"{key:06d}.txt"), f"{key:06d}"
    return {"coord": torch.from_numpy(np.ascontiguousarray(points[:, :3], dtype=np.float32)),
            "feat": torch.from_numpy(np.ascontiguousarray(points[:, 3:6], dtype=np.float32)).clamp(0, 1),
            "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 8), "name": name}
