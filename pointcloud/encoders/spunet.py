"""A sparse-convolution UNet over voxelised point clouds (the SpUNet of Pointcept, as PonderV2 uses
it: Zhu et al., "PonderV2", 2023; Choy et al., "4D Spatio-Temporal ConvNets", CVPR 2019).

The batch is voxelised (mean features per voxel), a 5x5x5 submanifold stem lifts it to ``base``
channels, four encoder stages each halve the resolution
(2x2x2 strided conv) and apply residual blocks, four decoder stages undo them (inverse conv,
concatenation with the skip, residual blocks), and every point takes its voxel's final feature.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from geossl.encoder import Encoder
from geossl.errors import ConfigError
from geossl.ops.sparse import SparseConv3d, sparse_tensor
from geossl.registry import ENCODERS

#: Channel and depth presets: PonderV2's SpUNet, and a small one for CPUs.
PRESETS = {
    "ponderv2": {"base": 32, "channels": [32, 64, 128, 256, 256, 128, 96, 96], "layers": [2, 3, 4, 6, 2, 2, 2, 2]},
    "small": {"base": 16, "channels": [16, 32, 64, 64, 64, 32, 32, 32], "layers": [1, 1, 1, 1, 1, 1, 1, 1]},
}


def _bn(x, norm: nn.Module):
    return x.replace_feature(norm(x.features))


#: The variants: geossl's own block, and Pointcept's ``SpUNet-v1m1`` exactly (its batch norm's eps 1e-3 and momentum
#: 0.01, a batch norm after the 1x1 projection), so that Pointcept and PonderV2 checkpoints load
#: (:func:`geossl.pointcloud.pointcept.load_pointcept`).
VARIANTS = ("geossl", "pointcept")


def _norm(variant: str, width: int) -> nn.BatchNorm1d:
    return nn.BatchNorm1d(width, eps=1e-3, momentum=0.01) if variant == "pointcept" else nn.BatchNorm1d(width)


class _Block(nn.Module):
    """Residual block of two 3x3x3 submanifold convs with batch norm (a 1x1 projection when the
    width changes; in the Pointcept variant followed by a batch norm, as its ``BasicBlock``)."""

    def __init__(self, cin: int, cout: int, key: str, variant: str = "geossl"):
        super().__init__()
        self.conv1, self.bn1 = SparseConv3d(cin, cout, 3, padding=1, subm=True, indice_key=key), _norm(variant, cout)
        self.conv2, self.bn2 = SparseConv3d(cout, cout, 3, padding=1, subm=True, indice_key=key), _norm(variant, cout)
        self.proj = nn.Linear(cin, cout, bias=False) if cin != cout else None
        self.proj_bn = _norm(variant, cout) if cin != cout and variant == "pointcept" else None

    def forward(self, x):
        skip = x.features if self.proj is None else self.proj(x.features)
        if self.proj_bn is not None:
            skip = self.proj_bn(skip)
        y = _bn(self.conv1(x), self.bn1)
        y = y.replace_feature(torch.relu(y.features))
        y = _bn(self.conv2(y), self.bn2)
        return y.replace_feature(torch.relu(y.features + skip))


@ENCODERS.register("spunet", domain="scene")
class SpUNet(Encoder):
    """Sparse-conv UNet returning per-point features ``[N, out_dim]`` for a :class:`PointBatch`.

    Args:
        in_dim: point feature width (e.g. 3 for colours).
        voxel_size: voxel edge in metres (0.02 in PonderV2; 0.05 is kinder to CPUs).
        preset: ``ponderv2`` or ``small`` (channels and depths in ``PRESETS``), unless ``channels``
            and ``layers`` (8 each: 4 encoder then 4 decoder stages) and ``base`` are given.
        out_dim: width of the per-point output (a linear head on the last decoder stage; None
            keeps the last stage's width).
        variant: "geossl", or "pointcept": Pointcept's SpUNet-v1m1 block and batch norm exactly (see :data:`VARIANTS`).
    """

    def __init__(self, in_dim: int = 3, voxel_size: float = 0.05, preset: str = "small", channels: Sequence[int] = (),
                 layers: Sequence[int] = (), base: int = 0, out_dim: int | None = None, variant: str = "geossl"):
        super().__init__()
        if preset not in PRESETS:
            raise ConfigError(f"Unknown SpUNet preset {preset!r}. Valid choices: {', '.join(PRESETS)}.")
        if variant not in VARIANTS:
            raise ConfigError(f"Unknown SpUNet variant {variant!r}. Valid choices: {', '.join(VARIANTS)}.")
        self.variant = variant
        p = PRESETS[preset]
        channels, layers, base = list(channels or p["channels"]), list(layers or p["layers"]), base or p["base"]
        if len(channels) != 8 or len(layers) != 8:
            raise ConfigError(f"SpUNet needs 8 channels and 8 layer counts (4 encoder + 4 decoder stages), got {channels} and {layers}.")
        self.voxel_size = voxel_size
        self.stem = SparseConv3d(in_dim, base, 5, padding=2, subm=True, indice_key="stem")
        self.stem_bn = _norm(variant, base)
        self.down, self.down_bn, self.enc = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        width, skips = base, [base]
        for s in range(4):
            self.down.append(SparseConv3d(width, channels[s], 2, stride=2, indice_key=f"down{s}"))
            self.down_bn.append(_norm(variant, channels[s]))
            self.enc.append(nn.Sequential(*[_Block(channels[s], channels[s], f"subm{s + 1}", variant) for _ in range(layers[s])]))
            width = channels[s]
            skips.append(width)
        self.up, self.up_bn, self.dec = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for s in range(4):
            cout, level = channels[4 + s], 3 - s
            self.up.append(SparseConv3d(width, cout, 2, inverse=True, indice_key=f"down{level}"))
            self.up_bn.append(_norm(variant, cout))
            blocks = [_Block(cout + skips[level], cout, f"subm{level}", variant)] + \
                [_Block(cout, cout, f"subm{level}", variant) for _ in range(layers[4 + s] - 1)]
            self.dec.append(nn.Sequential(*blocks))
            width = cout
        self.head = nn.Linear(width, out_dim) if out_dim else None
        self.out_dim = out_dim or width

    def forward(self, batch) -> Tensor:
        idx, feats, inverse, shape = batch.voxelize(self.voxel_size)
        shape = [((s + 15) // 16) * 16 for s in shape]  # four halvings need a multiple of 16
        x = sparse_tensor(feats, idx, shape, batch.batch_size)
        x = _bn(self.stem(x), self.stem_bn)
        x = x.replace_feature(torch.relu(x.features))
        skips = [x]
        for down, bn, enc in zip(self.down, self.down_bn, self.enc):
            x = _bn(down(x), bn)
            x = enc(x.replace_feature(torch.relu(x.features)))
            skips.append(x)
        skips.pop()
        for up, bn, dec in zip(self.up, self.up_bn, self.dec):
            x = _bn(up(x), bn)
            skip = skips.pop()
            x = dec(x.replace_feature(torch.cat([torch.relu(x.features), skip.features], 1)))
        out = x.features[inverse]
        return self.head(out) if self.head is not None else out
