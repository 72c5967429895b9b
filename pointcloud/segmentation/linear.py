"""The linear segmentation head of Pointcept's semantic-segmentation models (``DefaultSegmentor``'s ``seg_head``:
one ``nn.Linear`` from the backbone's per-point features to class scores, trained with cross-entropy), the head that
GS3, PonderV2 and Sonata fine-tune their pretrained SpUNet and PTv3 backbones with.

Wu et al., "Pointcept: A Codebase for Point Cloud Perception Research", 2023.
"""

from __future__ import annotations

from typing import Dict

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from geossl.points import PointBatch
from geossl.registry import HEADS


@HEADS.register("linear", domain="scene", group="segmentation")
class LinearSegHead(nn.Module):
    """Per-point class scores ``[N, num_classes]`` from per-point features ``[N, in_dim]``.

    Args:
        in_dim: the backbone's feature width.
        num_classes: semantic classes.
        dropout: dropout on the features before the linear layer (0: none, as Pointcept).
    """

    def __init__(self, in_dim: int, num_classes: int, dropout: float = 0.0):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.linear = nn.Linear(in_dim, num_classes)

    def forward(self, batch: PointBatch, features: Tensor) -> Tensor:
        return self.linear(self.drop(features))

    @staticmethod
    def loss(logits: Tensor, labels: Tensor) -> Dict[str, Tensor]:
        """Cross-entropy over the labelled points (label -1: ignored); 0 for a batch without a labelled point."""
        keep = labels >= 0
        if not bool(keep.any()):
            return {"loss": logits.sum() * 0.0}
        return {"loss": F.cross_entropy(logits[keep], labels[keep])}

    @staticmethod
    def scores(logits: Tensor) -> Tensor:
        """Per-point class probabilities (what overlapping crops of a scene add up)."""
        return torch.softmax(logits, dim=-1)
