"""Procedural indoor scenes (``dataset=rooms``): an unlimited, deterministic, labelled scene set.

A room is a floor and four walls (no ceiling, as in ScanNet reconstructions) holding furniture-like
objects of six classes (:data:`CLASSES`), each assembled from cuboids with random dimensions and
colours. Objects that stand against a wall (cabinet, bed, sofa, bookshelf) are placed flush to a
random wall, facing into the room; tables and chairs anywhere free. Yaws are multiples of 90
degrees, so the axis-aligned ground-truth boxes are tight, as ScanNet's are after its axis-align
matrix. Everything is drawn from ``numpy.random.default_rng(seed)``: the same seed gives the same
scene, bit for bit on one machine; across CPU models the floats may differ in their last bits (an
Intel Xeon with AVX-512 and an AMD EPYC gave different bytes; numpy's, torch's and the BLAS libraries'
AVX-512 kernels are not the cause, open3d's ray caster, which picks its kernels by CPU, likely is),
so tests/pointcloud/test_rooms.py holds the labels exact and the floats to a tolerance.

Each scene carries:

* a surface point cloud sampled uniformly by area (``coord``, ``feat`` = rgb in [0, 1], ``normal``,
  per-point ``semantic`` id into :data:`SEMANTIC` and ``instance`` id, 0 for floor and walls);
* ``boxes`` ``[K, 7]`` (centre xyz, size xyz, class id into :data:`CLASSES`) and ``box_instance`` ``[K]``,
  the layout of :func:`geossl.pointcloud.scannet.load_scannet_scene`;
* ``frames``: posed RGB-D views rendered by ray casting the same triangles with open3d's
  ``RaycastingScene`` (:class:`~geossl.frames.RGBDSequence`, OpenCV cameras, depth in metres
  along the optical axis, 0 where a ray leaves the room through the open top).

Colours are albedo times a fixed Lambertian term (the same for points and views), so the views are
consistent with the point colours from every direction.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from geossl.errors import GeosslError
from geossl.ops.camera import pixel_rays

from geossl.frames import RGBDFrame, RGBDSequence

#: Object classes; a box's class id indexes this tuple.
CLASSES = ("table", "chair", "cabinet", "bed", "sofa", "bookshelf")
#: Point semantic ids: 0 floor, 1 wall, 2 + class id for object points.
SEMANTIC = ("floor", "wall") + CLASSES
_AGAINST_WALL = {"cabinet", "bed", "sofa", "bookshelf"}
_LIGHT = np.array([0.3, 0.5, 1.0]) / np.linalg.norm([0.3, 0.5, 1.0])


class RoomsError(GeosslError, ValueError):
    """Settings the room generator cannot satisfy."""


@dataclass
class _Part:
    lo: np.ndarray  # [3] min corner in the object's frame (z up, footprint centred on the origin)
    hi: np.ndarray
    color: np.ndarray  # [3] albedo


def _box(lo, hi, color) -> _Part:
    return _Part(np.asarray(lo, float), np.asarray(hi, float), np.asarray(color, float))


def _legs(w: float, d: float, h: float, t: float, color) -> List[_Part]:
    xs, ys = (-w / 2, w / 2 - t), (-d / 2, d / 2 - t)
    return [_box((x, y, 0), (x + t, y + t, h), color) for x in xs for y in ys]


def _hsv(rng: np.random.Generator, hue: Tuple[float, float], sat: Tuple[float, float], val: Tuple[float, float]) -> np.ndarray:
    import colorsys

    return np.array(colorsys.hsv_to_rgb(rng.uniform(*hue) % 1.0, rng.uniform(*sat), rng.uniform(*val)))


def _object_parts(cls: str, rng: np.random.Generator) -> List[_Part]:
    """The cuboids of one object in its own frame: footprint centred on the origin, standing on
    z = 0, its back (if any) towards +y."""
    wood = _hsv(rng, (0.05, 0.11), (0.35, 0.7), (0.3, 0.75))
    if cls == "table":
        w, d, h = rng.uniform(0.8, 1.8), rng.uniform(0.6, 1.0), rng.uniform(0.7, 0.78)
        return [_box((-w / 2, -d / 2, h - 0.04), (w / 2, d / 2, h), wood)] + _legs(w - 0.1, d - 0.1, h - 0.04, 0.05, wood)
    if cls == "chair":
        c = _hsv(rng, (0.0, 1.0), (0.2, 0.8), (0.25, 0.9))
        w, d, s, b = rng.uniform(0.4, 0.5), rng.uniform(0.4, 0.5), rng.uniform(0.42, 0.48), rng.uniform(0.4, 0.5)
        return ([_box((-w / 2, -d / 2, s - 0.04), (w / 2, d / 2, s), c), _box((-w / 2, d / 2 - 0.04, s), (w / 2, d / 2, s + b), c)]
                + _legs(w, d, s - 0.04, 0.04, wood))
    if cls == "cabinet":
        c = wood if rng.random() < 0.5 else _hsv(rng, (0.0, 1.0), (0.0, 0.15), (0.6, 0.95))
        w, d, h = rng.uniform(0.5, 1.2), rng.uniform(0.4, 0.6), rng.uniform(0.8, 2.0)
        return [_box((-w / 2, -d / 2, 0), (w / 2, d / 2, h), c)]
    if cls == "bed":
        sheet = _hsv(rng, (0.0, 1.0), (0.0, 0.3), (0.75, 0.98))
        w, d, hb = rng.uniform(1.4, 1.8), rng.uniform(1.9, 2.1), rng.uniform(0.9, 1.1)
        return [_box((-w / 2, -d / 2, 0), (w / 2, d / 2 - 0.06, 0.3), wood),
                _box((-w / 2 + 0.03, -d / 2 + 0.03, 0.3), (w / 2 - 0.03, d / 2 - 0.06, 0.5), sheet),
                _box((-w / 2, d / 2 - 0.06, 0), (w / 2, d / 2, hb), wood)]
    if cls == "sofa":
        c = _hsv(rng, (0.0, 1.0), (0.3, 0.8), (0.25, 0.8))
        w, d = rng.uniform(1.6, 2.4), rng.uniform(0.8, 1.0)
        return [_box((-w / 2 + 0.15, -d / 2, 0), (w / 2 - 0.15, d / 2 - 0.2, 0.42), c),
                _box((-w / 2, d / 2 - 0.2, 0), (w / 2, d / 2, 0.85), c),
                _box((-w / 2, -d / 2, 0), (-w / 2 + 0.15, d / 2 - 0.2, 0.6), c),
                _box((w / 2 - 0.15, -d / 2, 0), (w / 2, d / 2 - 0.2, 0.6), c)]
    if cls == "bookshelf":
        w, d, h = rng.uniform(0.6, 1.2), rng.uniform(0.28, 0.4), rng.uniform(1.6, 2.2)
        t = 0.03
        parts = [_box((-w / 2, -d / 2, 0), (-w / 2 + t, d / 2, h), wood), _box((w / 2 - t, -d / 2, 0), (w / 2, d / 2, h), wood),
                 _box((-w / 2 + t, d / 2 - t, 0), (w / 2 - t, d / 2, h), wood)]
        shelves = int(h // 0.35)
        for z in np.linspace(0, h - t, shelves + 1):
            parts.append(_box((-w / 2 + t, -d / 2, z), (w / 2 - t, d / 2 - t, z + t), wood))
        return parts
    raise RoomsError(f"Unknown object class {cls!r}. Valid classes: {', '.join(CLASSES)}.")


def _rotate_z(points: np.ndarray, quarter_turns: int) -> np.ndarray:
    c, s = [(1, 0), (0, 1), (-1, 0), (0, -1)][quarter_turns % 4]
    return np.stack([c * points[..., 0] - s * points[..., 1], s * points[..., 0] + c * points[..., 1], points[..., 2]], -1)


# A cuboid's 6 faces as corner indices into itertools.product((lo, hi) per axis) order, wound outwards,
# with the face's outward normal.
_FACES = [((0, 1, 3, 2), (-1, 0, 0)), ((4, 6, 7, 5), (1, 0, 0)), ((0, 4, 5, 1), (0, -1, 0)),
          ((2, 3, 7, 6), (0, 1, 0)), ((0, 2, 6, 4), (0, 0, -1)), ((1, 5, 7, 3), (0, 0, 1))]


def _cuboid_triangles(lo: np.ndarray, hi: np.ndarray, skip_bottom: bool) -> Tuple[np.ndarray, np.ndarray]:
    """Triangles ``[T, 3, 3]`` and outward normals ``[T, 3]`` of an axis-aligned cuboid."""
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    tris, normals = [], []
    for (a, b, c, d), n in _FACES:
        if skip_bottom and n[2] == -1:
            continue  # a face resting on the floor is never seen (a scan would not have it)
        tris += [corners[[a, b, c]], corners[[a, c, d]]]
        normals += [n, n]
    return np.array(tris), np.array(normals, float)


def _quad(p0, p1, p2, p3, normal) -> Tuple[np.ndarray, np.ndarray]:
    p = np.array([p0, p1, p2, p3], float)
    return np.array([p[[0, 1, 2]], p[[0, 2, 3]]]), np.array([normal, normal], float)


def _place_objects(rng: np.random.Generator, size: np.ndarray, count: int, max_tries: int = 200):
    """Non-overlapping objects as ``(class id, quarter turns, translation, parts)``."""
    placed, footprints = [], []
    for _ in range(count):
        cls = int(rng.integers(len(CLASSES)))
        parts = _object_parts(CLASSES[cls], rng)
        lo = np.min([p.lo for p in parts], 0)
        hi = np.max([p.hi for p in parts], 0)
        for _ in range(max_tries):
            if CLASSES[cls] in _AGAINST_WALL:
                wall = int(rng.integers(4))  # 0: +y wall, 1: -x wall, 2: -y wall, 3: +x wall (back towards it)
                corners = _rotate_z(np.array([[lo[0], lo[1], 0], [hi[0], hi[1], 0]]), wall)
                flo, fhi = corners.min(0)[:2], corners.max(0)[:2]
                t = np.zeros(2)
                free = 0 if wall in (0, 2) else 1  # the axis along the wall
                t[free] = rng.uniform(0.05 - flo[free], size[free] - 0.05 - fhi[free])
                t[1 - free] = (size[1 - free] - 0.02 - fhi[1 - free]) if wall in (0, 3) else (0.02 - flo[1 - free])
                turns = wall
            else:
                turns = int(rng.integers(4))
                corners = _rotate_z(np.array([[lo[0], lo[1], 0], [hi[0], hi[1], 0]]), turns)
                flo, fhi = corners.min(0)[:2], corners.max(0)[:2]
                t = np.array([rng.uniform(0.1 - flo[i], size[i] - 0.1 - fhi[i]) for i in range(2)])
            a, b = flo + t, fhi + t
            if (a < 0).any() or (b > size[:2]).any():
                continue
            if all((a >= fb + 0.1).any() or (b <= fa - 0.1).any() for fa, fb in footprints):
                footprints.append((a, b))
                placed.append((cls, turns, np.array([t[0], t[1], 0.0]), parts))
                break
    return placed


def _look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """OpenCV camera-to-world pose (x right, y down, z forward) at ``eye`` looking at ``target``."""
    f = target - eye
    f = f / np.linalg.norm(f)
    r = np.cross(f, [0.0, 0.0, 1.0])
    r = r / np.linalg.norm(r)
    pose = np.eye(4)
    pose[:3, :3] = np.stack([r, np.cross(f, r), f], 1)
    pose[:3, 3] = eye
    return pose


def make_room(seed: int, num_points: int = 50_000, num_views: int = 4, min_objects: int = 4, max_objects: int = 10,
              width: int = 320, height: int = 240, fov_deg: float = 60.0, color_noise: float = 0.02,
              render: Optional[Sequence[int]] = None) -> Dict[str, object]:
    """One procedural room (see the module docstring for what it carries).

    Args:
        seed: the scene's seed; equal seeds give identical scenes.
        num_points: surface points sampled uniformly by area over floor, walls and objects.
        num_views: posed RGB-D views rendered by ray casting (0 for none; needs open3d).
        min_objects, max_objects: the number of objects requested is drawn from this range; an object
            that finds no free place after 200 tries is left out, so a small room may hold fewer.
        width, height: view size in pixels.
        fov_deg: horizontal field of view of the views' pinhole camera (square pixels, centred).
        color_noise: standard deviation of per-point colour noise (texture), 0 for flat colours.
        render: ray-cast only these of the ``num_views`` views (positions, repeats allowed), in this order; every
            view's pose is still drawn, so a view is the same whichever others are rendered. None: all of them.

    Returns:
        a dict with ``coord``, ``feat``, ``normal`` ``[N, 3]`` float32, ``semantic``, ``instance`` ``[N]``
        int64, ``boxes`` ``[K, 7]`` float32, ``box_instance`` ``[K]``, ``room_size`` ``[3]``, ``frames``
        (an :class:`RGBDSequence`) and ``name``.
    """
    with _one_blas_thread():
        return _make_room(seed, num_points, num_views, min_objects, max_objects, width, height, fov_deg, color_noise, render)


def _one_blas_thread():
    """NumPy's BLAS limited to one thread: a room multiplies small matrices (3x3 rotations of its rays, a light
    direction), which BLAS threads only slow down (20x on two busy cores); the results are the same."""
    import contextlib

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # an install without the scene extra
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def _make_room(seed, num_points, num_views, min_objects, max_objects, width, height, fov_deg, color_noise,
               render) -> Dict[str, object]:
    if render is not None and not all(0 <= int(i) < num_views for i in render):
        raise RoomsError(f"render={list(render)} must name views among the room's num_views={num_views}.")
    if num_points < 1:
        raise RoomsError(f"num_points must be >= 1, got {num_points}.")
    if not 0 <= min_objects <= max_objects:
        raise RoomsError(f"Need 0 <= min_objects <= max_objects, got {min_objects} and {max_objects}.")
    if num_views < 0 or width < 1 or height < 1 or not 0 < fov_deg < 180:
        raise RoomsError(f"Bad view settings: num_views={num_views}, {width}x{height}, fov {fov_deg} degrees.")
    rng = np.random.default_rng(seed)
    size = np.array([rng.uniform(4.0, 8.0), rng.uniform(4.0, 8.0), rng.uniform(2.6, 3.0)])
    floor_c = _hsv(rng, (0.05, 0.12), (0.2, 0.6), (0.35, 0.8))
    wall_c = _hsv(rng, (0.0, 1.0), (0.0, 0.25), (0.7, 0.95))
    L, W, H = size
    tris, normals, colors, semantic, instance = [], [], [], [], []

    def add(t, n, color, sem, inst):
        tris.append(t)
        normals.append(n)
        colors.append(np.repeat(color[None], len(t), 0))
        semantic.append(np.full(len(t), sem))
        instance.append(np.full(len(t), inst))

    add(*_quad((0, 0, 0), (L, 0, 0), (L, W, 0), (0, W, 0), (0, 0, 1)), floor_c, 0, 0)
    add(*_quad((0, 0, 0), (0, 0, H), (L, 0, H), (L, 0, 0), (0, 1, 0)), wall_c, 1, 0)  # y = 0 wall, facing +y
    add(*_quad((0, W, 0), (L, W, 0), (L, W, H), (0, W, H), (0, -1, 0)), wall_c, 1, 0)
    add(*_quad((0, 0, 0), (0, W, 0), (0, W, H), (0, 0, H), (1, 0, 0)), wall_c, 1, 0)
    add(*_quad((L, 0, 0), (L, 0, H), (L, W, H), (L, W, 0), (-1, 0, 0)), wall_c, 1, 0)

    objects = _place_objects(rng, size, int(rng.integers(min_objects, max_objects + 1)))
    boxes = []
    for k, (cls, turns, t, parts) in enumerate(objects, start=1):
        obj_tris = []
        for p in parts:
            pt, pn = _cuboid_triangles(p.lo, p.hi, skip_bottom=p.lo[2] < 1e-9)
            pt, pn = _rotate_z(pt, turns) + t, _rotate_z(pn, turns)
            add(pt, pn, p.color, 2 + cls, k)
            obj_tris.append(pt.reshape(-1, 3))
        v = np.concatenate(obj_tris)
        lo, hi = v.min(0), v.max(0)
        boxes.append(np.concatenate([(lo + hi) / 2, hi - lo, [cls]]))
    tris, normals = np.concatenate(tris), np.concatenate(normals)
    shade = 0.35 + 0.65 * np.abs(normals @ _LIGHT)
    colors = np.concatenate(colors) * shade[:, None]
    semantic, instance = np.concatenate(semantic), np.concatenate(instance)

    # Area-weighted triangle choice, uniform barycentric point in each.
    e1, e2 = tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0]
    area = 0.5 * np.linalg.norm(np.cross(e1, e2), axis=1)
    tri = rng.choice(len(tris), size=num_points, p=area / area.sum())
    u, v = rng.random(num_points), rng.random(num_points)
    flip = u + v > 1
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    coord = tris[tri, 0] + u[:, None] * e1[tri] + v[:, None] * e2[tri]
    rgb = np.clip(colors[tri] + color_noise * rng.standard_normal((num_points, 3)), 0, 1)

    box_arr = np.array(boxes, np.float32).reshape(-1, 7)
    frames = _render_views(rng, tris, colors, size, box_arr, num_views, width, height, fov_deg, render) if num_views else []
    t32 = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
    return {"coord": t32(coord), "feat": t32(rgb), "normal": t32(normals[tri]),
            "semantic": torch.from_numpy(semantic[tri].astype(np.int64)), "instance": torch.from_numpy(instance[tri].astype(np.int64)),
            "boxes": torch.from_numpy(box_arr), "box_instance": torch.arange(1, len(box_arr) + 1),
            "room_size": t32(size), "frames": RGBDSequence(frames, f"rooms-seed{seed}"), "name": f"rooms-seed{seed}"}


def _render_views(rng, tris, colors, size, boxes, num_views, width, height, fov_deg, render=None) -> List[RGBDFrame]:
    """Ray-cast RGB-D views from random eye points inside the room, each looking at an object. Every pose is drawn
    first (the random draws in the order they always had), then one ray cast serves the views in ``render`` (all
    when None), returned in that order."""
    from geossl.pointcloud.open3d_loader import import_open3d

    o3d = import_open3d()
    fx = width / 2 / np.tan(np.radians(fov_deg) / 2)
    K = np.array([[fx, 0, width / 2], [0, fx, height / 2], [0, 0, 1]])
    rays_cam = pixel_rays(torch.from_numpy(K), width, height).reshape(-1, 3).numpy()  # z = 1 through pixel centres
    poses = []
    for _ in range(num_views):
        for _ in range(100):  # an eye point outside every object's box (grown by 0.3 m)
            eye = np.array([rng.uniform(0.6, size[0] - 0.6), rng.uniform(0.6, size[1] - 0.6), rng.uniform(1.2, 1.7)])
            if not any((np.abs(eye - b[:3]) <= b[3:6] / 2 + 0.3).all() for b in boxes):
                break
        target = boxes[rng.integers(len(boxes)), :3].astype(float) if len(boxes) else size * np.array([0.5, 0.5, 0.3])
        target = target + rng.normal(0, 0.1, 3)
        if np.linalg.norm((target - eye)[:2]) < 0.3:  # nearly straight down: look across the room instead
            target = np.array([size[0] - eye[0], size[1] - eye[1], 0.8])
        poses.append(_look_at(eye, target))
    wanted = list(range(num_views)) if render is None else [int(i) for i in render]
    cast = sorted(set(wanted))
    rays = np.empty((len(cast), len(rays_cam), 6), np.float32)
    for i, view in enumerate(cast):
        rays[i, :, :3] = poses[view][:3, 3]
        rays[i, :, 3:] = rays_cam @ poses[view][:3, :3].T
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(tris.reshape(-1, 3).astype(np.float32)),
                        o3d.core.Tensor(np.arange(len(tris) * 3, dtype=np.uint32).reshape(-1, 3)))
    hit = scene.cast_rays(o3d.core.Tensor(rays.reshape(-1, 6)))
    t_hit = hit["t_hit"].numpy().reshape(len(cast), height, width)  # in units of the direction's length: the z depth
    prim = hit["primitive_ids"].numpy().reshape(len(cast), height, width)
    ok = np.isfinite(t_hit)
    depth = np.where(ok, t_hit, np.float32(0.0))
    rgb = colors.astype(np.float32)[np.where(ok, prim, 0)]  # one gather; rays that hit nothing are black
    rgb[~ok] = 0.0
    K32 = torch.from_numpy(K.astype(np.float32))
    frames = {view: RGBDFrame(torch.from_numpy(rgb[i]), torch.from_numpy(depth[i]), K32.clone(),
                              torch.from_numpy(poses[view].astype(np.float32)), f"view{view:03d}") for i, view in enumerate(cast)}
    return [frames[view] for view in wanted]


# --- on-disk cache -----------------------------------------------------------------------------------------

#: Integer per-point arrays are kept as int32 on disk (exact for their ranges) and read back as int64.
_INT_KEYS = ("semantic", "instance", "box_instance")
_FLOAT_KEYS = ("coord", "feat", "normal", "boxes", "room_size")
_VIEW_KEYS = ("color", "depth", "K", "cam_to_world")
#: make_room's settings (its keyword arguments) and their defaults.
ROOM_SETTINGS = {k: p.default for k, p in inspect.signature(make_room).parameters.items() if k not in ("seed", "render")}


def room_cache_folder(**settings) -> Path:
    """The folder that keeps rooms made with ``settings`` (:func:`make_room`'s keyword arguments):
    ``<cache>/datasets/rooms/<key>``, where ``key`` hashes the settings and this module's source, so a room made by
    other settings or by an edited generator is never served from the cache."""
    import hashlib
    import json

    from geossl.data import cache_root

    h = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    h.update(_generator_digest())
    return cache_root() / "datasets" / "rooms" / h.hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def _generator_digest() -> bytes:
    """SHA-256 of this module's source, read once per process (every cached room's key includes it)."""
    import hashlib

    return hashlib.sha256(Path(__file__).read_bytes()).digest()


def cached_room(seed: int, **settings) -> Dict[str, object]:
    """:func:`make_room` ``(seed, **settings)``, kept on disk after the first call (:func:`room_cache_folder`,
    one safetensors file per room) and read back from there later: equal, tensor for tensor, to a freshly made room.

    Making a room with views is mostly ray casting (about 0.13 s a room with four 320x240 views on one core); a
    training run that passes over the same rooms every epoch, or several runs over the same split, make each once.
    A cache file that cannot be read, or does not hold a room of these settings and this seed (a truncated or
    foreign file), is made again and replaced: the cache only holds what this function wrote. Files are written
    atomically, so concurrent runs may share a cache. About 2.2 MB a room of 50,000 points, plus 1.2 MB a
    320x240 view.

    Args:
        seed: the room's seed.
        settings: :func:`make_room`'s other keyword arguments (its defaults where left out).
    """
    unknown = set(settings) - set(ROOM_SETTINGS)
    if unknown:
        raise RoomsError(f"Unknown room settings {sorted(unknown)}. Valid: {', '.join(ROOM_SETTINGS)}.")
    settings = {**ROOM_SETTINGS, **settings}
    path = room_cache_folder(**settings) / f"{int(seed)}.safetensors"
    room = _read_cached_room(path, int(seed), settings)
    if room is None:
        room = make_room(int(seed), **settings)
        _write_cached_room(path, room)
    return room


def _write_cached_room(path, room: Dict[str, object]) -> None:
    from safetensors.torch import save_file

    from geossl.io import atomic_write

    tensors = {k: room[k].contiguous() for k in _FLOAT_KEYS}
    tensors.update({k: room[k].to(torch.int32).contiguous() for k in _INT_KEYS})
    frames = room["frames"].frames
    for k in _VIEW_KEYS:
        if frames:
            tensors[f"views.{k}"] = torch.stack([getattr(f, k) for f in frames]).contiguous()
    views = ",".join(f.name for f in frames)
    meta = {"name": room["name"], "views": views, "blake2b": _digest(tensors, views)}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def _digest(tensors: Dict[str, torch.Tensor], views: str) -> str:
    """A BLAKE2b digest of the tensors' names, shapes and bytes and of the views' names (``views``, as the metadata
    holds them): a cache file whose data changed after it was written (a flipped bit, a file of another room pasted
    in) does not match its digest."""
    import hashlib

    h = hashlib.blake2b(digest_size=16)
    h.update(f"views:{views}\n".encode())
    for k in sorted(tensors):
        h.update(f"{k}:{str(tensors[k].dtype)}:{tuple(tensors[k].shape)}".encode())
        h.update(tensors[k].contiguous().view(torch.uint8).numpy().tobytes() if tensors[k].numel() else b"")
    return h.hexdigest()


def _read_cached_room(path, seed: int, settings: Dict[str, object]):
    """The room in the cache file ``path``, or None when there is none or it is not a room of ``seed`` made with
    ``settings`` (wrong tensors, shapes or dtypes, data that does not match the digest written with it, a bad or
    truncated file). Reads nothing larger than such a room."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    n, v, w, h = settings["num_points"], settings["num_views"], settings["width"], settings["height"]
    expected = {"coord": (n, 3), "feat": (n, 3), "normal": (n, 3), "semantic": (n,), "instance": (n,), "room_size": (3,)}
    if v:
        expected.update({"views.color": (v, h, w, 3), "views.depth": (v, h, w), "views.K": (v, 3, 3),
                         "views.cam_to_world": (v, 4, 4)})
    k_max = settings["max_objects"]
    limit = 4 * (sum(int(np.prod(s)) for s in expected.values()) + 8 * k_max) + (1 << 16)
    try:
        if not path.is_file() or path.stat().st_size > limit:
            return None
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (OSError, SafetensorError, ValueError, RuntimeError):
        return None
    if meta.get("name") != f"rooms-seed{seed}" or meta.get("blake2b") != _digest(tensors, meta.get("views", "")):
        return None
    for key, shape in expected.items():
        t = tensors.get(key)
        want = torch.int32 if key in _INT_KEYS else torch.float32
        if t is None or tuple(t.shape) != shape or t.dtype != want:
            return None
    boxes, box_instance = tensors.get("boxes"), tensors.get("box_instance")
    if boxes is None or box_instance is None or boxes.dtype != torch.float32 or box_instance.dtype != torch.int32 or \
            boxes.ndim != 2 or boxes.shape[1] != 7 or tuple(box_instance.shape) != (len(boxes),) or len(boxes) > k_max:
        return None
    names = meta.get("views", "").split(",") if v else []
    if len(names) != v:
        return None
    frames = [RGBDFrame(tensors["views.color"][i], tensors["views.depth"][i], tensors["views.K"][i],
                        tensors["views.cam_to_world"][i], names[i]) for i in range(v)]
    room = {k: tensors[k] for k in _FLOAT_KEYS}
    room.update({k: tensors[k].long() for k in _INT_KEYS})
    room.update({"frames": RGBDSequence(frames, f"rooms-seed{seed}"), "name": f"rooms-seed{seed}"})
    return room

