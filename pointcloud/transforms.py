"""Scene transforms in the Pointcept style: composable callables on a scene dict, each drawing its
randomness from the ``torch.Generator`` it is given (so an item's augmentation depends only on its seed).

A scene dict holds ``coord [N, 3]``, ``feat [N, C]`` (rgb in [0, 1] first) and optionally per-point
``labels``, ``normal``, ``instance``; per-scene ``boxes`` ``[K, 7]`` (centre, size, class; axis-aligned)
or ``[K, 8]`` (centre, size, yaw, class); and ``views``, a list of posed
:class:`~geossl.frames.RGBDFrame`. Boxes and cameras move with the points: a rotation turns the
cameras and the boxes (axis-aligned boxes become the axis-aligned box around the turned box), a flip
mirrors the cameras' images, a scaling scales the camera positions and the depth maps, so that every
point still projects to the pixel that sees it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List

import torch
from torch import Tensor

from geossl.errors import ConfigError
from geossl.frames import RGBDFrame
from geossl.ops.camera import invert_pose, project_points

Scene = Dict[str, Any]
#: Per-point entries that every point-selecting transform keeps in step with ``coord``.
POINT_KEYS = ("coord", "feat", "labels", "normal", "instance")


def select_points(scene: Scene, idx: Tensor) -> Scene:
    """The scene with only the points ``idx`` (every per-point entry)."""
    out = dict(scene)
    for k in POINT_KEYS:
        if k in out and out[k] is not None:
            out[k] = out[k][idx]
    return out


def _uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g))


def _centre(scene: Scene) -> Tensor:
    """The axis-aligned bounding-box centre of the points (rotations and flips turn about it, in x and y)."""
    c = (scene["coord"].amin(0) + scene["coord"].amax(0)) / 2
    c[2] = 0.0
    return c


def _move_cameras(scene: Scene, fn: Callable[[RGBDFrame], RGBDFrame]) -> None:
    if scene.get("views"):
        scene["views"] = [fn(f) for f in scene["views"]]


def rigid(scene: Scene, R: Tensor, t: Tensor) -> Scene:
    """``x -> R x + t`` for a rotation ``R`` ``[3, 3]`` about z and a translation ``t`` ``[3]``, applied to points,
    normals, boxes (yaw boxes turn; axis-aligned boxes become the axis-aligned box around the turned box) and
    camera poses."""
    out = dict(scene)
    out["coord"] = scene["coord"] @ R.T + t
    if scene.get("normal") is not None:
        out["normal"] = scene["normal"] @ R.T
    if scene.get("boxes") is not None and len(scene["boxes"]):
        b = scene["boxes"].clone()
        b[:, :3] = b[:, :3] @ R.T + t
        if b.shape[1] == 8:
            b[:, 6] = b[:, 6] + math.atan2(float(R[1, 0]), float(R[0, 0]))
        else:
            b[:, 3:5] = b[:, 3:5] @ R[:2, :2].abs().T  # the enclosing axis-aligned box
        out["boxes"] = b
    T = torch.eye(4)
    T[:3, :3], T[:3, 3] = R, t
    _move_cameras(out, lambda f: RGBDFrame(f.color, f.depth, f.K, T @ f.cam_to_world, f.name))
    return out


@dataclass
class CenterShift:
    """Translate the scene so that its bounding box is centred on x = y = 0 and its lowest point is at
    z = 0 (positions that a position embedding sees in the same range for every scene)."""

    def __call__(self, scene: Scene, g: torch.Generator) -> Scene:
        c = _centre(scene)
        c[2] = scene["coord"][:, 2].min()
        return rigid(scene, torch.eye(3), -c)


def grid_cells(coord: Tensor, voxel: float):
    """``(kept [M], cell [N])``: the first point (lowest index) of every occupied cell of a ``voxel``-metre grid, in
    index order (the points ``GridSample(voxel, random=False)`` keeps), and for every point the position in ``kept``
    of its cell's point (so a prediction for the kept points reaches every point: ``pred[cell]``)."""
    _, inverse = torch.unique(torch.floor(coord / voxel).long(), dim=0, return_inverse=True)
    first = torch.full((int(inverse.max()) + 1,), len(coord), dtype=torch.long).scatter_reduce(
        0, inverse, torch.arange(len(coord)), reduce="amin")
    kept, order = torch.sort(first)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order))
    return kept, rank[inverse]


