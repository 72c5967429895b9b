"""The scene-folder format: your own scenes for ``dataset=scene_folder dataset.root=<folder>``.

A few lines of NumPy and JSON write it (``write_scene`` and ``write_meta`` below do exactly that)::

    <root>/meta.json            {"semantic_classes": [...], "box_classes": [...],
                                 "splits": {"train": [...], "val": [...], "test": [...]}}   (every key optional)
    <root>/<scene>/points.npz   coord [N, 3] float metres; color [N, 3] integers 0-255 or floats 0-1;
                                optional normal [N, 3], semantic [N] int (-1: unlabelled), instance [N] int
                 (or points.ply with x, y, z, red, green, blue and optional nx, ny, nz, semantic, instance)
    <root>/<scene>/boxes.json   optional: [{"class": "chair", "center": [x, y, z], "size": [dx, dy, dz],
                                            "yaw": 0.0}, ...]   (yaw in radians about z: every box of a folder has one or none)
    <root>/<scene>/frames/      optional posed RGB-D frames: intrinsics.txt (3x3 K of the depth image),
                                <id>.color.png|.jpg, <id>.depth.png (uint16 millimetres, 0 = invalid),
                                <id>.pose.txt (4x4 camera -> world, OpenCV camera axes)

``semantic`` ids index ``semantic_classes``; a box's ``class`` must be one of ``box_classes``. Without
``splits`` every scene (every sub-folder with a points file) is in every split. Everything is read
without pickle (``np.load(allow_pickle=False)``, JSON, PNG); a file that does not fit the format is
refused with a :class:`SceneFolderError` that names it.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

from geossl.errors import DatasetNotFoundError, GeosslError
from geossl.frames import RGBDFrame, RGBDSequence
from geossl.io import check_npz, ply_header_problem


class SceneFolderError(GeosslError, ValueError):
    """A scene folder that does not follow the format (a missing colour array, an unknown box class, ...)."""


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:  # RecursionError: nested too deep
        raise SceneFolderError(f"{path} is not readable JSON: {type(e).__name__}: {e}") from None


def _names(value: Any, what: str, path: Path) -> Optional[List[str]]:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SceneFolderError(f"{path}: {what} must be a list of names.")
    return list(value)


def read_meta(root: str) -> Dict[str, Any]:
    """``semantic_classes``, ``box_classes``, ``splits`` (or None) and ``scenes`` of a scene folder, with ``yaw``
    (whether its boxes carry one: every box of a folder does or none does) and ``boxed`` (the scenes with a box)."""
    folder = Path(root)
    if not folder.is_dir():
        raise DatasetNotFoundError(f"Scene folder {folder} not found. Point dataset.root at a folder in the scene-folder "
                                   "format (docs/datasets.md): meta.json and one folder per scene with points.npz or points.ply.")
    meta_path = folder / "meta.json"
    meta = _json(meta_path) if meta_path.is_file() else {}
    if not isinstance(meta, dict):
        raise SceneFolderError(f"{meta_path} must hold a JSON object.")
    scenes = sorted(p.name for p in folder.iterdir() if p.is_dir() and any((p / f).is_file() for f in ("points.npz", "points.ply")))
    if not scenes:
        raise DatasetNotFoundError(f"Scene folder {folder} has no scenes: no sub-folder holds points.npz or points.ply.")
    splits = meta.get("splits")
    if splits is not None:
        if not isinstance(splits, dict):
            raise SceneFolderError(f"{meta_path}: splits must map split names to lists of scene folders.")
        splits = {k: _names(v, f"splits.{k}", meta_path) for k, v in splits.items()}
        missing = sorted({s for v in splits.values() for s in v} - set(scenes))
        if missing:
            raise SceneFolderError(f"{meta_path} names scenes that are not in {folder}: {', '.join(missing[:5])}.")
    yaw_of = {s: y for s in scenes if (folder / s / "boxes.json").is_file()
              for y in [boxes_have_yaw(folder / s / "boxes.json")] if y is not None}
    if len(set(yaw_of.values())) > 1:
        with_yaw, without = (next(s for s, y in yaw_of.items() if y == want) for want in (True, False))
        raise SceneFolderError(f"{folder}: the boxes of scene {with_yaw} have a yaw and those of scene {without} have none; "
                               "give every box of a folder a yaw (0 for an axis-aligned box) or none.")
    return {"semantic_classes": _names(meta.get("semantic_classes"), "semantic_classes", meta_path),
            "box_classes": _names(meta.get("box_classes"), "box_classes", meta_path), "splits": splits, "scenes": scenes,
            "yaw": any(yaw_of.values()), "boxed": sorted(yaw_of)}


#: The most points a scene may hold unless ``dataset.max_points`` says otherwise (ScanNet's scenes hold up to ~0.5 M).
MAX_POINTS = 20_000_000


def _points(folder: Path, max_points: int = MAX_POINTS) -> Dict[str, np.ndarray]:
    npz, ply = folder / "points.npz", folder / "points.ply"
    if npz.is_file():
        # at most 8 arrays of max_points rows of 3 float64 each: nothing larger is decompressed or allocated
        check_npz(npz, SceneFolderError, max_points, 8 * 3 * 8 * max_points + (1 << 20), rows_key="dataset.max_points")
        try:
            with np.load(npz, allow_pickle=False) as z:
                out = {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, KeyError, NotImplementedError) as e:
            raise SceneFolderError(f"{npz} is not a readable NumPy archive: {type(e).__name__}: {e}") from None
        bad = [f"{k} ({a.dtype})" for k, a in out.items() if a.dtype.kind not in "iuf"]  # no bool, complex, strings
        if bad:
            raise SceneFolderError(f"{npz}: {', '.join(bad)} must hold real numbers (integers or floats).")
        return out
    problem = ply_header_problem(ply)
    if problem:
        raise SceneFolderError(f"{ply} is not a readable PLY point cloud: {problem}.")
    from plyfile import PlyData

    try:
        v = PlyData.read(str(ply))["vertex"]
    except Exception as e:  # plyfile raises several kinds
        raise SceneFolderError(f"{ply} is not a readable PLY point cloud: {e}") from None
    names = {p.name for p in v.properties}
    stack = lambda keys: np.stack([np.asarray(v[k]) for k in keys], 1) if set(keys) <= names else None  # noqa: E731
    out = {"coord": stack(("x", "y", "z")), "color": stack(("red", "green", "blue")), "normal": stack(("nx", "ny", "nz"))}
    for k in ("semantic", "instance"):
        if k in names:
            out[k] = np.asarray(v[k])
    return {k: a for k, a in out.items() if a is not None}


def read_scene(root: str, name: str, meta: Dict[str, Any], frames: bool = True, max_points: int = MAX_POINTS) -> Dict[str, Any]:
    """One scene of a scene folder as a scene dict (``coord``, ``feat``, and ``labels``, ``normal``,
    ``instance``, ``boxes``, ``frames`` where present)."""
    folder = Path(root) / str(name)
    if not folder.is_dir():
        raise DatasetNotFoundError(f"Scene {name!r} not found: no folder {folder}.")
    arrays = _points(folder, max_points)
    where = folder / ("points.npz" if (folder / "points.npz").is_file() else "points.ply")
    coord = arrays.get("coord")
    if coord is None or coord.ndim != 2 or coord.shape[1] != 3 or len(coord) == 0:
        raise SceneFolderError(f"{where}: needs coord [N, 3] with N >= 1 (got {None if coord is None else coord.shape}).")
    if "color" not in arrays:
        raise SceneFolderError(f"{where} has points but no colours: the scene-folder format needs color [N, 3] "
                               "(uint8 0-255 or float 0-1; red, green, blue in a PLY).")
    n = len(coord)
    for k, width in (("color", 3), ("normal", 3), ("semantic", None), ("instance", None)):
        a = arrays.get(k)
        if a is not None and (len(a) != n or (width and (a.ndim != 2 or a.shape[1] != width))):
            raise SceneFolderError(f"{where}: {k} has shape {a.shape}, expected {n} rows{f' of {width}' if width else ''}.")
    cast = {k: _float32(arrays[k]) for k in ("coord", "color", "normal") if k in arrays}
    for k, a in cast.items():  # checked after the cast: a float64 beyond float32's range becomes inf there
        if not np.isfinite(a).all():
            raise SceneFolderError(f"{where}: {k} holds NaN, inf or values beyond float32's range (about ±3.4e38).")
    scene: Dict[str, Any] = {"coord": torch.from_numpy(cast["coord"]), "feat": torch.from_numpy(_color(cast["color"], arrays["color"], where)),
                             "name": str(name)}
    if "normal" in arrays:
        scene["normal"] = torch.from_numpy(cast["normal"])
    ids = {k: _ids(arrays[k], k, where) for k in ("semantic", "instance") if k in arrays}
    if "semantic" in ids:
        sem = ids["semantic"]
        classes = meta["semantic_classes"]
        if classes is None or sem.max(initial=-1) >= len(classes) or sem.min(initial=-1) < -1:
            raise SceneFolderError(f"{where}: semantic ids must be -1 (unlabelled) or index meta.json's semantic_classes "
                                   f"({0 if classes is None else len(classes)} names); found {sem.min()}..{sem.max()}.")
        scene["labels"] = torch.from_numpy(sem)
    if "instance" in ids:
        scene["instance"] = torch.from_numpy(ids["instance"])
    if (folder / "boxes.json").is_file():
        scene["boxes"] = _boxes(folder / "boxes.json", meta["box_classes"], meta.get("yaw"))
    if frames and (folder / "frames").is_dir():
        scene["frames"] = RGBDSequence(_frames(folder / "frames"), str(name))
    return scene


def _float32(a: np.ndarray) -> np.ndarray:
    """``a`` as float32 (values beyond its range become inf, which the callers refuse)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(a).astype(np.float32)


