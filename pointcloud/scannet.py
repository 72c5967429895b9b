"""ScanNet scenes in the per-scene NumPy layout of mmdetection3d's ``scannet_train_instance_data``
(``<scene>_vert_all.npy`` ``[N, 6]`` axis-aligned xyz in metres + rgb, ``<scene>_sem_label_all.npy``
nyu40 ids, ``<scene>_ins_label_all.npy`` instance ids (0 = none), ``<scene>_bbox.npy`` ``[K, 7]``
axis-aligned boxes (centre, size, nyu40 class), ``<scene>_bbox_idx.npy`` the instance of each box).
Read with ``allow_pickle=False``.

The info file beside them (``scannet_infos_*.pkl``: the axis-align matrix, the posed colour frames'
intrinsics and camera-to-world extrinsics) is a pickle of dicts, lists and numpy arrays.
:func:`read_info_pickle` reads it with an unpickler that admits only numpy's array reconstruction
(the role ``torch.load(weights_only=True)`` plays for checkpoints): a pickle that names any other
callable is refused before anything runs.
"""

from __future__ import annotations

import io
import pickle
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from torch import Tensor

from geossl.errors import DatasetNotFoundError, GeosslError
from geossl.io import load_npy

DEFAULT = "3d/scannet_scene0000_mmdet3d/instance_data"
#: The callables an mmdetection3d info pickle (ScanNet, SUN RGB-D) may name: numpy array and scalar reconstruction,
#: and the latin-1 encoding numpy's protocol-2 pickles use for raw bytes.
_INFO_PICKLE_GLOBALS = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
                        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}


class SceneFileError(GeosslError, ValueError):
    """Scene files that disagree with each other (a box file that does not match its scene)."""


def scannet_scenes(root: Optional[str] = None) -> List[str]:
    """The scene names found in ``root`` (default ``$GEOSSL_DATA/3d/scannet_scene0000_mmdet3d/instance_data``)."""
    from geossl.data import data_root

    path = Path(root) if root else data_root() / DEFAULT
    return sorted(p.name[: -len("_vert_all.npy")] for p in path.glob("*_vert_all.npy"))


def load_scannet_scene(scene: str, root: Optional[str] = None) -> Dict[str, Tensor]:
    """One scene as a dict for :func:`geossl.points.collate`: ``coord [N, 3]``, ``feat``
    ``[N, 3]`` (rgb in [0, 1]), ``semantic [N]``, ``instance [N]``, ``boxes [K, 7]`` (centre, size,
    class) and ``box_instance [K]``."""
    from geossl.data import data_root

    path = Path(root) if root else data_root() / DEFAULT
    files = {k: path / f"{scene}_{k}.npy" for k in ("vert_all", "sem_label_all", "ins_label_all", "bbox", "bbox_idx")}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise DatasetNotFoundError(f"ScanNet scene {scene!r} not found: missing {', '.join(missing)}. Point dataset.root at a "
                                   "folder of <scene>_vert_all.npy / _sem_label_all.npy / _ins_label_all.npy / _bbox.npy / "
                                   "_bbox_idx.npy files.")
    arr = {k: load_npy(p, SceneFileError) for k, p in files.items()}
    for k, a in arr.items():
        if not np.issubdtype(a.dtype, np.number) or (k != "vert_all" and k != "bbox" and a.ndim != 1):
            raise SceneFileError(f"{files[k]} holds {a.dtype} of shape {a.shape}; expected numbers"
                                 f"{'' if k in ('vert_all', 'bbox') else ' in one dimension'}.")
    vert, boxes, box_idx = arr["vert_all"], arr["bbox"], arr["bbox_idx"]
    n = len(vert)
    if vert.ndim != 2 or vert.shape[1] < 6:
        raise SceneFileError(f"{files['vert_all']}: expected [N, 6] vertices (xyz rgb), got {vert.shape}.")
    for k in ("sem_label_all", "ins_label_all"):
        if len(arr[k]) != n:
            raise SceneFileError(f"{files[k]} has {len(arr[k])} labels for {n} vertices.")
    if not np.isfinite(vert[:, :6]).all() or (boxes.size and not np.isfinite(boxes).all()):
        raise SceneFileError(f"{files['vert_all']} or {files['bbox']} holds NaN or infinite values.")
    if boxes.ndim != 2 or boxes.shape[1] != 7 or len(box_idx) != len(boxes):
        raise SceneFileError(f"{files['bbox']} ({boxes.shape}) and {files['bbox_idx']} ({box_idx.shape}) do not match: "
                             "expected [K, 7] boxes and K instance ids.")
    present = set(np.unique(arr["ins_label_all"]).tolist())
    absent = [int(i) for i in box_idx if int(i) not in present]
    if absent:
        raise SceneFileError(f"{files['bbox_idx']} names instances {absent[:5]} that no vertex of {scene} carries: "
                             "the box file does not match its scene.")
    return {"coord": torch.from_numpy(vert[:, :3].astype(np.float32)), "feat": torch.from_numpy(vert[:, 3:6].astype(np.float32) / 255.0),
            "semantic": torch.from_numpy(arr["sem_label_all"].astype(np.int64)),
            "instance": torch.from_numpy(arr["ins_label_all"].astype(np.int64)),
            "boxes": torch.from_numpy(boxes.astype(np.float32)), "box_instance": torch.from_numpy(box_idx.astype(np.int64))}


