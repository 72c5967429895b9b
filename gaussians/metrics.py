"""Image losses and metrics for scene fitting: PSNR and SSIM (Wang et al., 2004, an 11x11 Gaussian
window with sigma 1.5, as the 3DGS code computes it), on ``[H, W, 3]`` images in [0, 1]."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor


def psnr(pred: Tensor, target: Tensor, mask: Optional[Tensor] = None) -> float:
    """``10 log10(1 / MSE)`` over all pixels, or over the pixels where ``mask`` ``[H, W]`` is true."""
    err = (pred - target) ** 2
    mse = err[mask].mean() if mask is not None else err.mean()
    return float(10 * torch.log10(1.0 / mse.clamp_min(1e-12)))


def _window(size: int = 11, sigma: float = 1.5, channels: int = 3, device=None, dtype=torch.float32) -> Tensor:
    x = torch.arange(size, device=device, dtype=dtype) - size // 2
    g = torch.exp(-x ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim(pred: Tensor, target: Tensor, mask: Optional[Tensor] = None) -> Tensor:
    """Mean structural similarity of two ``[H, W, C]`` images (differentiable; zero padding at the
    borders, like the 3DGS code), over all pixels or over the pixels where ``mask`` ``[H, W]`` is true
    (their windows still reach the pixels around them)."""
    x, y = pred.permute(2, 0, 1)[None], target.permute(2, 0, 1)[None]
    c = x.shape[1]
    w = _window(channels=c, device=x.device, dtype=x.dtype)
    mu_x, mu_y = F.conv2d(x, w, padding=5, groups=c), F.conv2d(y, w, padding=5, groups=c)
    sxx = F.conv2d(x * x, w, padding=5, groups=c) - mu_x ** 2
    syy = F.conv2d(y * y, w, padding=5, groups=c) - mu_y ** 2
    sxy = F.conv2d(x * y, w, padding=5, groups=c) - mu_x * mu_y
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (sxx + syy + c2))
    return s.mean() if mask is None else s[0].mean(0)[mask].mean()