def _color(color: np.ndarray, raw: np.ndarray, where: Path) -> np.ndarray:
    """Colours in [0, 1]: integers must be 0-255, floats must already lie in [0, 1] (a float 0-255 or an integer
    beyond 255 is refused rather than guessed at)."""
    low, high = float(color.min()), float(color.max())
    if raw.dtype.kind in "iu":
        if low < 0 or high > 255:
            raise SceneFolderError(f"{where}: integer colours must be 0-255; color holds {low:g}..{high:g}.")
        return color / 255.0
    if low < 0 or high > 1:
        raise SceneFolderError(f"{where}: float colours must lie in [0, 1]; color holds {low:g}..{high:g} "
                               "(store 0-255 colours as uint8, or divide them by 255).")
    return color


def _ids(a: np.ndarray, key: str, where: Path) -> np.ndarray:
    """Per-point ids as int64: integers, or floats that are whole numbers (a PLY may store them as floats);
    a fractional id is refused rather than truncated."""
    if a.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            whole = np.isfinite(a) & (np.abs(a) < 2.0 ** 53) & (a == np.round(a))
        if not whole.all():
            raise SceneFolderError(f"{where}: {key} ids must be whole numbers; found {float(a[~whole][0])!r}.")
    return a.astype(np.int64)


def _numbers(value: Any, count: int) -> Optional[List[float]]:
    """``value`` as ``count`` floats when it is a JSON list of ``count`` numbers (not strings, not booleans), else None."""
    ok = isinstance(value, list) and len(value) == count and \
        all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    return [float(v) for v in value] if ok else None


