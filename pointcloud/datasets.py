"""Scene datasets: torch ``Dataset`` s of scenes with train/val/test splits (registered in
:data:`geossl.registry.DATASETS` under the domain "scene").

Every builder takes ``split`` ("train", "val" or "test") and returns a :class:`SceneDataset`, whose
items are scene dicts (``coord``, ``feat`` = rgb in [0, 1], and what the dataset has: per-point
``labels`` into ``semantic_classes``, ``boxes`` with class ids into ``box_classes``, ``views``) after
the split's transform. Datasets:

* ``rooms``: procedural rooms (:mod:`geossl.pointcloud.rooms`); a split is a range of seeds, each
  room generated on demand, so the collection is unlimited and needs no disk.
* ``scannet``: ScanNet scenes in mmdetection3d's per-scene NumPy layout (the three sample scenes by
  default; point ``dataset.root`` at a full export and ``dataset.splits`` at the official lists).
* ``sevenscenes``, ``redwood``, ``scannet_export``: one RGB-D sequence each, TSDF-fused into a point
  cloud from its training frames; every split holds that one scene, with the training frames as the
  views of the train split and the held-out frames (every ``test_every``-th) as those of val/test.
* ``scene_folder``: the documented scene-folder format (:mod:`geossl.pointcloud.scene_folder`).

``views`` > 0 makes every item carry that many posed RGB-D views of its scene, drawn at random (per
item seed) from the frames of its split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch

from geossl.errors import ConfigError, DatasetNotFoundError, GeosslError
from geossl.frames import RGBDFrame, RGBDSequence
from geossl.registry import DATASETS

from geossl.pointcloud.rgbd import REDWOOD_FOLDER, SEVENSCENES_FOLDER
from geossl.pointcloud.scannet import DEFAULT as SCANNET_FOLDER
from geossl.pointcloud.scene_folder import MAX_POINTS as MAX_SCENE_POINTS

SPLITS = ("train", "val", "test")


class SceneDatasetError(GeosslError, ValueError):
    """A scene dataset that cannot serve what was asked of it (a split with no scenes, too few views)."""


class SceneDataset(torch.utils.data.Dataset):
    """One split of a scene dataset.

    Args:
        name: the dataset's registry name.
        split: "train", "val" or "test".
        keys: the scenes of the split (seeds, names, ...), passed to ``load``.
        load: ``load(key, frames)`` -> the raw scene dict (``frames``: whether to read its posed views,
            an :class:`RGBDSequence` under ``"frames"``; with ``view_count``, also a list of frame positions: those
            frames alone, in that order).
        view_frames: ``view_frames(sequence, split)`` -> the frames an item of ``split`` may take as views.
        semantic_classes: names of the per-point label ids (None: no labels).
        box_classes: names of the box class ids (None: no boxes).
        box_yaw: whether its boxes carry a yaw (``[K, 8]``: centre, size, yaw, class) rather than being axis-aligned
            (``[K, 7]``); one answer for the whole dataset.
        views: posed views per item (0: none).
        view_count: the number of frames every scene of the split has, where it is known without loading one and every
            frame may be a view of the split (the procedural rooms): an item then picks its views first and loads those
            frames alone (the same views as picking from all of them).
        loop: every scene appears this many times per epoch (Pointcept's ``loop``; for datasets of few scenes). A run
            repeats its training split alone (``SceneData.split``): val and test scenes are scored once.
        transform: ``transform(scene, generator)`` applied to every item (:mod:`geossl.pointcloud.transforms`).
        origin: where an item's scene comes from, in words, for the line a run prints before training (made anew,
            read from a cache or a folder).
    """

    def __init__(self, name: str, split: str, keys: Sequence, load: Callable[[Any, bool], Dict[str, Any]],
                 view_frames: Callable[[RGBDSequence, str], List[RGBDFrame]] = lambda seq, split: list(seq.frames),
                 semantic_classes: Optional[Sequence[str]] = None, box_classes: Optional[Sequence[str]] = None,
                 box_yaw: bool = False, views: int = 0, loop: int = 1, transform: Optional[Callable] = None, origin: str = "",
                 view_count: Optional[int] = None):
        if split not in SPLITS:
            raise ConfigError(f"Unknown split {split!r}. Valid splits: {', '.join(SPLITS)}.")
        if not keys:
            raise SceneDatasetError(f"Dataset {name!r} has no scenes in its {split} split.")
        if views < 0 or loop < 1:
            raise ConfigError(f"dataset.views must be >= 0 and dataset.loop >= 1, got {views} and {loop}.")
        self.name, self.split, self.keys, self._load, self._view_frames = name, split, list(keys), load, view_frames
        self.semantic_classes = None if semantic_classes is None else tuple(semantic_classes)
        self.box_classes = None if box_classes is None else tuple(box_classes)
        self.box_yaw = bool(box_yaw)
        self.views, self.loop, self.transform, self.origin = int(views), int(loop), transform, origin
        self.view_count = view_count
        self.in_dim = 3

    def __len__(self) -> int:
        return len(self.keys) * self.loop

    def scene(self, key, frames: bool = True) -> Dict[str, Any]:
        """The raw scene ``key`` (untransformed; its posed frames under ``"frames"`` when ``frames``)."""
        return self._load(key, frames)

    def find(self, key) -> Dict[str, Any]:
        """The raw scene named ``key`` (a scene of any split: a seed, a scene name), with its frames."""
        return self.scene(key, True)

    def __getitem__(self, item: Union[int, Tuple[int, int]]) -> Dict[str, Any]:
        index, seed = item if isinstance(item, tuple) else (item, item)
        g = torch.Generator().manual_seed(int(seed))
        key = self.keys[index % len(self.keys)]
        if self.views and self.view_count:  # pick the views, then load those frames alone
            raw = self.scene(key, frames=[int(i) for i in self._pick(self.view_count, g)])
            views = list(raw["frames"].frames)
        else:
            raw = self.scene(key, frames=self.views > 0)
            if self.views:
                frames = self._view_frames(raw["frames"], self.split)
                if not frames:
                    raise SceneDatasetError(f"Scene {raw['name']} of dataset {self.name!r} has no posed views in its {self.split} split.")
                views = [frames[int(i)] for i in self._pick(len(frames), g)]
        scene = {k: raw[k] for k in ("coord", "feat", "labels", "normal", "instance", "boxes", "name") if raw.get(k) is not None}
        if self.views:
            scene["views"] = views
        return self.transform(scene, g) if self.transform is not None else scene

    def _pick(self, count: int, g: torch.Generator) -> torch.Tensor:
        """Positions of an item's ``views`` among ``count`` frames: distinct where there are enough, else drawn with repeats."""
        return torch.randperm(count, generator=g)[: self.views] if count >= self.views else \
            torch.randint(count, (self.views,), generator=g)


