"""Fitting 3D Gaussians to posed RGB-D frames (3D Gaussian Splatting, Kerbl et al., SIGGRAPH 2023),
initialised from the frames' back-projected depth.

Loss per step (one training view): ``(1 - lambda_dssim) L1 + lambda_dssim (1 - SSIM)`` on colour,
plus ``depth_weight`` times the L1 of the expected depth where the frame's depth is valid. Adam
(eps 1e-15) with one learning rate per parameter kind; the position rate decays exponentially by
``means_lr_decay`` over the run, scaled by the scene extent. Densification (3DGS's clone of small
and split of large Gaussians whose mean screen-space gradient exceeds ``densify_grad``) and
pruning (opacity below ``prune_opacity``) run every ``densify_every`` steps inside
``[densify_from, densify_until)``, as a strategy object (:class:`~geossl.gaussians.strategy.DefaultStrategy`,
gsplat's ``strategy/default.py`` shape: its state plus hooks around the backward pass). Works on any frame objects with ``color [H, W, 3]``,
``depth [H, W]`` (metres, 0 = invalid), ``K [3, 3]`` and ``cam_to_world [4, 4]``.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import torch
from torch import Tensor

from geossl.frames import RGBDFrame
from geossl.gaussians.metrics import psnr, ssim
from geossl.gaussians.model import GaussianSet, GaussianSetError
from geossl.gaussians.strategy import DefaultStrategy
from geossl.ops.camera import backproject_depth, invert_pose


@dataclass
class FitConfig:
    """Scene-fitting settings (see the module docstring). ``max_seconds`` stops the run early."""

    iterations: int = 8000
    max_seconds: float = 0.0
    voxel: float = 0.04
    init_opacity: float = 0.7
    sh_degree: int = 0
    lr_means: float = 3.2e-4
    means_lr_decay: float = 0.01
    lr_scales: float = 1e-2
    lr_quats: float = 1e-3
    lr_opacity: float = 5e-2
    lr_sh: float = 5e-3
    lambda_dssim: float = 0.2
    depth_weight: float = 0.0
    densify_from: int = 500
    densify_until: int = 0
    densify_every: int = 100
    densify_grad: float = 2e-4
    prune_opacity: float = 0.005
    eval_every: int = 500
    seed: int = 0

    def __post_init__(self):
        from geossl.errors import ConfigError

        bad = [f"fit.{k}={getattr(self, k)} (needs {rule})" for k, ok, rule in (
            ("iterations", self.iterations >= 1, ">= 1"), ("eval_every", self.eval_every >= 1, ">= 1"),
            ("densify_every", self.densify_every >= 1, ">= 1"), ("voxel", self.voxel > 0, "> 0"),
            ("max_seconds", self.max_seconds >= 0, ">= 0"), ("init_opacity", 0 < self.init_opacity < 1, "in (0, 1)"),
            ("sh_degree", self.sh_degree in (0, 1, 2, 3), "0 to 3"), ("means_lr_decay", self.means_lr_decay > 0, "> 0"),
            ("lambda_dssim", 0 <= self.lambda_dssim <= 1, "in [0, 1]"), ("depth_weight", self.depth_weight >= 0, ">= 0"),
            ("densify_grad", self.densify_grad > 0, "> 0"), ("prune_opacity", 0 <= self.prune_opacity < 1, "in [0, 1)"),
        ) if not ok]
        bad += [f"fit.{k}={getattr(self, k)} (needs >= 0)" for k in ("lr_means", "lr_scales", "lr_quats", "lr_opacity", "lr_sh")
                if getattr(self, k) < 0]
        if bad:
            raise ConfigError(f"Bad fit settings: {'; '.join(bad)}.")


@dataclass
class FitResult:
    gaussians: GaussianSet
    history: List[Dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    iterations: int = 0
    stopped: str = ""  # why the fit stopped before its iterations ("" = it did not)


def voxel_downsample(points: Tensor, colors: Tensor, voxel: float):
    """Mean position and colour of the points in each occupied ``voxel``-sized cell."""
    keys = torch.floor(points / voxel).long()
    _, inv = torch.unique(keys, dim=0, return_inverse=True)
    n = int(inv.max()) + 1 if len(inv) else 0
    count = points.new_zeros(n).index_add_(0, inv, points.new_ones(len(inv)))[:, None]
    p = points.new_zeros(n, 3).index_add_(0, inv, points) / count
    c = colors.new_zeros(n, 3).index_add_(0, inv, colors) / count
    return p, c


def points_from_frames(frames: Sequence, voxel: float):
    """Coloured world points of every valid depth pixel of ``frames``, voxel-averaged."""
    pts, cols = [], []
    for f in frames:
        p, idx = backproject_depth(f.depth, f.K, f.cam_to_world)
        pts.append(p)
        cols.append(f.color.reshape(-1, 3)[idx])
    points, colors = torch.cat(pts), torch.cat(cols)
    if len(points) < 2:
        raise GaussianSetError(f"The {len(frames)} training frames have {len(points)} valid depth pixels: "
                               "nothing to initialise Gaussians from (is every depth pixel 0?).")
    return voxel_downsample(points, colors, voxel)


def evaluate_views(gaussians: GaussianSet, frames: Sequence) -> Dict[str, float]:
    """Mean PSNR (all pixels and depth-valid pixels) and SSIM of renders of ``frames``."""
    out = {"psnr": 0.0, "psnr_valid_depth": 0.0, "ssim": 0.0}
    with torch.no_grad():
        for f in frames:
            w, h = f.color.shape[1], f.color.shape[0]
            img = gaussians.render(invert_pose(f.cam_to_world)[None], f.K[None], w, h)[0][0].clamp(0, 1)
            out["psnr"] += psnr(img, f.color) / len(frames)
            out["psnr_valid_depth"] += psnr(img, f.color, f.depth > 0) / len(frames)
            out["ssim"] += float(ssim(img, f.color)) / len(frames)
    return out


def _optimizer(g: GaussianSet, cfg: FitConfig, extent: float) -> torch.optim.Adam:
    groups = [("means", cfg.lr_means * extent), ("log_scales", cfg.lr_scales), ("quats", cfg.lr_quats),
              ("opacity_logits", cfg.lr_opacity), ("sh_dc", cfg.lr_sh), ("sh_rest", cfg.lr_sh / 20)]
    return torch.optim.Adam([{"params": [getattr(g, n)], "lr": lr, "name": n} for n, lr in groups], eps=1e-15)


def _on(frame, device) -> RGBDFrame:
    """A frame's tensors on ``device`` (any object with color, depth, K, cam_to_world and name)."""
    return RGBDFrame(frame.color.to(device), frame.depth.to(device), frame.K.to(device), frame.cam_to_world.to(device),
                     getattr(frame, "name", ""))


