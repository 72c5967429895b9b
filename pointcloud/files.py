"""Point clouds from files: PLY (plyfile), PCD (ASCII or binary; our reader of the PCL v0.7
header) and NPZ (``coord`` [N, 3] and optional ``color`` [N, 3]). Each returns a scene dict for
:func:`geossl.points.collate`: ``coord`` [N, 3] float, ``feat`` [N, 3] colours in [0, 1]
(zeros when the file has none).

A file that does not fit its format is refused with a :class:`PointFileError` naming the problem;
sizes a header declares are checked against the bytes the file holds before anything is allocated.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path
from typing import Dict

import numpy as np
import torch
from torch import Tensor

from geossl.errors import DatasetNotFoundError, GeosslError
from geossl.io import ply_header_problem


class PointFileError(GeosslError, ValueError):
    """A point file that cannot be read: unknown format, missing x/y/z, compressed PCD, bad sizes."""


def _colours(rgb: np.ndarray) -> np.ndarray:
    """Colours in [0, 1]: integer channels are divided by their type's maximum, float channels kept (clipped)."""
    if np.issubdtype(rgb.dtype, np.integer):
        return rgb.astype(np.float64) / float(np.iinfo(rgb.dtype).max)
    return np.clip(rgb.astype(np.float64), 0.0, 1.0)


def _scene(xyz: np.ndarray, rgb: np.ndarray | None, path: Path) -> Dict[str, Tensor]:
    if xyz.ndim != 2 or xyz.shape[1] != 3 or len(xyz) == 0:
        raise PointFileError(f"{path} holds no points (coordinates of shape {xyz.shape}).")
    coord = torch.from_numpy(np.ascontiguousarray(xyz, dtype=np.float32))
    if rgb is not None:
        rgb = _colours(rgb)
    if not torch.isfinite(coord).all():
        keep = torch.isfinite(coord).all(1)
        if not keep.any():
            raise PointFileError(f"{path}: no point has finite coordinates.")
        coord = coord[keep]
        rgb = None if rgb is None else rgb[keep.numpy()]
    feat = torch.zeros_like(coord) if rgb is None else torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32))
    return {"coord": coord, "feat": feat}


def _read_ply(path: Path):
    from plyfile import PlyData

    problem = ply_header_problem(path)
    if problem:
        raise PointFileError(f"{path} is not a readable PLY point cloud: {problem}.")
    try:
        ply = PlyData.read(str(path))
        v = ply["vertex"]
        names = [p.name for p in v.properties]
        if not {"x", "y", "z"} <= set(names):
            raise PointFileError(f"{path} has no x/y/z vertex properties.")
        xyz = np.stack([np.asarray(v[k], dtype=np.float64) for k in "xyz"], 1)
        rgb = np.stack([np.asarray(v[k]) for k in ("red", "green", "blue")], 1) if {"red", "green", "blue"} <= set(names) else None
    except PointFileError:
        raise
    except Exception as e:  # plyfile raises several kinds (and KeyError for a missing element)
        raise PointFileError(f"{path} is not a readable PLY point cloud: {type(e).__name__}: {e}") from None
    return xyz, rgb


#: PCD TYPE + SIZE -> NumPy dtype.
_PCD_CODES = {("F", 4): "<f4", ("F", 8): "<f8", ("U", 1): "u1", ("U", 2): "<u2", ("U", 4): "<u4", ("U", 8): "<u8",
              ("I", 1): "i1", ("I", 2): "<i2", ("I", 4): "<i4", ("I", 8): "<i8"}


def _pcd_header(raw: bytes, path: Path):
    """The header entries (upper-case keys -> values) and the offset of the data."""
    header, pos = {}, 0
    while True:
        end = raw.find(b"\n", pos)
        if end < 0:
            raise PointFileError(f"{path}: the PCD header ends before its DATA line.")
        line = raw[pos:end].decode("ascii", "replace").strip()
        pos = end + 1
        if not line or line.startswith("#"):
            continue
        key, *vals = line.split()
        header[key.upper()] = vals
        if key.upper() == "DATA":
            return header, pos


def _pcd_int(header, key: str, path: Path) -> int:
    try:
        value = int(header[key][0])
    except (KeyError, IndexError, ValueError):
        raise PointFileError(f"{path}: the PCD header needs an integer {key} line.") from None
    if value < 0:
        raise PointFileError(f"{path}: {key} {value} is negative.")
    return value