def _split_keys(splits: Dict[str, Any], split: str, name: str) -> List:
    if split not in splits:
        raise ConfigError(f"dataset.splits of {name!r} has no {split!r} split (it has {', '.join(splits) or 'none'}).")
    return list(splits[split])


# --- rooms -------------------------------------------------------------------------------------------------

ROOM_SPLITS = {"train": [0, 1000], "val": [1000, 1050], "test": [2000, 2100]}


def datasets_with(capability: str) -> str:
    """The scene datasets that can carry ``capability`` ("labels", "boxes", "views", "rgbd": posed views with depth), as
    their registrations declare it, each with its note where only some of its scenes have it (for error messages)."""
    out = []
    for name in DATASETS.having(capability, "scene"):
        note = DATASETS.tags(name).get("notes", {}).get(capability)
        out.append(f"{name} ({note})" if note else name)
    return ", ".join(out)


@DATASETS.register("rooms", domain="scene", capabilities=("labels", "boxes", "views", "rgbd"),
                   state="built-in", about="procedural rooms, a split is a range of seeds (points, labels, boxes, ray-cast RGB-D views)")
def rooms(split: str = "train", splits: Optional[Dict[str, List[int]]] = None, num_points: int = 50_000, num_views: int = 4,
          min_objects: int = 4, max_objects: int = 10, width: int = 320, height: int = 240, fov_deg: float = 60.0,
          color_noise: float = 0.02, test_every: int = 10, views: int = 0, loop: int = 1, scene: int = 0,
          cache: bool = False) -> SceneDataset:
    """Procedural rooms, one per seed (:func:`geossl.pointcloud.rooms.make_room`).

    Args:
        split: which split.
        splits: per split, a ``[start, stop)`` range of room seeds (default: train 0-999, val 1000-1049,
            test 2000-2099).
        num_points, min_objects, max_objects, color_noise: the generator's settings.
        num_views, width, height, fov_deg: ray-cast RGB-D views rendered per room, their size and field of view.
        test_every: ``geossl fit-gaussians`` holds out the views at positions 0, test_every, ...
        views: posed views per item (drawn from the room's ``num_views``).
        loop: passes over the split per epoch.
        scene: the room (seed) that ``geossl show`` and ``geossl fit-gaussians`` use.
        cache: keep every room made on disk and read it back from there when it is asked for again
            (:func:`geossl.pointcloud.rooms.cached_room`: the same tensors, without making the room again; about
            7 MB a room with four 320x240 views), so that a run passes over its rooms at the speed of reading them.
    """
    from geossl.pointcloud.rooms import SEMANTIC, CLASSES, cached_room, make_room

    ranges = dict(ROOM_SPLITS if splits is None else splits)
    lo, hi = (int(v) for v in _split_keys(ranges, split, "rooms"))
    if views > num_views:
        raise ConfigError(f"dataset.views={views} views per item, but each room renders dataset.num_views={num_views}.")

    def load(seed, frames) -> Dict[str, Any]:
        settings = dict(num_points=num_points, num_views=num_views if frames is not False else 0, min_objects=min_objects,
                        max_objects=max_objects, width=width, height=height, fov_deg=fov_deg, color_noise=color_noise)
        if cache:
            r = cached_room(int(seed), **settings)
        else:  # frames: True (all views), False (none) or the positions of the views an item picked (those alone)
            r = make_room(int(seed), **settings, render=None if isinstance(frames, bool) else frames)
        r["labels"] = r.pop("semantic")
        return r

    origin = ("each room generated once and kept in the room cache (dataset.cache=true), read back after that" if cache else
              "every room generated (points, and ray casts of the views an item uses) anew for every item, every epoch; "
              "dataset.cache=true keeps them")
    return SceneDataset("rooms", split, list(range(lo, hi)), load, semantic_classes=SEMANTIC, box_classes=CLASSES,
                        views=views, loop=loop, origin=origin, view_count=None if cache else num_views)