def _box_list(path: Path) -> list:
    boxes = _json(path)
    if not isinstance(boxes, list):
        raise SceneFolderError(f"{path} must hold a list of boxes.")
    return boxes


def _yaw_of(boxes: list, path: Path) -> Optional[bool]:
    """Whether ``boxes`` (those of ``path``) carry a yaw (None: there are none). Every box of a file has one or none
    has: a box without ``yaw`` beside boxes with one is refused, naming it."""
    has = [isinstance(b, dict) and "yaw" in b for b in boxes]
    if any(has) and not all(has):
        raise SceneFolderError(f"{path}: box {has.index(False)} has no yaw but box {has.index(True)} has one; give every box "
                               "of a folder a yaw (0 for an axis-aligned box) or none.")
    return has[0] if has else None


def boxes_have_yaw(path: Path) -> Optional[bool]:
    """Whether the boxes of a ``boxes.json`` carry a yaw (None: it holds no boxes); see :func:`_yaw_of`."""
    return _yaw_of(_box_list(path), path)


def _boxes(path: Path, classes: Optional[List[str]], yaw: Optional[bool] = None) -> torch.Tensor:
    """The boxes of ``path`` as ``[K, 7]`` (centre, size, class) or, when ``yaw`` (the folder's boxes carry one),
    ``[K, 8]`` (centre, size, yaw, class). ``yaw`` None: decided by this file alone."""
    boxes = _box_list(path)
    file_yaw = _yaw_of(boxes, path)
    yaw = bool(file_yaw) if yaw is None else yaw
    if file_yaw is not None and file_yaw != yaw:
        raise SceneFolderError(f"{path}: its boxes have no yaw but other scenes' boxes do; give every box of a folder a "
                               "yaw (0 for an axis-aligned box) or none.")
    rows = []
    for i, b in enumerate(boxes):
        keys = sorted(b) if isinstance(b, dict) else type(b).__name__
        if not isinstance(b, dict) or "class" not in b or _numbers(b.get("center"), 3) is None or \
                _numbers(b.get("size"), 3) is None or (yaw and _numbers([b["yaw"]], 1) is None):
            raise SceneFolderError(f"{path}: box {i} needs class, center [x, y, z] and size [dx, dy, dz] as lists of "
                                   f"numbers{' and a yaw number' if yaw else ''} (found {keys}).")
        cls, centre, size, angle = b["class"], _numbers(b["center"], 3), _numbers(b["size"], 3), float(b.get("yaw", 0.0))
        if classes is None or cls not in classes:
            raise SceneFolderError(f"{path}: box {i} has class {cls!r}, which is not in meta.json's box_classes "
                                   f"({', '.join(classes or []) or 'none listed'}).")
        if min(size) <= 0 or not np.isfinite(_float32(np.array(centre + size + [angle]))).all():
            raise SceneFolderError(f"{path}: box {i} needs a finite 3-vector center and a size of three positive numbers.")
        rows.append(centre + size + ([angle] if yaw else []) + [float(classes.index(cls))])
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, 8 if yaw else 7)


