"""Reconstruction losses for graph masked autoencoders."""

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