def fit_gaussians(train: Sequence, test: Sequence, cfg: FitConfig = FitConfig(),
                  progress: Optional[Callable[[int, Dict[str, float]], None]] = None,
                  device: Optional[str | torch.device] = None) -> FitResult:
    """Fit Gaussians to ``train`` frames, evaluating on ``test`` every ``cfg.eval_every`` steps and
    at the end. ``progress(step, stats)`` is called after every step (for a progress bar). A
    non-finite loss or gradient stops the fit before that step's update; the result keeps the last
    good Gaussians and says why in ``stopped``. Everything runs on ``device`` (default: the frames'
    device): gsplat's rasterizer on CUDA, the compiled compositor on CPU (``rasterize_gaussians``)."""
    if not train:
        raise GaussianSetError("No training frames to fit.")
    device = torch.device(device) if device is not None else train[0].color.device
    train, test = [_on(f, device) for f in train], [_on(f, device) for f in test]
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    points, colors = points_from_frames(train, cfg.voxel)
    g = GaussianSet.from_points(points, colors, cfg.sh_degree, cfg.init_opacity)
    centres = torch.stack([f.cam_to_world[:3, 3] for f in train])
    extent = float(max((centres - centres.mean(0)).norm(dim=1).max() * 1.1, 1e-3)) if len(train) > 1 else 1.0
    opt = _optimizer(g, cfg, extent)
    views = [(invert_pose(f.cam_to_world)[None], f.K[None], f) for f in train]
    result = FitResult(g)
    strategy = DefaultStrategy(cfg.densify_from, cfg.densify_until, cfg.densify_every, cfg.densify_grad, cfg.prune_opacity, extent)
    state = strategy.initialize_state(g)
    start, step = 0.0, 0

    def record(at: int) -> None:
        result.history.append({"iteration": at, "seconds": round(time.time() - start, 1) if at else 0.0,
                               **evaluate_views(g, test)})

    record(0)  # also builds the compiled compositor on first use, before the clock starts
    start = time.time()
    for step in range(1, cfg.iterations + 1):
        frac = (step - 1) / max(cfg.iterations - 1, 1)
        opt.param_groups[0]["lr"] = cfg.lr_means * extent * math.exp(frac * math.log(cfg.means_lr_decay))
        viewmat, K, f = views[rng.randrange(len(views))]
        w, h = f.color.shape[1], f.color.shape[0]
        mode = "RGB+ED" if cfg.depth_weight > 0 else "RGB"
        img, _, meta = g.render(viewmat, K, w, h, render_mode=mode)
        strategy.step_pre_backward(meta)
        rgb = img[0, ..., :3]
        loss = (1 - cfg.lambda_dssim) * (rgb - f.color).abs().mean() + cfg.lambda_dssim * (1 - ssim(rgb, f.color))
        if cfg.depth_weight > 0:
            valid = f.depth > 0
            loss = loss + cfg.depth_weight * (img[0, ..., 3][valid] - f.depth[valid]).abs().mean()
        opt.zero_grad(set_to_none=True)
        if torch.isfinite(loss):
            loss.backward()
        bad = [n for n, p in g.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
        if not torch.isfinite(loss) or bad:
            # stop before the step: the Gaussians are still the last good ones, and are kept
            result.stopped = (f"non-finite loss {float(loss.detach())}" if not torch.isfinite(loss) else
                              f"non-finite gradients of {', '.join(bad)}") + f" at step {step}"
            step -= 1
            break
        opt.step()
        strategy.step_post_backward(g, opt, state, step, meta, w, h)
        out_of_time = cfg.max_seconds and time.time() - start > cfg.max_seconds
        if progress:
            progress(step, {"loss": float(loss.detach()), "gaussians": len(g)})
        if step % cfg.eval_every == 0 and step != cfg.iterations and not out_of_time:
            record(step)
        if out_of_time:
            break
    result.seconds = time.time() - start
    result.iterations = step
    record(step)
    return result