# --- ScanNet -----------------------------------------------------------------------------------------------

#: The 20 classes of the ScanNet semantic-segmentation benchmark as nyu40 ids (others are ignored, -1).
SCANNET20 = {1: "wall", 2: "floor", 3: "cabinet", 4: "bed", 5: "chair", 6: "sofa", 7: "table", 8: "door", 9: "window",
             10: "bookshelf", 11: "picture", 12: "counter", 14: "desk", 16: "curtain", 24: "refrigerator",
             28: "shower curtain", 33: "toilet", 34: "sink", 36: "bathtub", 39: "otherfurniture"}
#: mmdetection3d's 18 ScanNet detection classes as nyu40 ids (boxes of other classes are dropped).
SCANNET18_BOXES = {3: "cabinet", 4: "bed", 5: "chair", 6: "sofa", 7: "table", 8: "door", 9: "window", 10: "bookshelf",
                   11: "picture", 12: "counter", 14: "desk", 16: "curtain", 24: "refrigerator", 28: "showercurtrain",
                   33: "toilet", 34: "sink", 36: "bathtub", 39: "garbagebin"}
SCANNET_SAMPLE_SPLITS = {"train": ["scene0000_00", "scene0000_01"], "val": ["scene0000_02"], "test": ["scene0000_02"]}


def _lookup(table: Dict[int, str]) -> Tuple[torch.Tensor, Tuple[str, ...]]:
    lut = torch.full((max(table) + 2,), -1, dtype=torch.long)
    for i, nyu in enumerate(sorted(table)):
        lut[nyu] = i
    return lut, tuple(table[k] for k in sorted(table))