def _read_pcd(path: Path):
    raw = path.read_bytes()
    header, pos = _pcd_header(raw, path)
    fields, types = header.get("FIELDS", []), [t.upper() for t in header.get("TYPE", [])]
    try:
        sizes = [int(v) for v in header.get("SIZE", [])]
        counts = [int(v) for v in header.get("COUNT", ["1"] * len(fields))]
    except ValueError:
        raise PointFileError(f"{path}: SIZE and COUNT must be integers.") from None
    if not fields or not (len(fields) == len(sizes) == len(types) == len(counts)):
        raise PointFileError(f"{path}: FIELDS ({len(fields)}), SIZE ({len(sizes)}), TYPE ({len(types)}) and COUNT ({len(counts)}) "
                             "must list one entry per field.")
    if len(set(fields)) != len(fields) or min(counts) < 1 or max(counts) > len(raw):
        raise PointFileError(f"{path}: FIELDS repeats a name, or a COUNT is below 1 or larger than the file.")
    bad = [(t, s) for t, s in zip(types, sizes) if (t, s) not in _PCD_CODES]
    if bad:
        raise PointFileError(f"{path}: unsupported TYPE/SIZE {bad[0][0]}{bad[0][1]} (supported: F4, F8, U1-U8, I1-I8).")
    if not {"x", "y", "z"} <= set(fields):
        raise PointFileError(f"{path} has no x/y/z fields (FIELDS {' '.join(fields)}).")
    n = _pcd_int(header, "POINTS", path)
    if "WIDTH" in header and "HEIGHT" in header and _pcd_int(header, "WIDTH", path) * _pcd_int(header, "HEIGHT", path) != n:
        raise PointFileError(f"{path}: WIDTH x HEIGHT is not POINTS ({n}).")
    kind = header["DATA"][0].lower() if header["DATA"] else ""
    dtype = np.dtype([(f, _PCD_CODES[(t, s)], (c,)) if c > 1 else (f, _PCD_CODES[(t, s)]) for f, t, s, c in zip(fields, types, sizes, counts)])
    if kind == "binary_compressed":
        raise PointFileError(f"{path} is a binary_compressed PCD, which this reader does not support; save it as binary or ascii.")
    if kind == "binary":
        if len(raw) - pos < n * dtype.itemsize:
            raise PointFileError(f"{path} declares {n} points but holds data for {(len(raw) - pos) // dtype.itemsize}.")
        data = np.frombuffer(raw, dtype=dtype, count=n, offset=pos)
        columns = {f: np.asarray(data[f]) for f in fields}
    elif kind == "ascii":
        lines = [ln for ln in raw[pos:].decode("ascii", "replace").splitlines() if ln.strip()]
        if len(lines) < n:
            raise PointFileError(f"{path} declares {n} points but has {len(lines)} data lines.")
        width = sum(counts)
        try:
            rows = np.array([[float(v) for v in ln.split()] for ln in lines[:n]], dtype=np.float64).reshape(n, -1) if n else \
                np.zeros((0, width))
        except ValueError:
            raise PointFileError(f"{path}: the ascii data rows must hold {width} numbers each (COUNT expands a field).") from None
        if rows.shape[1] != width:
            raise PointFileError(f"{path}: ascii rows hold {rows.shape[1]} numbers; FIELDS with COUNT give {width}.")
        starts = np.cumsum([0] + counts)
        columns = {f: rows[:, a] if c == 1 else rows[:, a:a + c] for f, a, c in zip(fields, starts, counts)}
        # a packed colour written as a float keeps its bits: reinterpret through float32
        with np.errstate(over="ignore", invalid="ignore"):  # an out-of-range colour word is just a wrong colour
            for f, t in zip(fields, types):
                if f in ("rgb", "rgba"):
                    columns[f] = columns[f].astype(np.float32) if t == "F" else np.nan_to_num(columns[f]).astype(np.int64).astype(np.uint32)
    else:
        raise PointFileError(f"{path}: unknown PCD DATA kind {kind!r} (ascii, binary or binary_compressed).")
    if any(np.ndim(columns[a]) != 1 for a in "xyz"):
        raise PointFileError(f"{path}: x, y and z must have COUNT 1.")
    xyz = np.stack([columns["x"], columns["y"], columns["z"]], 1).astype(np.float64)
    rgb = None
    packed_field = next((f for f in ("rgb", "rgba") if f in fields), None)
    if packed_field is not None:
        i = fields.index(packed_field)
        if sizes[i] != 4 or counts[i] != 1:
            raise PointFileError(f"{path}: field {packed_field} must be one 4-byte value (PCL's packed colour).")
        packed = np.ascontiguousarray(columns[packed_field]).view(np.uint32)  # PCL packs 8-bit r, g, b into 4 bytes
        rgb = np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], 1).astype(np.uint8)
    return xyz, rgb


def _read_npz(path: Path):
    try:
        with np.load(path, allow_pickle=False) as z:
            if "coord" not in z.files:
                raise PointFileError(f"{path} has no 'coord' array (keys: {', '.join(z.files)}).")
            xyz, rgb = z["coord"], (z["color"] if "color" in z.files else None)
    except PointFileError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, KeyError, NotImplementedError) as e:
        raise PointFileError(f"{path} is not a readable NumPy archive: {type(e).__name__}: {e}") from None
    if xyz.ndim != 2 or xyz.shape[1] != 3 or not np.issubdtype(xyz.dtype, np.number) or \
            (rgb is not None and (rgb.shape != xyz.shape or not np.issubdtype(rgb.dtype, np.number))):
        raise PointFileError(f"{path}: coord must be [N, 3] and color [N, 3] numbers; got {xyz.shape} {xyz.dtype} and "
                             f"{None if rgb is None else (rgb.shape, rgb.dtype)}.")
    return xyz.astype(np.float64), rgb


def load_point_file(path: str) -> Dict[str, Tensor]:
    """A point cloud from a ``.ply``, ``.pcd`` or ``.npz`` file (see the module docstring)."""
    p = Path(path)
    if not p.is_file():
        raise DatasetNotFoundError(f"No point file at {p}.")
    readers = {".ply": _read_ply, ".pcd": _read_pcd, ".npz": _read_npz}
    suffix = p.suffix.lower()
    if suffix not in readers:
        raise PointFileError(f"Unknown point-file format {suffix!r} ({p}). Valid formats: {', '.join(readers)}.")
    xyz, rgb = readers[suffix](p)
    return _scene(xyz, rgb, p)

