"""A point-patch transformer (Point-MAE: Pang et al., ECCV 2022; Point-M2AE / PiMAE lineage, as the
point branch of Gaussian2Scene is described): farthest-point-sampled centres, k-nearest-neighbour
patches, a small PointNet tokeniser, a positional embedding of the centres, transformer blocks.
"""

from __future__ import annotations

from typing import Dict

import torch
from torch import Tensor, nn

from geossl.encoder import Encoder
from geossl.errors import ConfigError
from geossl.ops.geometry import farthest_point_sampling, knn
from geossl.registry import ENCODERS


@ENCODERS.register("point_patch_transformer")
class PointPatchTransformer(Encoder):
    """Per-patch and per-point features for a :class:`PointBatch`.

    Args:
        in_dim: point feature width (colours: 3); the tokeniser sees ``[xyz - centre, feature]``.
        centres: patches per scene (farthest-point sampling).
        patch: points per patch (nearest neighbours of each centre).
        dim: token width. depth: transformer blocks. heads: attention heads.
    """

    def __init__(self, in_dim: int = 3, centres: int = 64, patch: int = 32, dim: int = 128, depth: int = 4, heads: int = 4):
        super().__init__()
        self.centres, self.patch = centres, patch
        self.tokeniser = nn.Sequential(nn.Linear(3 + in_dim, dim // 2), nn.GELU(), nn.Linear(dim // 2, dim))
        self.pos = nn.Sequential(nn.Linear(3, dim), nn.GELU(), nn.Linear(dim, dim))
        layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout=0.0, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.out_dim = dim

    def patches(self, batch):
        """``(centres [B, G, 3], neighbours [B, G, K] global point indices)``."""
        cs, nb, start = [], [], 0
        for end in batch.offset.tolist():
            pts = batch.coord[start:end]
            if len(pts) < max(self.centres, self.patch):
                raise ConfigError(f"A scene has {len(pts)} points; the patch transformer needs at least "
                                  f"max(centres={self.centres}, patch={self.patch}).")
            c = pts[farthest_point_sampling(pts, self.centres)]
            cs.append(c)
            nb.append(knn(c, pts, self.patch)[1] + start)
            start = end
        return torch.stack(cs), torch.stack(nb)

    def encode(self, batch) -> Dict[str, Tensor]:
        """``centres [B, G, 3]``, ``patch_features [B, G, dim]`` and ``point_features [N, dim]``
        (each point takes the feature of its nearest centre)."""
        centres, nb = self.patches(batch)
        local = torch.cat([batch.coord[nb] - centres[:, :, None], batch.feat[nb]], -1)  # [B, G, K, 3 + C]
        tokens = self.tokeniser(local).max(2).values + self.pos(centres)
        feats = self.norm(self.blocks(tokens))
        per_scene, start = [], 0
        for s, end in enumerate(batch.offset.tolist()):
            owner = knn(batch.coord[start:end], centres[s], 1)[1][:, 0]
            per_scene.append(feats[s, owner])
            start = end
        point_feats = torch.cat(per_scene)
        return {"centres": centres, "patch_features": feats, "point_features": point_feats}

    def forward(self, batch) -> Tensor:
        return self.encode(batch)["point_features"]
