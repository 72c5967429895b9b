"""Point-cloud scenes by dataset name: what ``geossl show`` draws and the scene benchmarks read.

``scannet`` (the mmdetection3d per-scene NumPy layout), ``rooms`` (procedural, per seed) and the
RGB-D sequences of :data:`geossl.pointcloud.rgbd.RGBD_DATASETS`, fused into a point cloud by TSDF
fusion. Every scene is a dict with at least ``coord`` and ``feat`` (see :func:`load_scene`).
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

from geossl.errors import UnknownNameError

from .rgbd import RGBD_DATASETS, RGBDSequence

SCENE_DATASETS = ("scannet", "rooms") + tuple(RGBD_DATASETS)
#: Datasets that yield posed RGB-D frames (``geossl fit-gaussians``): the real sequences and the rooms' views.
SEQUENCE_DATASETS = tuple(RGBD_DATASETS) + ("rooms",)
_ROOM_KEYS = ("num_points", "num_views", "min_objects", "max_objects", "width", "height", "fov_deg", "color_noise")


def _room(dataset: Mapping[str, Any]) -> Dict[str, Any]:
    from .rooms import make_room

    return make_room(int(dataset["seed"]), **{k: dataset[k] for k in _ROOM_KEYS if k in dataset})


def load_sequence(dataset: Mapping[str, Any]) -> RGBDSequence:
    """The posed RGB-D frames of a ``dataset`` config group: a real sequence read from disk (resized to
    ``width`` x ``height``), or the ray-cast views of ``rooms`` (rendered at that size)."""
    name = dataset["name"]
    if name == "rooms":
        return _room(dataset)["frames"]
    if name in RGBD_DATASETS:
        size = (int(dataset["width"]), int(dataset["height"])) if dataset.get("width") else None
        return RGBD_DATASETS[name](root=dataset.get("root"), stride=int(dataset.get("stride", 1)), size=size,
                                   max_frames=dataset.get("max_frames"))
    raise UnknownNameError(f"A sequence needs posed RGB-D frames, and {name!r} has none. Valid datasets: {', '.join(SEQUENCE_DATASETS)}.")


def load_scene(dataset: Mapping[str, Any], fusion: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """One scene from a ``dataset`` config group (``configs/dataset/<name>.yaml``).

    Args:
        dataset: the group's values; ``name`` picks the dataset (one of :data:`SCENE_DATASETS`).
        fusion: keyword arguments of :func:`geossl.pointcloud.tsdf.fuse_tsdf` for RGB-D sequences.

    Returns:
        ``coord [N, 3]``, ``feat [N, 3]`` rgb in [0, 1], and what the dataset has besides (``boxes``,
        ``semantic``, ``instance``, ``normal``, ``frames``), plus ``name``.
    """
    name = dataset["name"]
    if name == "scannet":
        from .scannet import load_scannet_scene

        return {**load_scannet_scene(dataset["scene"], dataset.get("root")), "name": dataset["scene"]}
    if name == "rooms":
        return _room(dataset)
    if name in RGBD_DATASETS:
        from .tsdf import fuse_tsdf

        seq = load_sequence(dataset)
        return {**fuse_tsdf(seq.frames, **dict(fusion or {})), "frames": seq, "name": seq.name}
    raise UnknownNameError(f"Unknown scene dataset {name!r}. Valid scene datasets: {', '.join(SCENE_DATASETS)}.")
