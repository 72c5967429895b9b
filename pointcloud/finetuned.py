"""Fine-tuned scene models (a detector, a segmenter): a scene encoder as the backbone and a head of
:data:`geossl.registry.HEADS`, trained with the backbone frozen or at a fraction of the head's learning rate, and saved
and loaded alike: safetensors weights and a JSON header that names the kind of model (its ``format``), the backbone
(registry name and sizes) and the model's own config; no pickle.

A kind subclasses :class:`FinetunedModel` (``FORMAT``: the header's format string, ``FORMAT_VERSION``, ``config()``:
its constructor's keyword arguments besides the backbone) and is registered with :func:`finetuned_kind`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
from torch import nn

from geossl.encoder import Encoder, check_shapes, check_sizes, stored_shapes
from geossl.errors import CheckpointError, ConfigError, GeosslError
from geossl.io import atomic_write
from geossl.registry import ENCODERS

class FinetunedModel(nn.Module):
    """``backbone`` (a scene :class:`~geossl.encoder.Encoder`) + ``head`` (built by the subclass), trained together.

    Args:
        backbone: per-point features of a :class:`~geossl.points.PointBatch`.
        task: what the model does ("detection", "segmentation"): its config section, for messages.
        freeze_backbone: keep the backbone as it is (no gradients, eval mode, batch-norm statistics too).
        backbone_lr: the backbone's learning rate as a fraction of the head's (0 < x <= 1; ignored when frozen).
    """

    FORMAT, FORMAT_VERSION = "", 1

    def __init__(self, backbone: Encoder, task: str, freeze_backbone: bool = False, backbone_lr: float = 1.0):
        super().__init__()
        name = getattr(type(backbone), "registry_name", None)
        if name not in ENCODERS or ENCODERS.domain(name) != "scene":
            raise ConfigError(f"A {task} model's backbone must be a scene encoder ({', '.join(ENCODERS.names('scene'))}); got "
                              f"{name or type(backbone).__name__}.")
        if not 0 < backbone_lr <= 1:
            raise ConfigError(f"{task}.backbone_lr must be in (0, 1], got {backbone_lr}.")
        self.freeze_backbone, self.backbone_lr = bool(freeze_backbone), float(backbone_lr)
        self.backbone = backbone
        if self.freeze_backbone:
            self.backbone.requires_grad_(False)

    @property
    def min_points(self) -> int:
        """The fewest points per scene that the backbone and the head can take."""
        return max(int(getattr(self.backbone, "min_points", 1)), int(getattr(self.head, "min_points", 1)))

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze_backbone:
            self.backbone.eval()
        return self

    def features(self, batch) -> torch.Tensor:
        """The backbone's per-point features (without gradients when it is frozen)."""
        if self.freeze_backbone:
            with torch.no_grad():
                return self.backbone(batch)
        return self.backbone(batch)

    def param_groups(self) -> List[Dict[str, Any]]:
        """The head at the trainer's learning rate, the backbone (unless frozen) at ``backbone_lr`` of it."""
        groups = [{"params": list(self.head.parameters())}]
        if not self.freeze_backbone:
            groups.append({"params": list(self.backbone.parameters()), "lr_scale": self.backbone_lr})
        return groups


class FinetuneTraining(nn.Module):
    """What the engine trains: a fine-tuned model (``.model``) whose ``forward(batch)`` returns its named losses
    (``model.loss(batch)``), with the model's parameter groups and its train/eval switch (a frozen backbone stays in
    eval mode)."""

    def __init__(self, model: FinetunedModel):
        super().__init__()
        self.model = model

    def forward(self, batch) -> Dict[str, torch.Tensor]:
        return self.model.loss(batch)

    def param_groups(self):
        return self.model.param_groups()

    def train(self, mode: bool = True):
        self.model.train(mode)
        self.training = mode
        return self


#: Header format -> model class of every fine-tuned kind (filled by :func:`finetuned_kind`).
KINDS: Dict[str, type] = {}


def finetuned_kind(cls: type) -> type:
    """Class decorator: ``cls`` is a fine-tuned model kind that :func:`load_finetuned` can rebuild."""
    KINDS[cls.FORMAT] = cls
    return cls


def save_finetuned(model: nn.Module, path: str | os.PathLike, metadata: Optional[Dict[str, Any]] = None) -> Path:
    """Write a fine-tuned model to a ``.safetensors`` file, atomically: its weights and a JSON header (its kind, the
    backbone's registry name and config, the model's config, ``metadata``: dataset, encoder, seed, ...)."""
    from safetensors.torch import save_file

    from geossl import __version__

    backbone = model.backbone
    header = {"format": model.FORMAT, "format_version": model.FORMAT_VERSION, "domain": "scene",
              "backbone": type(backbone).registry_name, "backbone_config": backbone.config(), "model": model.config(),
              "geossl_version": __version__, "metadata": dict(metadata or {})}
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={"geossl": json.dumps(header, default=str)}))


