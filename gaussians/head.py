"""Per-point 3D Gaussians predicted from per-point features: the Gaussian head of Gaussian2Scene's second stage
(Liu et al., arXiv 2506.08777, which predicts Gaussians from the encoder's features and supervises them by
rendering), parameterised as UniPre3D does (Wang et al., "UniPre3D: Unified Pre-training of 3D Point Cloud Models
with Cross-Modal Gaussian Splatting", CVPR 2025, ``model/gaussian_predictor.py``), the nearest open relative:

* position ``point + offset_scale * tanh(raw)`` (each Gaussian stays near the point that predicts it),
* scale ``exp(clamp(raw + log(scale_init), log(min_scale), log(max_scale)))`` per axis (UniPre3D clamps the
  exponent too; the ``scale_init`` bias and the bounds put scales in metres, where UniPre3D's are in normalised
  units),
* rotation ``normalize(raw + (1, 0, 0, 0))`` (wxyz; the bias starts every Gaussian unrotated),
* opacity ``sigmoid(raw)``, colour ``sigmoid(raw + logit(base))`` RGB in [0, 1] (what ``rasterize_gaussians``
  takes as ``colors`` without SH; UniPre3D's SH DC term with degree 0 renders the same view-independent colour).
  ``base`` is the point's own colour where it is known (the head then starts from it and learns a correction, as
  the position starts from the point; geossl's choice) and grey (0.5) where it is not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geossl.errors import ConfigError


@dataclass
class PointGaussians:
    """Activated Gaussians, one per point: ``means [N, 3]``, ``quats [N, 4]`` (wxyz, unit), ``scales [N, 3]``,
    ``opacities [N]``, ``colors [N, 3]`` RGB: the arguments of :func:`geossl.ops.rasterize_gaussians`."""

    means: Tensor
    quats: Tensor
    scales: Tensor
    opacities: Tensor
    colors: Tensor

    def __getitem__(self, index) -> "PointGaussians":
        return PointGaussians(self.means[index], self.quats[index], self.scales[index], self.opacities[index], self.colors[index])

    def is_finite(self) -> bool:
        return all(bool(torch.isfinite(t).all()) for t in (self.means, self.quats, self.scales, self.opacities, self.colors))


def stack_gaussians(scenes: List[PointGaussians]) -> PointGaussians:
    """One batched set ``[B, N_max, ...]`` from per-scene sets, for one batched ``rasterize_gaussians`` call: scenes
    with fewer Gaussians are padded with copies of their first Gaussian at opacity 0, which renders nothing (every
    scene needs at least one Gaussian)."""
    if not scenes or min(len(g.means) for g in scenes) == 0:
        raise ValueError("stack_gaussians needs at least one scene, each with at least one Gaussian.")
    n = max(len(g.means) for g in scenes)
    fields = []
    for name in ("means", "quats", "scales", "opacities", "colors"):
        rows = []
        for g in scenes:
            t = getattr(g, name)
            pad = t[:1].detach().expand(n - len(t), *t.shape[1:])
            rows.append(torch.cat([t, torch.zeros_like(pad) if name == "opacities" else pad]))
        fields.append(torch.stack(rows))
    return PointGaussians(*fields)


class GaussianHead(nn.Module):
    """An MLP from per-point features to one Gaussian per point (see the module docstring for the activations).

    Args:
        in_dim: per-point feature width.
        hidden: the MLP's hidden width.
        offset_scale: the largest distance (metres, per axis) of a Gaussian's centre from its point (UniPre3D: 0.2
            in normalised units).
        scale_init: the scale (metres) of a Gaussian whose raw scale is 0.
        min_scale, max_scale: bounds of the scales (metres).
    """

    def __init__(self, in_dim: int, hidden: int = 128, offset_scale: float = 0.1, scale_init: float = 0.02,
                 min_scale: float = 1e-3, max_scale: float = 0.5):
        super().__init__()
        if in_dim < 1 or hidden < 1 or offset_scale < 0 or not 0 < min_scale <= scale_init <= max_scale:
            raise ConfigError(f"GaussianHead needs in_dim, hidden >= 1, offset_scale >= 0 and 0 < min_scale <= scale_init <= "
                              f"max_scale; got {in_dim}, {hidden}, {offset_scale}, {min_scale}, {scale_init}, {max_scale}.")
        self.offset_scale, self.scale_init, self.min_scale, self.max_scale = offset_scale, scale_init, min_scale, max_scale
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, 3 + 3 + 4 + 1 + 3))
        nn.init.zeros_(self.mlp[-1].weight)  # the first prediction: at the points, scale_init, unrotated, half opaque, grey
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, points: Tensor, features: Tensor, base_colors: Optional[Tensor] = None) -> PointGaussians:
        """Gaussians of ``points`` ``[N, 3]`` from their ``features`` ``[N, in_dim]``; ``base_colors`` ``[N, 3]`` in
        [0, 1] are the colours the Gaussians start from (default grey)."""
        raw = self.mlp(features)
        offset, scale, rotation, opacity, colour = raw.split([3, 3, 4, 1, 3], dim=-1)
        if base_colors is not None:
            colour = colour + torch.logit(base_colors.clamp(0.01, 0.99))
        log_scale = (scale + math.log(self.scale_init)).clamp(math.log(self.min_scale), math.log(self.max_scale))
        identity = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=raw.dtype, device=raw.device)
        return PointGaussians(means=points + self.offset_scale * torch.tanh(offset), quats=F.normalize(rotation + identity, dim=-1),
                              scales=log_scale.exp(), opacities=torch.sigmoid(opacity.squeeze(-1)), colors=torch.sigmoid(colour))
