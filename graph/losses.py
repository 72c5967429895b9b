"""Losses of the graph methods: GraphMAE's reconstruction error and the Barlow Twins redundancy reduction."""

from __future__ import annotations

import torch
from torch import Tensor

from geossl.graph.encoders.inputs import CSRRows


def scaled_cosine_error(pred: Tensor, target: Tensor | CSRRows, alpha: float = 2.0) -> Tensor:
    """GraphMAE's scaled cosine error (Hou et al., KDD 2022, Eq. 3).

    ``mean_i (1 - cos(pred_i, target_i)) ** alpha`` over rows.

    Args:
        pred: reconstructed features [M, F].
        target: original features [M, F], dense or as :class:`CSRRows` (sparse bag-of-words
            targets then cost only their non-zeros).
        alpha: scaling exponent (>= 1); larger values down-weight easy rows.
    """
    shape = tuple(target.shape)
    if tuple(pred.shape) != shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {shape} must have the same shape")
    # cos = <p, t> / (max(|p|, eps) max(|t|, eps)), as F.normalize computes it, but with
    # row reductions instead of two normalised [M, F] copies (a third of the autograd work).
    eps = 1e-12
    pred = pred.to(torch.promote_types(pred.dtype, torch.float32))  # reductions in at least float32 under autocast
    if isinstance(target, CSRRows):
        rows = torch.repeat_interleave(torch.arange(shape[0], device=pred.device), target.crow[1:] - target.crow[:-1])
        dot = torch.zeros(shape[0], dtype=pred.dtype, device=pred.device).index_add(
            0, rows, pred[rows, target.col] * target.val
        )
        target_norm = torch.zeros_like(dot).index_add(0, rows, target.val.square()).sqrt().clamp_min(eps)
    else:
        dot = (pred * target).sum(-1)
        target_norm = torch.linalg.vector_norm(target, dim=-1).clamp_min(eps)
    pred_norm = torch.linalg.vector_norm(pred, dim=-1).clamp_min(eps)
    cos = dot / (pred_norm * target_norm)
    return (1 - cos).pow(alpha).mean()


def barlow_twins_loss(z_a: Tensor, z_b: Tensor, lam: float | None = None, eps: float = 1e-15) -> Tensor:
    """The Barlow Twins loss (Zbontar et al., ICML 2021, Eq. 1) as Graph Barlow Twins computes it (Bielak et al., 2022).

    Each view's embeddings are standardised per feature over the batch (mean 0, unbiased std 1), their
    cross-correlation ``C = z_a_norm^T z_b_norm / N`` is pulled towards the identity:
    ``sum_i (1 - C_ii)^2 + lam * sum_{i != j} C_ij^2``.

    Args:
        z_a, z_b: the two views' embeddings of the same N samples, [N, D] each (N >= 2).
        lam: weight of the off-diagonal (redundancy) term; None uses Graph Barlow Twins' default 1 / D.
        eps: added to each feature's standard deviation (a constant feature then gives 0, not NaN).
    """
    if z_a.shape != z_b.shape or z_a.dim() != 2 or z_a.shape[0] < 2:
        raise ValueError(f"barlow_twins_loss needs two [N, D] embeddings of the same shape with N >= 2, got "
                         f"{tuple(z_a.shape)} and {tuple(z_b.shape)}")
    n, d = z_a.shape
    lam = 1.0 / d if lam is None else float(lam)
    z_a = z_a.to(torch.promote_types(z_a.dtype, torch.float32))
    z_b = z_b.to(z_a.dtype)
    a = (z_a - z_a.mean(0)) / (z_a.std(0) + eps)
    b = (z_b - z_b.mean(0)) / (z_b.std(0) + eps)
    c = a.t() @ b / n
    diag = torch.diagonal(c)
    on = (1 - diag).pow(2).sum()
    off = c.pow(2).sum() - diag.pow(2).sum()
    return on + lam * off