def load_finetuned(path: str | os.PathLike, kind: Optional[type] = None, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a model written by :func:`save_finetuned` (eval mode), of the kind its header names (``kind``: only that
    kind is accepted). The header's sizes are checked against the stored tensors before anything is allocated, as for
    encoders; a file of another kind, an encoder, or a file this geossl cannot read is refused with the reason."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    what = f"a geossl {kind.FORMAT.split('-', 1)[1]}" if kind is not None else "a fine-tuned geossl model"
    if not path.is_file():
        raise CheckpointError(f"Model file {str(path)!r} does not exist.")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
        stored = stored_shapes(path)
        header = json.loads(meta.get("geossl", "{}"))
    except Exception as exc:
        raise CheckpointError(f"Model file {str(path)!r} is not a readable safetensors file ({exc}).") from None
    found = header.get("format") if isinstance(header, dict) else None
    cls = KINDS.get(found) if isinstance(found, str) else None
    if cls is None or (kind is not None and cls is not kind):
        raise CheckpointError(f"{str(path)!r} is not {what} (its header says {found!r}; fine-tuned kinds: {', '.join(sorted(KINDS))}); "
                              "encoders are loaded with geossl.load_encoder.")
    if header.get("format_version") != cls.FORMAT_VERSION:
        raise CheckpointError(f"{str(path)!r} uses {found} format version {header.get('format_version')}; this geossl reads "
                              f"{cls.FORMAT_VERSION}.")
    try:
        backbone_cls = ENCODERS.get(str(header["backbone"]), domain="scene")
        config, own = dict(header["backbone_config"]), dict(header["model"] if "model" in header else header["detector"])
        check_sizes(path, stored, config, dict(own.get("head_config", {})))
        with torch.device("meta"):
            shell = cls(backbone_cls(**config), **own)
    except CheckpointError:
        raise
    except (GeosslError, TypeError, ValueError, KeyError, RuntimeError) as exc:
        raise CheckpointError(f"The header of {str(path)!r} does not describe {what} this geossl can build: {exc}") from None
    check_shapes(path, stored, shell, f"the {found.split('-', 1)[1]} its header describes")
    model = cls(backbone_cls(**config), **own)
    model.load_state_dict(load_file(str(path), device=str(map_location)))
    model.pretrained = header.get("metadata", {})
    return model.to(map_location).eval()


def monitor_curve(metrics_csv: Path, unit: str = "step") -> List[Dict[str, float]]:
    """``[{<unit>: at, <monitored metric>: value, ...}]`` from a run's metrics.csv: the validation learning curve at the
    monitored epochs (``unit="epoch"``) or steps (a run measured in optimiser steps). A resumed run logs to a CSV of its
    own (``resumed-<time>/metrics.csv`` beside the first, see :class:`geossl.engine.Engine`): those are read after the
    first, in the order they were written, a later value for the same step replacing an earlier one."""
    import csv

    metrics_csv = Path(metrics_csv)
    files = [metrics_csv, *sorted(metrics_csv.parent.glob(f"resumed-*/{metrics_csv.name}"))]
    rows: Dict[int, Dict[str, float]] = {}
    for path in (f for f in files if f.is_file()):
        with open(path) as fh:
            for row in csv.DictReader(fh):
                values = {k.split("/", 1)[1]: float(v) for k, v in row.items() if k and k.startswith("monitor/") and v not in ("", None)}
                if values:
                    at = int(float(row["step"]))
                    rows[at] = {unit: at, **values}
    return [rows[at] for at in sorted(rows)]


def head_settings(cfg, group: str, exclude=("in_dim", "num_classes")) -> Dict[str, Any]:
    """The validated ``cfg[group]`` section (``detection``, ``segmentation``) without its name: the head's arguments
    (its constructor's, less ``exclude``) and the model's ``freeze_backbone`` and ``backbone_lr`` (required: their one
    default is configs/<group>/<head>.yaml)."""
    from geossl.config import schema_from_signature, validate
    from geossl.registry import HEADS

    head = HEADS.get(cfg[group].get("name"), domain="scene")
    schema = schema_from_signature(head, exclude=exclude, extra={"name": None, "freeze_backbone": "???", "backbone_lr": "???"})
    out = validate(cfg[group], schema, group)
    out.pop("name")
    out["freeze_backbone"], out["backbone_lr"] = bool(out["freeze_backbone"]), float(out["backbone_lr"])
    return out