class _ArraysOnlyUnpickler(pickle._Unpickler):
    """The pure-Python unpickler (its reads of a declared length return what is there, where the C one allocates
    the length first), admitting only numpy's array reconstruction."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _INFO_PICKLE_GLOBALS:
            raise SceneFileError(f"refused: it names {module}.{name}, and only numpy arrays, dicts, lists and "
                                 "scalars are read from info files")
        if name in ("_reconstruct", "scalar"):  # numpy 2 moved numpy.core to numpy._core; old pickles name the former
            import importlib

            core = "numpy._core.multiarray" if int(np.__version__.split(".")[0]) >= 2 else "numpy.core.multiarray"
            return getattr(importlib.import_module(core), name)
        return super().find_class(module, name)


def read_info_pickle(path: Path) -> Any:
    """An mmdetection3d ScanNet info file (dicts, lists, numpy arrays), read without running code:
    any other callable named in the pickle raises :class:`SceneFileError` before it is called."""
    try:
        # read the bytes first: a length a pickle declares then cannot allocate more than the file holds
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy's deprecation notes about odd dtype arguments of a damaged file
            return _ArraysOnlyUnpickler(io.BytesIO(Path(path).read_bytes())).load()
    except SceneFileError as e:
        raise SceneFileError(f"{path}: {e}.") from None
    except Exception as e:  # the admitted callables (numpy's array rebuilding, codecs) fail in many ways on damaged data
        if isinstance(e, OSError) and not Path(path).is_file():
            raise DatasetNotFoundError(f"No info file at {path}.") from None
        raise SceneFileError(f"{path} is not a readable info pickle: {type(e).__name__}: {e}") from None


def load_scannet_posed(scene: str, root: Optional[str] = None) -> Dict[str, Any]:
    """The axis-align matrix and posed colour frames of a ScanNet sample scene.

    Reads ``scannet_infos_*.pkl`` in the folder above the per-scene NumPy files (``root``, default
    ``$GEOSSL_DATA/3d/scannet_scene0000_mmdet3d/instance_data``) with :func:`read_info_pickle`, and the
    JPEGs it names.

    Returns:
        ``axis_align_matrix`` ``[4, 4]`` (original scan -> the axis-aligned frame of ``coord`` and
        ``boxes``) and ``frames``: a list of dicts with ``color`` ``[H, W, 3]`` in [0, 1], ``K`` ``[3, 3]``
        (colour intrinsics), ``cam_to_world`` ``[4, 4]`` (into the original, unaligned scan frame) and
        ``name``.
    """
    from geossl.data import data_root

    from geossl.pointcloud.rgbd import _read_image

    folder = (Path(root) if root else data_root() / DEFAULT).parent
    infos = sorted(folder.glob("scannet_infos_*.pkl"))
    for path in infos:
        for entry in read_info_pickle(path):
            if not isinstance(entry, dict) or entry.get("point_cloud", {}).get("lidar_idx") != scene or "extrinsics" not in entry:
                continue
            annos = entry.get("annos", {})
            if "axis_align_matrix" not in annos or len(entry["extrinsics"]) != len(entry["img_paths"]):
                raise SceneFileError(f"{path}: the entry of {scene} lacks axis_align_matrix or has "
                                     f"{len(entry['extrinsics'])} extrinsics for {len(entry['img_paths'])} images.")
            K = torch.from_numpy(np.asarray(entry["intrinsics"], np.float32)[:3, :3].copy())
            frames = []
            for pose, rel in zip(entry["extrinsics"], entry["img_paths"]):
                img = folder / rel
                if not img.is_file():
                    raise DatasetNotFoundError(f"{path} names the image {rel}, which is not in {folder}.")
                color = torch.from_numpy(_read_image(img)[..., :3].copy()).float() / 255.0
                frames.append({"color": color, "K": K.clone(), "cam_to_world": torch.from_numpy(np.asarray(pose, np.float32).copy()),
                               "name": Path(rel).stem})
            return {"axis_align_matrix": torch.from_numpy(np.asarray(annos["axis_align_matrix"], np.float32).copy()),
                    "frames": frames}
    raise DatasetNotFoundError(f"No posed frames of {scene} found: looked for an entry with extrinsics in "
                               f"{', '.join(str(p) for p in infos) or f'scannet_infos_*.pkl in {folder} (none there)'}.")