def _read_split_lists(folder: Path, split: str) -> List[str]:
    path = folder / f"scannetv2_{split}.txt"
    if not path.is_file():
        raise DatasetNotFoundError(f"No ScanNet split list {path}: dataset.splits names a folder of scannetv2_<split>.txt files.")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


@DATASETS.register("scannet", domain="scene", capabilities=("labels", "boxes", "views"), folder=SCANNET_FOLDER,
                   notes={"views": "the sample scene0000_00 only, colour without depth"})
def scannet(split: str = "train", root: Optional[str] = None, splits: Any = None, views: int = 0, loop: int = 1,
            scene: str = "scene0000_00") -> SceneDataset:
    """ScanNet scenes in mmdetection3d's per-scene NumPy layout (:mod:`geossl.pointcloud.scannet`), axis-aligned.

    Per-point labels are the 20 benchmark classes (:data:`SCANNET20`, other nyu40 ids ignored); boxes
    are those of mmdetection3d's 18 detection classes (:data:`SCANNET18_BOXES`).

    Args:
        split: which split.
        root: the folder of ``<scene>_vert_all.npy`` files (default: the sample scenes under the data root).
        splits: per split, a list of scene names; or a folder holding ScanNet's ``scannetv2_<split>.txt``
            lists (scenes not in ``root`` are left out). Default: the samples' train scene0000_00/01,
            val and test scene0000_02 (re-scans of one room, so a test of the pipeline, not of generalisation).
        views: posed colour views per item (the sample info file has them for scene0000_00 only; no depth).
        loop: passes over the split per epoch.
        scene: the scene that ``geossl show`` uses.
    """
    from geossl.pointcloud.scannet import load_scannet_posed, load_scannet_scene, scannet_scenes

    semantic_lut, semantic_names = _lookup(SCANNET20)
    box_lut, box_names = _lookup(SCANNET18_BOXES)
    available = set(scannet_scenes(root))
    if splits is None:
        keys = _split_keys(SCANNET_SAMPLE_SPLITS, split, "scannet")
    elif isinstance(splits, str):
        keys = [k for k in _read_split_lists(Path(splits), split) if k in available]
    else:
        keys = _split_keys(dict(splits), split, "scannet")

    def load(name, frames: bool) -> Dict[str, Any]:
        s = load_scannet_scene(str(name), root)
        sem = s.pop("semantic").clamp(0, len(semantic_lut) - 1)
        s["labels"] = semantic_lut[sem]
        b = s["boxes"]
        cls = box_lut[b[:, 6].long().clamp(0, len(box_lut) - 1)]
        s["boxes"] = torch.cat([b[cls >= 0, :6], cls[cls >= 0, None].float()], 1)
        s["box_instance"] = s["box_instance"][cls >= 0]
        s["name"] = str(name)
        if frames:
            posed = load_scannet_posed(str(name), root)
            align = posed["axis_align_matrix"]
            s["frames"] = RGBDSequence([RGBDFrame(f["color"], torch.zeros(f["color"].shape[:2]), f["K"],
                                                  align @ f["cam_to_world"], f["name"]) for f in posed["frames"]], str(name))
        return s

    return SceneDataset("scannet", split, keys, load, semantic_classes=semantic_names, box_classes=box_names,
                        views=views, loop=loop, origin="scenes read from their ScanNet files")


# --- SUN RGB-D ------------------------------------------------------------------------------------------------

@DATASETS.register("sunrgbd", domain="scene", capabilities=("boxes",),
                   about="SUN RGB-D as mmdetection3d prepares it or as VoteNet exports it: dataset.root=<folder> (docs/detection.md)")
