"""A 3D detector: any scene encoder as the backbone and a detection head (``HEADS``: ``votenet``), saved and
loaded like an encoder (safetensors weights and a JSON header; no pickle).

The backbone may be frozen (``freeze_backbone``: no gradients, eval mode) or trained at a fraction of the
head's learning rate (``backbone_lr``, a parameter group the engine builds). A second head (a 3DETR-style
set-prediction head, say) is one file that registers itself in :data:`geossl.registry.HEADS` (``group="detection"``) and implements
``forward(batch, features)``, ``loss(outputs, boxes)`` and ``predict(outputs)``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch
from torch import Tensor

from geossl.encoder import Encoder
from geossl.errors import ConfigError
from geossl.points import PointBatch
from geossl.registry import HEADS
from geossl.pointcloud.finetuned import FinetunedModel, finetuned_kind, load_finetuned, save_finetuned

@finetuned_kind
class Detector(FinetunedModel):
    """``backbone`` (a scene :class:`~geossl.encoder.Encoder`) + a detection head.

    Args:
        backbone: per-point features of a :class:`~geossl.points.PointBatch`.
        classes: the object class names (a box's class id indexes them).
        head: registry name of the head (``HEADS``).
        head_config: the head's keyword arguments (besides ``in_dim`` and ``num_classes``).
        yaw: whether the dataset's boxes have a heading.
        freeze_backbone: keep the backbone as it is (no gradients, eval mode).
        backbone_lr: the backbone's learning rate as a fraction of the head's (0 < x <= 1; ignored when frozen).
    """

    FORMAT, FORMAT_VERSION = "geossl-detector", 1

    def __init__(self, backbone: Encoder, classes: Sequence[str], head: str = "votenet", head_config: Optional[Dict[str, Any]] = None,
                 yaw: bool = False, freeze_backbone: bool = False, backbone_lr: float = 1.0):
        super().__init__(backbone, "detection", freeze_backbone, backbone_lr)
        head_cls = HEADS.get(head, domain="scene")
        self.classes, self.head_name, self.yaw = list(classes), head, bool(yaw)
        self.head_config = dict(head_config or {})
        self.head = head_cls(in_dim=backbone.out_dim, num_classes=len(self.classes), yaw=self.yaw, **self.head_config)

    def forward(self, batch: PointBatch) -> Dict[str, Tensor]:
        return self.head(batch, self.features(batch))

    def loss(self, batch: PointBatch) -> Dict[str, Tensor]:
        if batch.boxes is None:
            raise ConfigError("Training a detector needs boxes: the dataset's items carry none.")
        return self.head.loss(self(batch), batch.boxes)

    @torch.no_grad()
    def predict(self, batch: PointBatch) -> List[Dict[str, Tensor]]:
        """Per scene ``{"boxes": [K, 7|8], "scores": [K]}`` (eval mode for the call)."""
        was = self.training
        self.eval()
        try:
            return self.head.predict(self(batch))
        finally:
            self.train(was)

    def config(self) -> Dict[str, Any]:
        return {"classes": self.classes, "head": self.head_name, "head_config": self.head_config, "yaw": self.yaw,
                "freeze_backbone": self.freeze_backbone, "backbone_lr": self.backbone_lr}


def save_detector(detector: Detector, path: str | os.PathLike, metadata: Optional[Dict[str, Any]] = None) -> Path:
    """Write a detector to a ``.safetensors`` file: its weights and a JSON header (backbone registry name and
    config, head and its config, classes, ``metadata``); see :func:`geossl.pointcloud.finetuned.save_finetuned`."""
    return save_finetuned(detector, path, metadata)


def load_detector(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Detector:
    """Rebuild a detector written by :func:`save_detector` (eval mode); any other file is refused with the reason."""
    return load_finetuned(path, Detector, map_location)
