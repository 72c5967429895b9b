"""Adaptive density control of 3D Gaussian Splatting (Kerbl et al., SIGGRAPH 2023) as a strategy object, in the
shape of gsplat's ``strategy/default.py``: the strategy holds its settings, the fit loop holds its state (from
:meth:`DefaultStrategy.initialize_state`) and calls its hooks around each step, so a fit loop has no densification
code of its own and another strategy (MCMC-style relocation, say) is another class with the same hooks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional

import torch
from torch import Tensor

from geossl.gaussians.model import GaussianSet


@dataclass
class DefaultStrategy:
    """Clone small and split large Gaussians whose mean screen-space position gradient exceeds ``densify_grad``, and
    drop those whose opacity is below ``prune_opacity``, every ``densify_every`` steps in ``[densify_from,
    densify_until)``.

    Args:
        densify_from, densify_until: the steps (1-based) at which gradients are gathered and density is controlled.
        densify_every: steps between two densifications (the gathered gradients are reset after each).
        densify_grad: the mean screen-space gradient norm (3DGS's NDC units) above which a Gaussian is densified.
        prune_opacity: Gaussians less opaque than this are dropped.
        extent: the scene's size; a Gaussian larger than 1% of it is split, a smaller one cloned.
    """

    densify_from: int
    densify_until: int
    densify_every: int
    densify_grad: float
    prune_opacity: float
    extent: float

    def initialize_state(self, g: GaussianSet) -> Dict[str, Any]:
        """The strategy's running state for ``g``: per-Gaussian sums and counts of screen-space gradient norms."""
        return {"grad_sum": g.means.new_zeros(len(g)), "grad_count": g.means.new_zeros(len(g))}

    def step_pre_backward(self, meta: Dict[str, Any]) -> None:
        """Before the backward pass: keep the gradient of the projected means (``meta`` of the render)."""
        meta["means2d"].retain_grad()

    def step_post_backward(self, g: GaussianSet, opt: torch.optim.Adam, state: Dict[str, Any], step: int, meta: Dict[str, Any],
                           width: int, height: int) -> Optional[Dict[str, int]]:
        """After the backward pass and the optimiser's step of ``step``: gather the projected means' gradients and,
        every ``densify_every`` steps, densify and prune ``g`` (its parameters and Adam's moments rebuilt in place).
        Returns the densification's counts on the steps it runs, else None."""
        if not self.densify_from <= step < self.densify_until or meta["means2d"].grad is None:
            return None
        gr = meta["means2d"].grad[0] * torch.tensor([width / 2.0, height / 2.0], device=g.means.device)  # to 3DGS's NDC units
        seen = (meta["radii"][0] > 0).all(-1)
        state["grad_sum"][seen] += gr[seen].norm(dim=-1)
        state["grad_count"][seen] += 1
        if step % self.densify_every:
            return None
        stats = densify_and_prune(g, opt, state["grad_sum"] / state["grad_count"].clamp_min(1), self.densify_grad,
                                  self.prune_opacity, self.extent)
        state.update(self.initialize_state(g))
        return stats


def _rebuild(g: GaussianSet, opt: torch.optim.Adam, keep: Tensor, new: Dict[str, Tensor]) -> None:
    """Keep rows ``keep`` of every parameter, append ``new`` rows, and carry Adam's moments over
    (zeros for the new rows)."""
    for group in opt.param_groups:
        name, old = group["name"], group["params"][0]
        state = opt.state.pop(old, {})
        value = torch.cat([old.detach()[keep], new[name]]) if name in new else old.detach()[keep]
        g.replace(**{name: value})
        param = getattr(g, name)
        group["params"] = [param]
        if state:
            pad = len(value) - int(keep.sum())
            opt.state[param] = {k: (torch.cat([v[keep], v.new_zeros((pad,) + v.shape[1:])]) if torch.is_tensor(v) and v.dim() > 0 else v)
                                for k, v in state.items()}


def densify_and_prune(g: GaussianSet, opt: torch.optim.Adam, grad_mean: Tensor, densify_grad: float, prune_opacity: float,
                      extent: float) -> Dict[str, int]:
    """3DGS's adaptive density control: clone small and split large Gaussians whose mean
    screen-space gradient exceeds ``densify_grad``; drop those with opacity below
    ``prune_opacity`` (the split originals go too)."""
    with torch.no_grad():
        big = g.scales.max(1).values > 0.01 * extent
        hot = grad_mean > densify_grad
        clone, split = hot & ~big, hot & big
        new = {n: getattr(g, n).detach()[clone] for n in ("means", "log_scales", "quats", "opacity_logits", "sh_dc", "sh_rest")}
        if split.any():
            s = g.scales[split]
            from geossl.ops.rasterize import quat_scale_to_covariance

            L = torch.linalg.cholesky(quat_scale_to_covariance(g.quats[split], s) + 1e-12 * torch.eye(3, device=s.device))
            for _ in range(2):
                sample = (L @ torch.randn(len(s), 3, 1, device=s.device))[..., 0] + g.means[split]
                new["means"] = torch.cat([new["means"], sample])
                new["log_scales"] = torch.cat([new["log_scales"], (s / 1.6).log()])
                for n in ("quats", "opacity_logits", "sh_dc", "sh_rest"):
                    new[n] = torch.cat([new[n], getattr(g, n).detach()[split]])
        keep = ~split & (g.opacities >= prune_opacity)
        _rebuild(g, opt, keep, new)
    return {"cloned": int(clone.sum()), "split": int(split.sum()), "pruned": int((~keep).sum() - split.sum())}
