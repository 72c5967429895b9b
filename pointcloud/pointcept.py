"""Pointcept and PonderV2 SpUNet checkpoints as geossl encoders.

Pointcept's ``SpUNet-v1m1`` (``pointcept/models/sparse_unet/spconv_unet_v1m1_base.py``, Wu et al.), which PonderV2
(Zhu et al., 2023) pretrains, is geossl's :class:`~geossl.pointcloud.encoders.spunet.SpUNet` with
``variant="pointcept"``: the same stem, strided and inverse convolutions and residual blocks, Pointcept's batch norm
(eps 1e-3) and a batch norm after the blocks' 1x1 projection. :func:`load_pointcept` reads a checkpoint with
``torch.load(weights_only=True)``, takes its backbone's state dict (the ``state_dict`` entry of a training checkpoint,
prefixes ``module.`` and ``backbone.`` removed), reads the widths and depths from the weights' shapes, and maps every
key onto geossl's, refusing a state dict with keys that do not fit (another architecture). Two layout differences are
converted: spconv kernels are indexed (x, y, z) in Pointcept and (z, y, x) in geossl (the kernel's spatial axes are
transposed), and a 1x1 submanifold convolution is a linear map of the features (spconv multiplies by its weight
buffer viewed as [in, out], whatever the declared [out, 1, 1, 1, in]; found by the side-by-side check).

``geossl import-pointcept <checkpoint.pth> out=<encoder.safetensors>`` writes the result as a geossl encoder file, which
``geossl finetune ... encoder=<file>`` and ``geossl.load_encoder`` take.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor

from geossl.errors import CheckpointError

#: Pointcept's key patterns (after the prefixes are removed) and where each goes in geossl's SpUNet.
_BN = r"(weight|bias|running_mean|running_var|num_batches_tracked)"
PATTERNS = [
    (re.compile(r"^conv_input\.0\.weight$"), lambda m: "stem.conv.weight"),
    (re.compile(rf"^conv_input\.1\.{_BN}$"), lambda m: f"stem_bn.{m[1]}"),
    (re.compile(r"^down\.(\d)\.0\.weight$"), lambda m: f"down.{m[1]}.conv.weight"),
    (re.compile(rf"^down\.(\d)\.1\.{_BN}$"), lambda m: f"down_bn.{m[1]}.{m[2]}"),
    (re.compile(r"^up\.(\d)\.0\.weight$"), lambda m: f"up.{3 - int(m[1])}.conv.weight"),
    (re.compile(rf"^up\.(\d)\.1\.{_BN}$"), lambda m: f"up_bn.{3 - int(m[1])}.{m[2]}"),
    (re.compile(r"^(enc|dec)\.(\d)\.block(\d+)\.(conv1|conv2)\.weight$"),
     lambda m: f"{m[1]}.{m[2] if m[1] == 'enc' else 3 - int(m[2])}.{m[3]}.{m[4]}.conv.weight"),
    (re.compile(rf"^(enc|dec)\.(\d)\.block(\d+)\.(bn1|bn2)\.{_BN}$"),
     lambda m: f"{m[1]}.{m[2] if m[1] == 'enc' else 3 - int(m[2])}.{m[3]}.{m[4]}.{m[5]}"),
    (re.compile(r"^(enc|dec)\.(\d)\.block(\d+)\.proj\.0\.weight$"),
     lambda m: f"{m[1]}.{m[2] if m[1] == 'enc' else 3 - int(m[2])}.{m[3]}.proj.weight"),
    (re.compile(rf"^(enc|dec)\.(\d)\.block(\d+)\.proj\.1\.{_BN}$"),
     lambda m: f"{m[1]}.{m[2] if m[1] == 'enc' else 3 - int(m[2])}.{m[3]}.proj_bn.{m[4]}"),
    (re.compile(r"^final\.(weight|bias)$"), lambda m: f"head.{m[1]}"),
]


def backbone_state(checkpoint) -> Dict[str, Tensor]:
    """The backbone's tensors of a Pointcept/PonderV2 checkpoint (a training checkpoint's ``state_dict`` or a bare state
    dict), with the ``module.`` (DDP) and ``backbone.`` (a segmentor's) prefixes removed."""
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not state or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()):
        raise CheckpointError("not a Pointcept checkpoint: expected a dict of tensors (or one under 'state_dict').")
    out = {}
    for key, value in state.items():
        key = key[len("module."):] if key.startswith("module.") else key
        if key.startswith("backbone."):
            out[key[len("backbone."):]] = value
        elif not any(key.startswith(p) for p in ("seg_head.", "criteria.", "decoder.", "head.")):
            out[key] = value  # a bare backbone state dict (heads of a segmentor are left out)
    return out