@dataclass
class GridSample:
    """Keep one point per occupied cell of a ``voxel``-metre grid: a random one (``random``, for
    training) or the first one (deterministic, for evaluation)."""

    voxel: float
    random: bool = True

    def __call__(self, scene: Scene, g: torch.Generator) -> Scene:
        if not self.voxel > 0:
            return scene
        cells = torch.floor(scene["coord"] / self.voxel).long()
        cells -= cells.min(0).values
        span = cells.max(0).values + 1
        key = (cells[:, 0] * span[1] + cells[:, 1]) * span[2] + cells[:, 2]  # one integer per cell
        if self.random:  # a random point of each cell comes first among its cell's points
            perm = torch.randperm(len(key), generator=g)
            order = perm[torch.argsort(key[perm], stable=True)]
        else:  # the first point of each cell
            order = torch.argsort(key, stable=True)
        sorted_key = key[order]
        first = torch.ones(len(order), dtype=torch.bool)
        first[1:] = sorted_key[1:] != sorted_key[:-1]
        return select_points(scene, torch.sort(order[first]).values)


def points_seen(scene: Scene, view: RGBDFrame, tolerance: float = 0.05) -> Tensor:
    """Indices of the scene's points that ``view`` sees: in front of it, inside its image, and within ``tolerance``
    metres (plus 2% of the distance) of its depth at their pixel (so not hidden behind another surface)."""
    uv, z = project_points(scene["coord"], invert_pose(view.cam_to_world.to(scene["coord"].dtype)), view.K.to(scene["coord"].dtype))
    W, H = view.size
    col, row = uv[:, 0].floor().long(), uv[:, 1].floor().long()
    inside = (z > 0) & (col >= 0) & (col < W) & (row >= 0) & (row < H)
    idx = inside.nonzero().view(-1)
    depth = view.depth[row[idx], col[idx]].to(z.dtype)
    return idx[(depth > 0) & ((z[idx] - depth).abs() <= tolerance + 0.02 * depth)]


@dataclass
class PointBudget:
    """At most ``points`` points: the ``points`` nearest to a random point of the scene (``crop``, a
    sphere crop), the same around a random point that the scene's last view sees (``view_crop``: a crop that
    view shows, for methods that render it; a random point of the scene if it sees none) or a random subset
    (``subsample``). Scenes with fewer points keep them all."""

    points: int
    mode: str = "crop"

    def __post_init__(self):
        if self.mode not in ("crop", "view_crop", "subsample"):
            raise ConfigError(f"Unknown point budget mode {self.mode!r}. Valid choices: crop, view_crop, subsample.")
        if self.points < 1:
            raise ConfigError(f"transform.points must be >= 1, got {self.points}.")

    def __call__(self, scene: Scene, g: torch.Generator) -> Scene:
        n = len(scene["coord"])
        if n <= self.points:
            return scene
        if self.mode == "subsample":
            idx = torch.randperm(n, generator=g)[: self.points]
        else:
            seen = points_seen(scene, scene["views"][-1]) if self.mode == "view_crop" and scene.get("views") else None
            pool = seen if seen is not None and len(seen) else torch.arange(n)
            centre = scene["coord"][int(pool[int(torch.randint(len(pool), (1,), generator=g))])]
            idx = (scene["coord"] - centre).pow(2).sum(1).topk(self.points, largest=False).indices
        return select_points(scene, torch.sort(idx).values)


@dataclass
class RotateZ:
    """Turn the scene about the vertical axis through its centre by a random angle in ``[-degrees, degrees]``."""

    degrees: float = 180.0

    def __call__(self, scene: Scene, g: torch.Generator) -> Scene:
        a = math.radians(_uniform(g, -self.degrees, self.degrees))
        R = torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0], [0.0, 0.0, 1.0]])
        c = _centre(scene)
        return rigid(scene, R, c - R @ c)


def _mirror_frame(f: RGBDFrame, F: Tensor) -> RGBDFrame:
    """The camera of a world mirrored by ``F`` (4x4, det -1): its image is flipped left-right and its
    camera x axis mirrored, so the pose stays a rotation and every point keeps its pixel."""
    D = torch.diag(torch.tensor([-1.0, 1.0, 1.0, 1.0]))
    K = f.K.clone()
    K[0, 2] = f.color.shape[1] - K[0, 2]
    return RGBDFrame(f.color.flip(1), f.depth.flip(1), K, F @ f.cam_to_world @ D, f.name)