def sunrgbd(split: str = "train", root: str = "???", loop: int = 1, scene: Optional[str] = None,
            max_points: int = 2_000_000) -> SceneDataset:
    """SUN RGB-D frames for 3D detection (:mod:`geossl.pointcloud.sunrgbd`): upright depth coordinates, boxes of VoteNet's
    10 classes with a yaw (``[K, 8]``).

    Args:
        split: "train" (the train index), "val" or "test" (both the val index: SUN RGB-D's test labels are not public).
        root: the folder holding mmdetection3d's ``sunrgbd_infos_*.pkl`` and ``points/``, or VoteNet's ``sunrgbd_trainval/``.
        loop: passes over the split per epoch (training only).
        scene: the frame that ``geossl show`` draws (its name: ``000001``; default: the split's first).
        max_points: the most points a frame may hold (checked before a file is read).
    """
    from geossl.pointcloud.sunrgbd import CLASSES, frames, load_frame

    if max_points < 1:
        raise ConfigError(f"dataset.max_points must be >= 1, got {max_points}.")
    folder = Path(root)
    kind, keys = frames(folder, split)
    names = {(k["name"] if kind == "prepared" else f"{k:06d}"): k for k in keys}

    class Frames(SceneDataset):
        def find(self, key) -> Dict[str, Any]:
            if any(key is k for k in keys):
                return load_frame(folder, kind, key, max_points)
            key = f"{key:06d}" if isinstance(key, int) and not isinstance(key, bool) else key  # dataset.scene=000001 reads as 1
            if str(key) not in names:
                raise ConfigError(f"SUN RGB-D frame {key!r} is not in the {split} split of {folder}; its frames: "
                                  f"{', '.join(list(names)[:10])}{' ...' if len(names) > 10 else ''}.")
            return load_frame(folder, kind, names[str(key)], max_points)

    return Frames("sunrgbd", split, keys, lambda key, frames_: load_frame(folder, kind, key, max_points),
                  box_classes=CLASSES, box_yaw=True, loop=loop,
                  origin=f"SUN RGB-D frames read from {folder} ({'mmdetection3d info files' if kind == 'prepared' else 'VoteNet export'})")


# --- RGB-D sequences ---------------------------------------------------------------------------------------

#: Default TSDF fusion settings of the RGB-D sequence datasets (keyword arguments of fuse_tsdf).
FUSION = {"voxel_size": 0.02, "trunc_voxels": 4.0, "depth_max": 4.0, "weight_threshold": 2.0}


def _sequence_dataset(name: str, reader, split: str, root, stride: int, width: int, height: int, max_frames, test_every: int,
                      fusion: Optional[Dict[str, Any]], views: int, loop: int) -> SceneDataset:
    """One RGB-D sequence as a scene dataset: the cloud fused from its training frames (positions not a
    multiple of ``test_every``), views from the training frames (train split) or the held-out ones."""
    from geossl.pointcloud.tsdf import fuse_tsdf

    if test_every < 2:
        raise ConfigError(f"dataset.test_every must be >= 2 (every test_every-th frame is held out), got {test_every}.")
    if stride < 1 or (width is not None and width < 1) or (height is not None and height < 1) or (max_frames is not None and max_frames < 1):
        raise ConfigError(f"dataset.stride, width, height and max_frames must be >= 1; got {stride}, {width}, {height} and {max_frames}.")
    settings = {**FUSION, **dict(fusion or {})}
    cache: Dict[str, Any] = {}

    def load(key, frames: bool) -> Dict[str, Any]:
        if "scene" not in cache:
            seq = reader(root=root, stride=stride, size=(width, height) if width else None, max_frames=max_frames)
            train, _ = seq.split(test_every)
            cache["scene"] = {**fuse_tsdf(train or seq.frames, **settings), "frames": seq, "name": seq.name}
        return dict(cache["scene"])

    def view_frames(seq: RGBDSequence, split: str) -> List[RGBDFrame]:
        train, test = seq.split(test_every)
        return train if split == "train" else test

    return SceneDataset(name, split, [name], load, view_frames=view_frames, views=views, loop=loop,
                        origin="one scene fused (TSDF) from the RGB-D sequence on first use, kept in memory")