def _shapes(state: Dict[str, Tensor]) -> Tuple[int, int, List[int], List[int], Optional[int]]:
    """``(in_dim, base, channels, layers, out_dim)`` read from the weights."""
    stem = state["conv_input.0.weight"]  # [base, k, k, k, in]
    channels = [int(state[f"down.{s}.0.weight"].shape[0]) for s in range(4)]
    channels += [int(state[f"up.{s}.0.weight"].shape[0]) for s in (3, 2, 1, 0)]
    layers = [len({k.split(".")[2] for k in state if k.startswith(f"enc.{s}.block")}) for s in range(4)]
    layers += [len({k.split(".")[2] for k in state if k.startswith(f"dec.{s}.block")}) for s in (3, 2, 1, 0)]
    out_dim = int(state["final.weight"].shape[0]) if "final.weight" in state else None
    return int(stem.shape[-1]), int(stem.shape[0]), channels, layers, out_dim


def load_pointcept(path: str | Path, voxel_size: float = 0.02):
    """A geossl ``spunet`` (``variant="pointcept"``) holding the weights of a Pointcept ``SpUNet-v1m1`` / PonderV2 SpUNet
    checkpoint, in eval mode.

    Args:
        path: the ``.pth`` file (read with ``weights_only=True``: a pickle that would run code is refused).
        voxel_size: the grid the checkpoint was trained on (Pointcept's ScanNet configs: 0.02 m).
    """
    from geossl.pointcloud.encoders.spunet import SpUNet

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"No checkpoint at {path}.")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError, EOFError ... on foreign or damaged files
        raise CheckpointError(f"{path} cannot be read as a weights-only checkpoint ({type(e).__name__}): it is damaged, "
                              "not a torch checkpoint, or holds Python objects that a safe load refuses.") from None
    state = backbone_state(checkpoint)
    mapped, unknown = {}, []
    for key, value in state.items():
        for pattern, target in PATTERNS:
            m = pattern.match(key)
            if m:
                mapped[target(m)] = value
                break
        else:
            unknown.append(key)
    if unknown or "conv_input.0.weight" not in state:
        raise CheckpointError(f"{path} is not a Pointcept SpUNet-v1m1 / PonderV2 SpUNet checkpoint: "
                              f"{len(unknown)} key(s) fit no SpUNet weight ({', '.join(unknown[:5])}"
                              f"{' ...' if len(unknown) > 5 else ''}).")
    try:
        in_dim, base, channels, layers, out_dim = _shapes(state)
    except KeyError as e:
        raise CheckpointError(f"{path}: a SpUNet-v1m1 checkpoint without {e.args[0]!r}.") from None
    encoder = SpUNet(in_dim=in_dim, voxel_size=voxel_size, channels=channels, layers=layers, base=base, out_dim=out_dim,
                     variant="pointcept")
    for key, value in list(mapped.items()):
        if value.dim() == 5 and key.endswith(("proj.weight", "head.weight")):
            # a 1x1 submanifold conv: spconv (2.x, FILTER_HWIO False) multiplies the features by its [out, 1, 1, 1, in]
            # buffer viewed as [in, out], on every device; the same product as a linear layer's weight:
            value = value.reshape(value.shape[-1], value.shape[0]).t()
        elif value.dim() == 5:  # spconv kernels: [out, x, y, z, in] in Pointcept, [out, z, y, x, in] here
            value = value.permute(0, 3, 2, 1, 4)
        mapped[key] = value.contiguous()
    own = encoder.state_dict()
    wrong = [k for k in own if k not in mapped or own[k].shape != mapped[k].shape]
    if wrong:
        k = wrong[0]
        raise CheckpointError(f"{path} does not fit a SpUNet of widths {channels} and depths {layers}: {k} "
                              f"{'is missing' if k not in mapped else f'has shape {tuple(mapped[k].shape)}, expected {tuple(own[k].shape)}'}"
                              f" ({len(wrong)} such key(s)).")
    encoder.load_state_dict(mapped, strict=True)
    encoder.pretrained = {"method": "pointcept", "source": str(path), "format": "Pointcept SpUNet-v1m1"}
    return encoder.eval()
