"""A point-patch transformer: the encoder of Point-MAE (Pang, Wang, Tay, Liu, Tian, Yuan, "Masked
Autoencoders for Point Cloud Self-supervised Learning", ECCV 2022), the point branch of PiMAE and of
Gaussian2Scene as it is described.

Farthest-point-sampled centres, k-nearest-neighbour patches normalised to their centre, Point-MAE's
mini-PointNet tokeniser (a shared MLP, max-pooling, the pooled feature concatenated back to every
point, a second MLP, max-pooling), a learned embedding of the centre positions added before every
transformer block, and a final layer norm. A masked autoencoder hands :meth:`transform` the visible
tokens only; per-point features interpolate the patch features of the three nearest centres
(inverse squared distance weights, PointNet++'s feature propagation).
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
from torch import Tensor, nn

from geossl.encoder import Encoder
from geossl.errors import ConfigError
from geossl.ops.geometry import farthest_point_sampling, knn
from geossl.points import PointBatch
from geossl.registry import ENCODERS


class MiniPointNet(nn.Module):
    """Point-MAE's patch tokeniser: ``[M, K, C]`` point rows -> ``[M, out_dim]`` tokens.

    Args:
        in_dim: per-point input width (3 coordinates relative to the centre, plus features).
        hidden: width of the first MLP's hidden layer (Point-MAE: 128); the first MLP ends at
            ``2 * hidden``, the second runs ``4 * hidden -> 4 * hidden -> out_dim``.
        out_dim: token width.
    """

    def __init__(self, in_dim: int, hidden: int, out_dim: int):
        super().__init__()
        self.first = nn.Sequential(nn.Linear(in_dim, hidden), _RowNorm(hidden), nn.ReLU(), nn.Linear(hidden, 2 * hidden))
        self.second = nn.Sequential(nn.Linear(4 * hidden, 4 * hidden), _RowNorm(4 * hidden), nn.ReLU(), nn.Linear(4 * hidden, out_dim))

    def forward(self, x: Tensor) -> Tensor:
        f = self.first(x)  # [M, K, 2h]
        pooled = f.max(1, keepdim=True).values
        f = self.second(torch.cat([pooled.expand_as(f), f], -1))
        return f.max(1).values


class _RowNorm(nn.BatchNorm1d):
    """Batch norm over the channels of ``[..., C]`` rows (Point-MAE's BatchNorm1d on its Conv1d layout)."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.reshape(-1, x.shape[-1])).reshape(x.shape)


def is_patch_encoder(encoder_cls) -> bool:
    """Whether an encoder class groups points into patches and encodes token subsets (what masked patch methods need)."""
    return all(hasattr(encoder_cls, a) for a in ("group", "tokenise", "transform"))


def require_patch_encoder(encoder_cls, method: str) -> None:
    """Refuse a non-patch encoder for ``scene=<method>``, naming the encoder that works."""
    if not is_patch_encoder(encoder_cls):
        name = getattr(encoder_cls, "registry_name", encoder_cls.__name__)
        raise ConfigError(f"scene={method} needs a patch encoder (encoder=point_patch_transformer); encoder={name} does not "
                          "group points into patches.")


@ENCODERS.register("point_patch_transformer", domain="scene")
class PointPatchTransformer(Encoder):
    """Per-patch and per-point features of a :class:`~geossl.points.PointBatch`.

    Args:
        in_dim: point feature width (colours: 3); the tokeniser sees ``[xyz - centre, feature]``.
        centres: patches per scene (farthest-point sampling; Point-MAE: 64).
        patch: points per patch, the nearest neighbours of each centre (Point-MAE: 32). A scene needs at
            least ``max(centres, patch)`` points; point budgets are checked against ``centres * patch``.
        dim: token width (Point-MAE: 384).
        depth: transformer blocks (Point-MAE: 12).
        heads: attention heads (Point-MAE: 6).
        tokeniser: hidden width of the mini-PointNet (Point-MAE: 128).
    """

    def __init__(self, in_dim: int = 3, centres: int = 64, patch: int = 32, dim: int = 128, depth: int = 4, heads: int = 4,
                 tokeniser: int = 32):
        super().__init__()
        if min(in_dim, centres, patch, dim, depth, heads, tokeniser) < 1 or dim % heads:
            raise ConfigError(f"point_patch_transformer needs positive sizes and encoder.dim divisible by encoder.heads; got "
                              f"in_dim={in_dim}, centres={centres}, patch={patch}, dim={dim}, depth={depth}, heads={heads}, "
                              f"tokeniser={tokeniser}.")
        self.in_dim, self.centres, self.patch, self.out_dim = in_dim, centres, patch, dim
        self.tokeniser = MiniPointNet(3 + in_dim, tokeniser, dim)
        self.pos = nn.Sequential(nn.Linear(3, 128), nn.GELU(), nn.Linear(128, dim))
        self.blocks = nn.ModuleList([nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout=0.0, activation="gelu",
                                                                batch_first=True, norm_first=True) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)

    @property
    def min_points(self) -> int:
        """Points a scene must have: the patches' points, ``centres * patch``."""
        return self.centres * self.patch

    def group(self, batch: PointBatch) -> Tuple[Tensor, Tensor]:
        """``(centres [B, G, 3], neighbours [B, G, K])``: farthest-point-sampled centres per scene and the
        global indices (into ``batch.coord``) of each centre's ``patch`` nearest points."""
        slices = batch.scene_slices()
        sizes = [s.stop - s.start for s in slices]
        if min(sizes) < max(self.centres, self.patch):
            raise ConfigError(f"A scene has {min(sizes)} points; the patch transformer needs at least "
                              f"max(centres={self.centres}, patch={self.patch}).")
        n = max(sizes)
        # Pad every scene to n points: with copies of its first point for sampling (never the farthest),
        # far away for the neighbour search (never a neighbour).
        fps_in = torch.stack([torch.cat([batch.coord[s], batch.coord[s][:1].expand(n - (s.stop - s.start), 3)]) for s in slices])
        far = fps_in.clone()
        for b, s in enumerate(slices):
            far[b, s.stop - s.start:] = 1e6
        with torch.no_grad():
            idx = farthest_point_sampling(fps_in, self.centres)
            centres = torch.gather(fps_in, 1, idx[..., None].expand(-1, -1, 3))
            nb = knn(centres, far, self.patch)[1]
        starts = torch.tensor([s.start for s in slices], device=nb.device)
        return centres, nb + starts[:, None, None]

    def tokenise(self, batch: PointBatch, centres: Tensor, neighbours: Tensor) -> Tensor:
        """Tokens ``[B, G, dim]`` of the patches (their points relative to the centre, and features)."""
        local = torch.cat([batch.coord[neighbours] - centres[:, :, None], batch.feat[neighbours]], -1)  # [B, G, K, 3 + C]
        B, G = centres.shape[:2]
        return self.tokeniser(local.reshape(B * G, self.patch, -1)).reshape(B, G, -1)

    def transform(self, tokens: Tensor, centres: Tensor) -> Tensor:
        """The transformer over ``tokens [B, G', dim]`` at ``centres [B, G', 3]`` (all patches, or the visible
        ones of a masked autoencoder), position embedding added before every block, then the final norm."""
        pos = self.pos(centres)
        x = tokens
        for block in self.blocks:
            x = block(x + pos)
        return self.norm(x)

    def encode(self, batch: PointBatch, visible: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """``centres [B, G, 3]``, ``neighbours [B, G, K]`` and ``patch_features`` of every patch, or of the
        visible ones (``visible``: ``[B, G]`` bool with as many True per scene: ``[B, G_visible, dim]``)."""
        centres, nb = self.group(batch)
        tokens = self.tokenise(batch, centres, nb)
        if visible is None:
            return {"centres": centres, "neighbours": nb, "patch_features": self.transform(tokens, centres)}
        B = len(centres)
        feats = self.transform(tokens[visible].reshape(B, -1, tokens.shape[-1]), centres[visible].reshape(B, -1, 3))
        return {"centres": centres, "neighbours": nb, "patch_features": feats}

    @staticmethod
    def interpolate(batch: PointBatch, centres: Tensor, features: Tensor, k: int = 3) -> Tensor:
        """Per-point features ``[N, dim]``: the features of each point's ``k`` nearest centres of its scene,
        weighted by inverse squared distance (PointNet++'s feature propagation)."""
        out = []
        for b, s in enumerate(batch.scene_slices()):
            d, i = knn(batch.coord[s], centres[b], min(k, centres.shape[1]))
            w = 1.0 / d.clamp_min(1e-8)
            out.append((features[b][i] * (w / w.sum(1, keepdim=True))[..., None]).sum(1))
        return torch.cat(out)

    def forward(self, batch: PointBatch) -> Tensor:
        enc = self.encode(batch)
        return self.interpolate(batch, enc["centres"], enc["patch_features"])