def _frames(folder: Path) -> List[RGBDFrame]:
    from geossl.pointcloud.rgbd import _read_image, _read_matrix, make_frame

    intr = folder / "intrinsics.txt"
    if not intr.is_file():
        raise SceneFolderError(f"{folder} has frames but no intrinsics.txt (the 3x3 K of the depth images).")
    K = _read_matrix(intr, 3)
    out = []
    for pose in sorted(folder.glob("*.pose.txt")):
        stem = pose.name[: -len(".pose.txt")]
        color = next((c for c in (folder / f"{stem}.color.png", folder / f"{stem}.color.jpg") if c.is_file()), None)
        depth = folder / f"{stem}.depth.png"
        if color is None or not depth.is_file():
            raise SceneFolderError(f"{folder}: frame {stem} needs {stem}.color.png (or .jpg) and {stem}.depth.png beside its pose.")
        out.append(make_frame(_read_image(color), _read_image(depth), K.clone(), _read_matrix(pose), stem))
    return out


def write_meta(root: str, semantic_classes: Optional[Sequence[str]] = None, box_classes: Optional[Sequence[str]] = None,
               splits: Optional[Dict[str, Sequence[str]]] = None) -> Path:
    """Write ``<root>/meta.json``."""
    path = Path(root) / "meta.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {k: (list(v) if not isinstance(v, dict) else {s: list(n) for s, n in v.items()})
            for k, v in (("semantic_classes", semantic_classes), ("box_classes", box_classes), ("splits", splits)) if v is not None}
    path.write_text(json.dumps(meta, indent=2))
    return path


def write_scene(root: str, name: str, coord, color, semantic=None, instance=None, normal=None,
                boxes: Optional[List[Dict[str, Any]]] = None, frames: Sequence[RGBDFrame] = ()) -> Path:
    """Write one scene (arrays or tensors; ``color`` in [0, 1] or 0-255; ``boxes`` as dicts with
    class/center/size[/yaw]; ``frames`` as :class:`RGBDFrame` s of one intrinsics) in the scene-folder format."""
    from PIL import Image

    folder = Path(root) / name
    folder.mkdir(parents=True, exist_ok=True)
    arr = lambda a: a.detach().cpu().numpy() if torch.is_tensor(a) else np.asarray(a)  # noqa: E731
    data = {"coord": arr(coord).astype(np.float32), "color": arr(color)}
    for k, v in (("semantic", semantic), ("instance", instance), ("normal", normal)):
        if v is not None:
            data[k] = arr(v)
    np.savez(folder / "points.npz", **data)
    if boxes is not None:
        (folder / "boxes.json").write_text(json.dumps(boxes))
    if frames:
        fdir = folder / "frames"
        fdir.mkdir(exist_ok=True)
        np.savetxt(fdir / "intrinsics.txt", arr(frames[0].K))
        for f in frames:
            Image.fromarray((arr(f.color) * 255).round().clip(0, 255).astype(np.uint8)).save(fdir / f"{f.name}.color.png")
            Image.fromarray((arr(f.depth) * 1000).round().clip(0, 65535).astype(np.uint16)).save(fdir / f"{f.name}.depth.png")
            np.savetxt(fdir / f"{f.name}.pose.txt", arr(f.cam_to_world))
    return folder
