"""RankMe: the effective rank of a set of embeddings, a label-free collapse detector.

Garrido, Balestriero, Najman, LeCun. "RankMe: Assessing the Downstream Performance of
Pretrained Self-Supervised Representations by Their Rank", ICML 2023.
"""

from __future__ import annotations

import torch
from torch import Tensor


@torch.no_grad()
def rankme(embeddings: Tensor, eps: float = 1e-7, max_rows: int = 25600) -> float:
    """``exp(H(p))`` with ``p_k = sigma_k / ||sigma||_1 + eps`` over the singular values of the
    embedding matrix. Ranges from 1 (complete collapse) to ``min(N, D)``.

    Args:
        embeddings: [N, D] matrix (one row per node, point or graph).
        eps: smoothing added to the normalised singular values, as in the paper.
        max_rows: use at most this many evenly spaced rows (SVD cost).
    """
    z = embeddings.detach().float()
    if z.ndim != 2 or z.shape[0] == 0:
        raise ValueError(f"rankme needs a non-empty [N, D] matrix, got shape {tuple(z.shape)}")
    if z.shape[0] > max_rows:
        z = z[torch.linspace(0, z.shape[0] - 1, max_rows).long()]
    sigma = torch.linalg.svdvals(z.cpu())
    p = sigma / sigma.sum().clamp_min(1e-12) + eps
    return float(torch.exp(-(p * torch.log(p)).sum()))