def _register_sequence(name: str, doc: str, folder: Optional[str] = None, about: str = ""):
    def builder(split: str = "train", root: Optional[str] = None, stride: int = 1, width: int = 160, height: int = 120,
                max_frames: Optional[int] = None, test_every: int = 10, fusion: Optional[Dict[str, Any]] = None,
                views: int = 0, loop: int = 1) -> SceneDataset:
        from geossl.pointcloud.rgbd import RGBD_DATASETS

        return _sequence_dataset(name, RGBD_DATASETS[name], split, root, stride, width, height, max_frames, test_every,
                                 fusion, views, loop)

    builder.__doc__ = doc + """

    Args:
        split: which split (every split holds the one scene; the views differ, see the module docstring).
        root: the sequence's folder (default: the sample under the data root).
        stride: keep every stride-th frame. width, height: frames are resized to this (intrinsics scaled).
        max_frames: read at most this many frames.
        test_every: frames at positions 0, test_every, 2 test_every, ... are held out (not fused, views of val/test).
        fusion: TSDF fusion settings (:func:`geossl.pointcloud.tsdf.fuse_tsdf`; defaults in :data:`FUSION`).
        views: posed views per item. loop: passes over the one scene per epoch.
    """
    builder.__name__ = name
    DATASETS.register(name, domain="scene", capabilities=("views", "rgbd"), folder=folder, about=about)(builder)


_register_sequence("sevenscenes", "A 7-Scenes RGB-D sequence (:func:`geossl.pointcloud.rgbd.sevenscenes`).",
                   folder=SEVENSCENES_FOLDER)
_register_sequence("redwood", "A Redwood / Open3D RGB-D sequence (:func:`geossl.pointcloud.rgbd.redwood`).",
                   folder=REDWOOD_FOLDER)
_register_sequence("scannet_export", "A scene exported by ScanNet's reader.py (:func:`geossl.pointcloud.rgbd.scannet_export`).",
                   about="an exported ScanNet scene: dataset.root=<folder with color/ depth/ pose/ intrinsic/>")


# --- the scene-folder format ------------------------------------------------------------------------------

@DATASETS.register("scene_folder", domain="scene", capabilities=("labels", "boxes", "views", "rgbd"),
                   about="your scenes in the scene-folder format: dataset.root=<folder> (docs/datasets.md)",
                   notes={"labels": "with semantic arrays", "boxes": "with boxes.json", "views": "with frames", "rgbd": "with frames"})
def scene_folder(split: str = "train", root: str = "???", views: int = 0, loop: int = 1, scene: Optional[str] = None,
                 max_points: int = MAX_SCENE_POINTS) -> SceneDataset:
    """Your own scenes in the scene-folder format (:mod:`geossl.pointcloud.scene_folder`, docs/datasets.md).

    Args:
        split: which split (the ``splits`` of ``meta.json``; without them every scene is in every split).
        root: the folder holding ``meta.json`` and one folder per scene.
        views: posed views per item (from each scene's ``frames/``; val/test items take them too).
        loop: passes over the split per epoch.
        scene: the scene that ``geossl show`` uses (default: the split's first).
        max_points: the most points a scene's ``points.npz`` may declare (refused before it is read, with what it
            would take uncompressed; a small compressed file can declare billions).
    """
    from geossl.pointcloud.scene_folder import read_meta, read_scene

    if max_points < 1:
        raise ConfigError(f"dataset.max_points must be >= 1, got {max_points}.")

    meta = read_meta(root)
    splits = meta["splits"]
    keys = _split_keys(splits, split, f"scene_folder {root}") if splits else meta["scenes"]
    boxed = set(keys) & set(meta["boxed"])  # a split whose boxes.json files list no box has no boxes
    return SceneDataset("scene_folder", split, keys, lambda key, frames: read_scene(root, key, meta, frames, max_points),
                        semantic_classes=meta["semantic_classes"], box_classes=meta["box_classes"] if boxed else None,
                        box_yaw=meta["yaw"], views=views, loop=loop,
                        origin=f"scenes read from {root}")


def scene_for_show(builder_kwargs: Dict[str, Any], builder) -> Dict[str, Any]:
    """The raw scene that ``geossl show`` / ``geossl fit-gaussians`` use: ``dataset.scene`` where the
    dataset has that key, else the first scene of its train split."""
    kwargs = dict(builder_kwargs)
    key = kwargs.pop("scene", None)
    ds = builder(split="train", **kwargs)
    return ds.find(key if key is not None else ds.keys[0])

