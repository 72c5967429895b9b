"""Point-cloud geometry in plain PyTorch, memory-bounded by chunking: k nearest neighbours,
farthest-point sampling, and the Chamfer distance (differentiable).

pytorch3d has no wheel for these machines (ANCHORS), so these are our own; each is tested against
a brute-force evaluation.
"""

from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor

from geossl.errors import GeosslError


class GeometryError(GeosslError, ValueError):
    """Point sets these functions cannot work on (empty, NaN, too few points)."""


def _check(name: str, points: Tensor) -> None:
    if points.dim() != 2 or points.shape[1] != 3:
        raise GeometryError(f"{name} must be [N, 3], got {list(points.shape)}.")
    if len(points) == 0:
        raise GeometryError(f"{name} is empty.")
    if not torch.isfinite(points).all():
        raise GeometryError(f"{name} contains NaN or inf coordinates.")


def knn(query: Tensor, points: Tensor, k: int, chunk: int = 4096) -> Tuple[Tensor, Tensor]:
    """The ``k`` nearest ``points`` ``[N, 3]`` of every ``query`` ``[M, 3]``: ``(squared distances
    [M, k], indices [M, k])``, nearest first; ``chunk`` query rows at a time (memory chunk x N)."""
    _check("query", query)
    _check("points", points)
    if k > len(points):
        raise GeometryError(f"k = {k} neighbours asked of {len(points)} points.")
    dists, idx = [], []
    for s in range(0, len(query), chunk):
        d = torch.cdist(query[s:s + chunk], points).pow(2)
        top = d.topk(k, dim=1, largest=False)
        dists.append(top.values)
        idx.append(top.indices)
    return torch.cat(dists), torch.cat(idx)


def farthest_point_sampling(points: Tensor, n: int, start: int = 0) -> Tensor:
    """Indices ``[n]`` of ``n`` points chosen greedily, each the farthest from those already
    chosen (starting at index ``start``). O(n N) time, O(N) memory."""
    _check("points", points)
    if n > len(points):
        raise GeometryError(f"cannot sample {n} points from {len(points)}.")
    chosen = torch.empty(n, dtype=torch.long, device=points.device)
    nearest = torch.full((len(points),), float("inf"), device=points.device, dtype=points.dtype)
    current = start
    with torch.no_grad():
        for i in range(n):
            chosen[i] = current
            nearest = torch.minimum(nearest, (points - points[current]).pow(2).sum(1))
            current = int(nearest.argmax())
    return chosen


def _nearest_index(a: Tensor, b: Tensor, chunk: int) -> Tensor:
    with torch.no_grad():
        return torch.cat([torch.cdist(a[s:s + chunk], b).argmin(1) for s in range(0, len(a), chunk)])


def chamfer_distance(a: Tensor, b: Tensor, chunk: int = 2048) -> Tensor:
    """Symmetric Chamfer distance ``mean_a min_b |a - b|^2 + mean_b min_a |a - b|^2``.

    The nearest neighbours are found without gradients ``chunk`` rows at a time (memory chunk x
    len(other)); the distances to them are then recomputed with gradients, so the backward pass
    holds only ``O(len(a) + len(b))``. Differentiable in both ``a`` and ``b``.
    """
    _check("a", a)
    _check("b", b)
    ab = _nearest_index(a, b, chunk)
    ba = _nearest_index(b, a, chunk)
    return (a - b[ab]).pow(2).sum(1).mean() + (b - a[ba]).pow(2).sum(1).mean()
