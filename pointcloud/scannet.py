"""ScanNet scenes in the per-scene NumPy layout of mmdetection3d's ``scannet_train_instance_data``
(``<scene>_vert_all.npy`` ``[N, 6]`` axis-aligned xyz in metres + rgb, ``<scene>_sem_label_all.npy``
nyu40 ids, ``<scene>_ins_label_all.npy`` instance ids (0 = none), ``<scene>_bbox.npy`` ``[K, 7]``
axis-aligned boxes (centre, size, nyu40 class), ``<scene>_bbox_idx.npy`` the instance of each box).
Read with ``allow_pickle=False``; the ``.pkl`` info files beside them are never unpickled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch
from torch import Tensor

from geossl.errors import DatasetNotFoundError, GeosslError

DEFAULT = "3d/scannet_scene0000_mmdet3d/instance_data"


class SceneFileError(GeosslError, ValueError):
    """Scene files that disagree with each other (a box file that does not match its scene)."""


def scannet_scenes(root: Optional[str] = None) -> List[str]:
    """The scene names found in ``root`` (default ``$GEOSSL_DATA/3d/scannet_scene0000_mmdet3d/instance_data``)."""
    from geossl.data import data_root

    path = Path(root) if root else data_root() / DEFAULT
    return sorted(p.name[: -len("_vert_all.npy")] for p in path.glob("*_vert_all.npy"))


def load_scannet_scene(scene: str, root: Optional[str] = None) -> Dict[str, Tensor]:
    """One scene as a dict for :func:`geossl.pointcloud.batch.collate`: ``coord [N, 3]``, ``feat``
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
    arr = {k: np.load(p, allow_pickle=False) for k, p in files.items()}
    vert, boxes, box_idx = arr["vert_all"], arr["bbox"], arr["bbox_idx"]
    n = len(vert)
    if vert.ndim != 2 or vert.shape[1] < 6:
        raise SceneFileError(f"{files['vert_all']}: expected [N, 6] vertices (xyz rgb), got {vert.shape}.")
    for k in ("sem_label_all", "ins_label_all"):
        if len(arr[k]) != n:
            raise SceneFileError(f"{files[k]} has {len(arr[k])} labels for {n} vertices.")
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
