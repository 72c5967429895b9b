"""Point clouds from files: PLY (plyfile), PCD (ASCII or binary; our reader of the PCL v0.7
header) and NPZ (``coord`` [N, 3] and optional ``color`` [N, 3]). Each returns a scene dict for
:func:`geossl.points.collate`: ``coord`` [N, 3] float, ``feat`` [N, 3] colours in [0, 1]
(zeros when the file has none)."""

from __future__ import annotations

from pathlib import Path
from typing import Dict

import numpy as np
import torch
from torch import Tensor

from geossl.errors import DatasetNotFoundError, GeosslError


class PointFileError(GeosslError, ValueError):
    """A point file that cannot be read: unknown format, missing x/y/z, compressed PCD, bad sizes."""


def _scene(xyz: np.ndarray, rgb: np.ndarray | None, path: Path) -> Dict[str, Tensor]:
    if len(xyz) == 0:
        raise PointFileError(f"{path} holds no points.")
    coord = torch.from_numpy(np.ascontiguousarray(xyz, dtype=np.float32))
    if not torch.isfinite(coord).all():
        keep = torch.isfinite(coord).all(1)
        coord = coord[keep]
        rgb = None if rgb is None else rgb[keep.numpy()]
    feat = torch.zeros_like(coord) if rgb is None else torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32))
    return {"coord": coord, "feat": feat}


def _read_ply(path: Path):
    from plyfile import PlyData

    try:
        v = PlyData.read(str(path))["vertex"]
    except Exception as e:  # plyfile raises several kinds
        raise PointFileError(f"{path} is not a readable PLY point cloud: {e}") from e
    names = [p.name for p in v.properties]
    if not {"x", "y", "z"} <= set(names):
        raise PointFileError(f"{path} has no x/y/z vertex properties.")
    xyz = np.stack([np.asarray(v[k]) for k in "xyz"], 1)
    rgb = np.stack([np.asarray(v[k]) for k in ("red", "green", "blue")], 1) / 255.0 if "red" in names else None
    return xyz, rgb


def _read_pcd(path: Path):
    raw = path.read_bytes()
    header, pos = {}, 0
    while True:
        end = raw.index(b"\n", pos)
        line = raw[pos:end].decode("ascii", "replace").strip()
        pos = end + 1
        if not line or line.startswith("#"):
            continue
        key, *vals = line.split()
        header[key.upper()] = vals
        if key.upper() == "DATA":
            break
    fields, sizes, types = header.get("FIELDS", []), list(map(int, header.get("SIZE", []))), header.get("TYPE", [])
    counts = list(map(int, header.get("COUNT", ["1"] * len(fields))))
    n, kind = int(header["POINTS"][0]), header["DATA"][0]
    if not {"x", "y", "z"} <= set(fields):
        raise PointFileError(f"{path} has no x/y/z fields (FIELDS {' '.join(fields)}).")
    if kind == "binary_compressed":
        raise PointFileError(f"{path} is a binary_compressed PCD, which this reader does not support; save it as "
                             "binary or ascii.")
    codes = {("F", 4): "<f4", ("F", 8): "<f8", ("U", 1): "u1", ("U", 2): "<u2", ("U", 4): "<u4", ("I", 1): "i1",
             ("I", 2): "<i2", ("I", 4): "<i4"}
    dtype = np.dtype([(f, codes[(t, s)], (c,)) if c > 1 else (f, codes[(t, s)]) for f, t, s, c in zip(fields, types, sizes, counts)])
    if kind == "binary":
        if len(raw) - pos < n * dtype.itemsize:
            raise PointFileError(f"{path} declares {n} points but holds data for {(len(raw) - pos) // dtype.itemsize}.")
        data = np.frombuffer(raw, dtype=dtype, count=n, offset=pos)
    elif kind == "ascii":
        rows = np.loadtxt(raw[pos:].decode("ascii").splitlines(), dtype=np.float64, ndmin=2)
        data = {f: rows[:, i] for i, f in enumerate(fields)}
    else:
        raise PointFileError(f"{path}: unknown PCD DATA kind {kind!r}.")
    xyz = np.stack([np.asarray(data["x"]), np.asarray(data["y"]), np.asarray(data["z"])], 1)
    rgb = None
    if "rgb" in fields:
        packed = np.asarray(data["rgb"], dtype=np.float32).view(np.uint32)  # PCL packs 8-bit r, g, b into a float
        rgb = np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], 1) / 255.0
    return xyz, rgb


def load_point_file(path: str) -> Dict[str, Tensor]:
    """A point cloud from a ``.ply``, ``.pcd`` or ``.npz`` file (see the module docstring)."""
    p = Path(path)
    if not p.is_file():
        raise DatasetNotFoundError(f"No point file at {p}.")
    suffix = p.suffix.lower()
    if suffix == ".ply":
        xyz, rgb = _read_ply(p)
    elif suffix == ".pcd":
        xyz, rgb = _read_pcd(p)
    elif suffix == ".npz":
        with np.load(p, allow_pickle=False) as z:
            if "coord" not in z:
                raise PointFileError(f"{p} has no 'coord' array (keys: {', '.join(z.files)}).")
            xyz, rgb = z["coord"], (z["color"] if "color" in z else None)
        if xyz.ndim != 2 or xyz.shape[1] != 3 or (rgb is not None and rgb.shape != xyz.shape):
            raise PointFileError(f"{p}: coord must be [N, 3] and color [N, 3]; got {xyz.shape} and {None if rgb is None else rgb.shape}.")
    else:
        raise PointFileError(f"Unknown point-file format {suffix!r} ({p}). Valid formats: .ply, .pcd, .npz.")
    return _scene(xyz, rgb, p)
