"""A 3D detector: any scene encoder as the backbone and a detection head (``HEADS``: ``votenet``), saved and
loaded like an encoder (safetensors weights and a JSON header; no pickle).

The backbone may be frozen (``freeze_backbone``: no gradients, eval mode) or trained at a fraction of the
head's learning rate (``backbone_lr``, a parameter group the engine builds). A second head (a 3DETR-style
set-prediction head, say) is one file that registers itself in :data:`geossl.registry.HEADS` (``group="detection"``) and implements
``forward(batch, features)``, ``loss(outputs, boxes)`` and ``predict(outputs)``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch
from torch import Tensor, nn

from geossl.encoder import Encoder, check_shapes, check_sizes, stored_shapes
from geossl.errors import CheckpointError, ConfigError, GeosslError
from geossl.io import atomic_write
from geossl.points import PointBatch
from geossl.registry import ENCODERS, HEADS

DETECTOR_FORMAT = "geossl-detector"
DETECTOR_FORMAT_VERSION = 1


class Detector(nn.Module):
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

    def __init__(self, backbone: Encoder, classes: Sequence[str], head: str = "votenet", head_config: Optional[Dict[str, Any]] = None,
                 yaw: bool = False, freeze_backbone: bool = False, backbone_lr: float = 1.0):
        super().__init__()
        if getattr(type(backbone), "registry_name", None) not in ENCODERS or ENCODERS.domain(type(backbone).registry_name) != "scene":
            raise ConfigError(f"A detector's backbone must be a scene encoder (point_patch_transformer, spunet); got "
                              f"{getattr(type(backbone), 'registry_name', type(backbone).__name__)}.")
        head_cls = HEADS.get(head, domain="scene")
        if not 0 < backbone_lr <= 1:
            raise ConfigError(f"detection.backbone_lr must be in (0, 1], got {backbone_lr}.")
        self.classes, self.head_name, self.yaw = list(classes), head, bool(yaw)
        self.head_config = dict(head_config or {})
        self.freeze_backbone, self.backbone_lr = bool(freeze_backbone), float(backbone_lr)
        self.backbone = backbone
        self.head = head_cls(in_dim=backbone.out_dim, num_classes=len(self.classes), yaw=self.yaw, **self.head_config)
        if self.freeze_backbone:
            self.backbone.requires_grad_(False)

    @property
    def min_points(self) -> int:
        return max(int(getattr(self.backbone, "min_points", 1)), int(getattr(self.head, "min_points", 1)))

    def train(self, mode: bool = True) -> "Detector":
        super().train(mode)
        if self.freeze_backbone:
            self.backbone.eval()  # a frozen backbone keeps its batch-norm statistics too
        return self

    def forward(self, batch: PointBatch) -> Dict[str, Tensor]:
        if self.freeze_backbone:
            with torch.no_grad():
                features = self.backbone(batch)
        else:
            features = self.backbone(batch)
        return self.head(batch, features)

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

    def param_groups(self) -> List[Dict[str, Any]]:
        groups = [{"params": list(self.head.parameters())}]
        if not self.freeze_backbone:
            groups.append({"params": list(self.backbone.parameters()), "lr_scale": self.backbone_lr})
        return groups

    def config(self) -> Dict[str, Any]:
        return {"classes": self.classes, "head": self.head_name, "head_config": self.head_config, "yaw": self.yaw,
                "freeze_backbone": self.freeze_backbone, "backbone_lr": self.backbone_lr}


def save_detector(detector: Detector, path: str | os.PathLike, metadata: Optional[Dict[str, Any]] = None) -> Path:
    """Write a detector to a ``.safetensors`` file: its weights and a JSON header (backbone registry name and
    config, head and its config, classes, ``metadata``)."""
    from safetensors.torch import save_file

    from geossl import __version__

    backbone = detector.backbone
    header = {"format": DETECTOR_FORMAT, "format_version": DETECTOR_FORMAT_VERSION, "domain": "scene", "backbone": type(backbone).registry_name,
              "backbone_config": backbone.config(), "detector": detector.config(), "geossl_version": __version__,
              "metadata": dict(metadata or {})}
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in detector.state_dict().items()}
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={"geossl": json.dumps(header, default=str)}))


def load_detector(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Detector:
    """Rebuild a detector written by :func:`save_detector` (eval mode). The header's sizes are checked against the
    stored tensors before anything is allocated, as for encoders; a file of another kind is refused."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Detector file {str(path)!r} does not exist.")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
        stored = stored_shapes(path)
        header = json.loads(meta.get("geossl", "{}"))
    except Exception as exc:
        raise CheckpointError(f"Detector file {str(path)!r} is not a readable safetensors file ({exc}).") from None
    if not isinstance(header, dict) or header.get("format") != DETECTOR_FORMAT:
        kind = header.get("format") if isinstance(header, dict) else None
        raise CheckpointError(f"{str(path)!r} is not a geossl detector (its header says {kind!r}); encoders are loaded with "
                              "geossl.load_encoder, and a detector is built from one with Detector(...).")
    if header.get("format_version") != DETECTOR_FORMAT_VERSION:
        raise CheckpointError(f"{str(path)!r} uses detector format version {header.get('format_version')}; this geossl reads "
                              f"{DETECTOR_FORMAT_VERSION}.")
    try:
        cls = ENCODERS.get(str(header["backbone"]), domain="scene")
        config, det = dict(header["backbone_config"]), dict(header["detector"])
        check_sizes(path, stored, config, dict(det.get("head_config", {})))
        with torch.device("meta"):
            shell = Detector(cls(**config), **det)
    except CheckpointError:
        raise
    except (GeosslError, TypeError, ValueError, KeyError, RuntimeError) as exc:
        raise CheckpointError(f"The header of {str(path)!r} does not describe a detector this geossl can build: {exc}") from None
    check_shapes(path, stored, shell, "the detector its header describes")
    detector = Detector(cls(**config), **det)
    detector.load_state_dict(load_file(str(path), device=str(map_location)))
    detector.pretrained = header.get("metadata", {})
    return detector.to(map_location).eval()
