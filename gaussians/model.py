"""A set of 3D Gaussians with the parameterisation of 3D Gaussian Splatting (Kerbl et al., SIGGRAPH
2023): raw parameters are optimised, activations give what the rasterizer takes.

* position ``means`` (as is), scale ``exp(log_scales)`` (per-axis standard deviation),
  rotation ``normalize(quats)`` (wxyz), opacity ``sigmoid(opacity_logits)``,
* colour as spherical-harmonic coefficients: ``sh_dc`` ``[N, 1, 3]`` and ``sh_rest``
  ``[N, (degree + 1)^2 - 1, 3]``; the rendered colour is ``max(SH(view dir) + 0.5, 0)``.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from geossl.errors import GeosslError
from geossl.ops.geometry import knn as nearest
from geossl.ops.rasterize import SH_C0, rasterize_gaussians


class GaussianSetError(GeosslError, ValueError):
    """Gaussians that cannot be built or read (an empty cloud, mismatched arrays, a foreign PLY)."""


def rgb_to_sh_dc(rgb: Tensor) -> Tensor:
    """The degree-0 SH coefficient whose rendered colour is ``rgb`` (``(rgb - 0.5) / C0``)."""
    return (rgb - 0.5) / SH_C0


class GaussianSet(nn.Module):
    """``N`` Gaussians; see the module docstring for the parameterisation.

    Args:
        means ``[N, 3]``, log_scales ``[N, 3]``, quats ``[N, 4]``, opacity_logits ``[N]``,
        sh_dc ``[N, 1, 3]``, sh_rest ``[N, K - 1, 3]``: the raw parameters.
        sh_degree: the SH degree the coefficients hold (0-3).
    """

    def __init__(self, means: Tensor, log_scales: Tensor, quats: Tensor, opacity_logits: Tensor, sh_dc: Tensor,
                 sh_rest: Optional[Tensor] = None, sh_degree: int = 0):
        super().__init__()
        n = means.shape[0]
        if sh_rest is None:
            sh_rest = means.new_zeros(n, (sh_degree + 1) ** 2 - 1, 3)
        shapes = {"log_scales": (log_scales, (n, 3)), "quats": (quats, (n, 4)), "opacity_logits": (opacity_logits, (n,)),
                  "sh_dc": (sh_dc, (n, 1, 3)), "sh_rest": (sh_rest, (n, (sh_degree + 1) ** 2 - 1, 3))}
        for name, (t, shape) in shapes.items():
            if tuple(t.shape) != shape:
                raise GaussianSetError(f"{name} has shape {list(t.shape)}; {n} Gaussians of SH degree {sh_degree} need {list(shape)}.")
        self.sh_degree = sh_degree
        self.means = nn.Parameter(means.float().contiguous())
        self.log_scales = nn.Parameter(log_scales.float().contiguous())
        self.quats = nn.Parameter(quats.float().contiguous())
        self.opacity_logits = nn.Parameter(opacity_logits.float().contiguous())
        self.sh_dc = nn.Parameter(sh_dc.float().contiguous())
        self.sh_rest = nn.Parameter(sh_rest.float().contiguous())

    @classmethod
    def from_points(cls, points: Tensor, colors: Tensor, sh_degree: int = 0, opacity: float = 0.1,
                    knn: int = 3) -> "GaussianSet":
        """One isotropic Gaussian per point: scale = RMS distance to the ``knn`` nearest points,
        colour ``colors`` ``[N, 3]`` in [0, 1] as the SH DC term, the given opacity, identity rotation."""
        if len(points) < 2:
            raise GaussianSetError(f"Cannot initialise Gaussians from {len(points)} point(s): need at least 2 "
                                   "(were all depth pixels invalid?).")
        if colors.shape != points.shape:
            raise GaussianSetError(f"colors {list(colors.shape)} must match points {list(points.shape)}.")
        k = min(knn, len(points) - 1)
        sq, _ = nearest(points.float(), points.float(), k + 1)  # the first neighbour is the point itself
        dist = sq[:, 1:].mean(1).sqrt().clamp_min(1e-7)
        n = len(points)
        quats = points.new_zeros(n, 4)
        quats[:, 0] = 1
        logit = torch.logit(torch.tensor(opacity, device=points.device)).expand(n).clone()
        return cls(points.float(), dist.log()[:, None].repeat(1, 3), quats, logit, rgb_to_sh_dc(colors.float())[:, None],
                   sh_degree=sh_degree)

    def __len__(self) -> int:
        return self.means.shape[0]

    @property
    def scales(self) -> Tensor:
        return self.log_scales.exp()

    @property
    def opacities(self) -> Tensor:
        return torch.sigmoid(self.opacity_logits)

    @property
    def sh(self) -> Tensor:
        return torch.cat([self.sh_dc, self.sh_rest], 1)

    def render(self, viewmats: Tensor, Ks: Tensor, width: int, height: int, render_mode: str = "RGB",
               backgrounds: Optional[Tensor] = None, sh_degree: Optional[int] = None):
        """``rasterize_gaussians`` of these Gaussians (SH up to ``sh_degree``, default all)."""
        return rasterize_gaussians(self.means, self.quats, self.scales, self.opacities, self.sh, viewmats, Ks, width,
                                   height, sh_degree=self.sh_degree if sh_degree is None else sh_degree,
                                   render_mode=render_mode, backgrounds=backgrounds)

    def replace(self, **params: Tensor) -> None:
        """Swap parameter tensors (after densification or pruning), keeping them leaf Parameters."""
        for name, value in params.items():
            setattr(self, name, nn.Parameter(value.detach().contiguous()))