@dataclass
class Flip:
    """Mirror the scene in x and in y (about its centre), each with probability ``p``."""

    p: float = 0.5

    def __call__(self, scene: Scene, g: torch.Generator) -> Scene:
        out = scene
        for axis in (0, 1):
            if float(torch.rand((), generator=g)) >= self.p:
                continue
            c = float(_centre(out)[axis])
            out = dict(out)
            out["coord"] = out["coord"].clone()
            out["coord"][:, axis] = 2 * c - out["coord"][:, axis]
            if out.get("normal") is not None:
                out["normal"] = out["normal"].clone()
                out["normal"][:, axis] = -out["normal"][:, axis]
            if out.get("boxes") is not None and len(out["boxes"]):
                b = out["boxes"].clone()
                b[:, axis] = 2 * c - b[:, axis]
                if b.shape[1] == 8:
                    b[:, 6] = (math.pi - b[:, 6]) if axis == 0 else -b[:, 6]
                out["boxes"] = b
            F = torch.eye(4)
            F[axis, axis], F[axis, 3] = -1.0, 2 * c
            _move_cameras(out, lambda f: _mirror_frame(f, F))
        return out


@dataclass
class Scale:
    """Scale the scene about its centre by a random factor in ``[low, high]`` (depth maps and camera
    positions too)."""

    low: float = 0.9
    high: float = 1.1

    def __call__(self, scene: Scene, g: torch.Generator) -> Scene:
        s = _uniform(g, self.low, self.high)
        c = _centre(scene)
        out = dict(scene)
        out["coord"] = (scene["coord"] - c) * s + c
        if scene.get("boxes") is not None and len(scene["boxes"]):
            b = scene["boxes"].clone()
            b[:, :3] = (b[:, :3] - c) * s + c
            b[:, 3:6] = b[:, 3:6] * s
            out["boxes"] = b

        def scale_frame(f: RGBDFrame) -> RGBDFrame:
            pose = f.cam_to_world.clone()
            pose[:3, 3] = (pose[:3, 3] - c) * s + c
            return RGBDFrame(f.color, f.depth * s, f.K, pose, f.name)

        _move_cameras(out, scale_frame)
        return out


@dataclass
class ColorJitter:
    """Add Gaussian noise of standard deviation ``std`` to the point colours (``feat[:, :3]``), clamped to [0, 1].
    The views' images are targets, not inputs, and keep their colours."""

    std: float = 0.05

    def __call__(self, scene: Scene, g: torch.Generator) -> Scene:
        if self.std <= 0:
            return scene
        out = dict(scene)
        feat = scene["feat"].clone()
        feat[:, :3] = (feat[:, :3] + self.std * torch.randn(feat[:, :3].shape, generator=g)).clamp(0, 1)
        out["feat"] = feat
        return out


@dataclass
class Compose:
    """The transforms in order."""

    transforms: List[Callable[[Scene, torch.Generator], Scene]] = field(default_factory=list)

    def __call__(self, scene: Scene, g: torch.Generator) -> Scene:
        for t in self.transforms:
            scene = t(scene, g)
        return scene


@dataclass
class TransformConfig:
    """The ``transform`` section of a scene run: what every training item goes through (evaluation
    items get only the centring, the grid sampling and the point budget, with their fixed seeds).

    Attributes:
        voxel: grid-sampling cell in metres (0: off).
        points: the point budget per scene (a crop around a random point, or a subsample).
        budget: "crop", "view_crop" (a crop around a point that the last view sees) or "subsample".
        rotate: random rotation about z in [-rotate, rotate] degrees (0: off).
        flip: probability of a mirror in x and, independently, in y.
        scale: [low, high] of the random scaling ([1, 1]: off).
        jitter: standard deviation of the colour noise.
    """

    voxel: float = 0.05
    points: int = 2048
    budget: str = "crop"
    rotate: float = 180.0
    flip: float = 0.5
    scale: List[float] = field(default_factory=lambda: [0.9, 1.1])
    jitter: float = 0.02

    def __post_init__(self):
        if self.voxel < 0 or self.points < 1 or not 0 <= self.flip <= 1 or self.jitter < 0:
            raise ConfigError(f"Bad transform settings: voxel={self.voxel} (>= 0), points={self.points} (>= 1), "
                              f"flip={self.flip} (in [0, 1]), jitter={self.jitter} (>= 0).")
        if len(self.scale) != 2 or not 0 < self.scale[0] <= self.scale[1]:
            raise ConfigError(f"transform.scale must be [low, high] with 0 < low <= high, got {list(self.scale)}.")
        PointBudget(self.points, self.budget)  # checks the mode

    def train(self) -> Compose:
        return Compose([CenterShift(), GridSample(self.voxel, random=True), PointBudget(self.points, self.budget),
                        RotateZ(self.rotate), Flip(self.flip), Scale(*self.scale), ColorJitter(self.jitter)])

    def eval(self) -> Compose:
        """Evaluation items: centred, grid-sampled (first point per cell) and cut to the budget as in training
        (so the point density matches), around a point drawn from the item's fixed seed."""
        return Compose([CenterShift(), GridSample(self.voxel, random=False), PointBudget(self.points, self.budget)])
