"""Gaussian sets as PLY files in the layout of the original 3DGS code, which standard viewers read
(SuperSplat, the SIBR viewer, gsplat's viewer): one binary ``vertex`` element with
``x y z nx ny nz f_dc_0..2 f_rest_0..M opacity scale_0..2 rot_0..3``; ``f_rest`` is channel-major
(all red coefficients, then green, then blue), ``opacity`` a logit, ``scale_*`` logs, ``rot_*`` wxyz.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from geossl.gaussians.model import GaussianSet, GaussianSetError
from geossl.io import atomic_write, ply_header_problem

_BASE = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
_TAIL = ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]


def save_ply(gaussians: GaussianSet, path: str | os.PathLike):
    """Write ``gaussians`` to ``path`` atomically (a temporary file, then a rename)."""
    from plyfile import PlyData, PlyElement

    g = gaussians
    n, rest = len(g), g.sh_rest.shape[1]
    rest_names = [f"f_rest_{i}" for i in range(3 * rest)]
    cols = [g.means.detach(), torch.zeros(n, 3), g.sh_dc.detach()[:, 0],
            g.sh_rest.detach().transpose(1, 2).reshape(n, -1), g.opacity_logits.detach()[:, None],
            g.log_scales.detach(), g.quats.detach()]
    data = torch.cat([c.float().cpu() for c in cols], 1).numpy()
    names = _BASE + rest_names + _TAIL
    arr = np.empty(n, dtype=[(k, "f4") for k in names])
    for i, k in enumerate(names):
        arr[k] = data[:, i]
    return atomic_write(path, lambda tmp: PlyData([PlyElement.describe(arr, "vertex")], byte_order="<").write(tmp))


def load_ply(path: str | os.PathLike) -> GaussianSet:
    """Read a 3DGS PLY (as written by ``save_ply`` or the original code); a PLY without the 3DGS
    properties (e.g. a plain point cloud) is refused, naming what is missing."""
    from plyfile import PlyData

    problem = ply_header_problem(path) if Path(path).is_file() else "no such file"
    if problem:
        raise GaussianSetError(f"{path} is not a readable PLY file: {problem}.")
    try:
        ply = PlyData.read(str(path))
    except Exception as e:  # plyfile raises several kinds on malformed files
        raise GaussianSetError(f"{path} is not a readable PLY file: {type(e).__name__}: {e}") from None
    if "vertex" not in [el.name for el in ply.elements]:
        raise GaussianSetError(f"{path} has no 'vertex' element: not a Gaussian splat PLY.")
    v = ply["vertex"]
    props = [p.name for p in v.properties]
    missing = [k for k in ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2"] + _TAIL if k not in props]
    if missing:
        raise GaussianSetError(f"{path} lacks the 3DGS properties {missing}: it is not a Gaussian splat PLY "
                               "(a plain point cloud?).")
    rest = [p for p in props if p.startswith("f_rest_")]
    if rest != [f"f_rest_{i}" for i in range(len(rest))]:
        rest = sorted(rest, key=lambda s: int(s[7:]) if s[7:].isdigit() else -1)
        if rest != [f"f_rest_{i}" for i in range(len(rest))]:
            raise GaussianSetError(f"{path}: the f_rest properties must be f_rest_0 to f_rest_{len(rest) - 1}.")
    k = len(rest) // 3 + 1
    degree = int(round(math.sqrt(k))) - 1
    if (degree + 1) ** 2 != k or len(rest) % 3:
        raise GaussianSetError(f"{path} has {len(rest)} f_rest properties, which is no SH degree's count (0, 9, 24, 45).")

    def col(names):
        try:
            return torch.from_numpy(np.stack([np.asarray(v[nm], dtype=np.float32) for nm in names], 1))
        except (TypeError, ValueError) as e:  # a list property where a number belongs, say
            raise GaussianSetError(f"{path}: properties {names} are not numbers ({e}).") from None

    n = len(v.data)
    sh_rest = col(rest).reshape(n, 3, k - 1).transpose(1, 2) if rest else torch.zeros(n, 0, 3)
    return GaussianSet(col(["x", "y", "z"]), col(["scale_0", "scale_1", "scale_2"]), col(["rot_0", "rot_1", "rot_2", "rot_3"]),
                       col(["opacity"])[:, 0], col(["f_dc_0", "f_dc_1", "f_dc_2"])[:, None], sh_rest, sh_degree=degree)
