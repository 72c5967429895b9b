"""Point-MAE: masked autoencoding of point patches.

Pang, Wang, Tay, Liu, Tian, Yuan. "Masked Autoencoders for Point Cloud Self-supervised Learning",
ECCV 2022. Reference code: Pang-Yatian/Point-MAE (``models/Point_MAE.py``). In Gaussian2Scene this is
the point branch of the first stage.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

from geossl.encoder import Encoder
from geossl.errors import ConfigError
from geossl.method import Method
from geossl.ops.geometry import chamfer_distance
from geossl.points import PointBatch
from geossl.registry import METHODS

from geossl.pointcloud.encoders.patch_transformer import require_patch_encoder


@METHODS.register("pointmae", domain="scene")
class PointMAE(Method):
    """Point-MAE on a patch encoder (``encoder=point_patch_transformer``).

    One step: group every scene into farthest-point-sampled centres with their ``patch`` nearest
    points (normalised to the centre), tokenise every patch, hide a random ``mask_ratio`` share of the
    patches of each scene (``int(mask_ratio * centres)``, as the reference), run the encoder on the visible
    tokens only, then a light decoder on the visible codes followed by a shared learned mask token per
    hidden patch (each with the embedding of its centre added before every block); a linear head turns
    each mask token into ``patch`` points, and the loss is the Chamfer distance (squared L2, both
    directions, the reference's ``ChamferDistanceL2``) between the predicted and the true points of the
    hidden patches.

    Args:
        encoder: a patch encoder (:class:`~geossl.pointcloud.encoders.PointPatchTransformer`).
        in_dim: point feature width (given by the run; the tokeniser already knows it).
        mask_ratio: share of patches hidden per scene (Point-MAE: 0.6).
        decoder_depth: decoder transformer blocks (2, configs/scene/pointmae.yaml; Point-MAE: 4, model=paper).
        decoder_heads: decoder attention heads (4; Point-MAE: 6, model=paper).
    """

    def __init__(self, encoder: Encoder, in_dim: int, mask_ratio: float = 0.6, decoder_depth: int = 2, decoder_heads: int = 4):
        super().__init__()
        self.check_encoder(type(encoder))
        if not 0.0 < mask_ratio < 1.0 or int(mask_ratio * encoder.centres) < 1:
            raise ConfigError(f"scene.mask_ratio must hide at least one of encoder.centres={encoder.centres} patches and leave "
                              f"one visible, got {mask_ratio}.")
        dim = encoder.out_dim
        if decoder_depth < 1 or dim % decoder_heads:
            raise ConfigError(f"scene.decoder_depth must be >= 1 and encoder.dim={dim} divisible by scene.decoder_heads={decoder_heads}.")
        self.encoder, self.mask_ratio = encoder, mask_ratio
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        self.decoder_pos = nn.Sequential(nn.Linear(3, 128), nn.GELU(), nn.Linear(128, dim))
        self.decoder = nn.ModuleList([nn.TransformerEncoderLayer(dim, decoder_heads, 4 * dim, dropout=0.0, activation="gelu",
                                                                 batch_first=True, norm_first=True) for _ in range(decoder_depth)])
        self.decoder_norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 3 * encoder.patch)

    @staticmethod
    def check_encoder(encoder_cls) -> None:
        """Point-MAE needs an encoder that groups points into patches and encodes visible tokens alone."""
        require_patch_encoder(encoder_cls, "pointmae")

    def random_mask(self, scenes: int, generator: Optional[torch.Generator] = None, device=None) -> Tensor:
        """``[scenes, centres]`` bool, True for the ``int(mask_ratio * centres)`` hidden patches of each scene."""
        G = self.encoder.centres
        hidden = int(self.mask_ratio * G)
        order = torch.rand(scenes, G, generator=generator, device="cpu").argsort(1).to(device)  # CPU draws: same masks on any device
        mask = torch.zeros(scenes, G, dtype=torch.bool, device=device)
        return mask.scatter_(1, order[:, :hidden], True)

    def _predict(self, batch: PointBatch, mask: Tensor) -> Tuple[Tensor, Tensor, Dict[str, Tensor]]:
        """``(predicted points [P, K, 3], true points [P, K, 3])`` of the ``P`` hidden patches (relative to their
        centres), and the grouping."""
        enc = self.encoder
        centres, nb = enc.group(batch)
        local = batch.coord[nb] - centres[:, :, None]  # [B, G, K, 3]
        tokens = enc.tokenise(batch, centres, nb)
        B, G, D = tokens.shape
        visible = ~mask
        codes = enc.transform(tokens[visible].reshape(B, -1, D), centres[visible].reshape(B, -1, 3))
        hidden = int(mask[0].sum())
        x = torch.cat([codes, self.mask_token.expand(B, hidden, D)], 1)
        pos = self.decoder_pos(torch.cat([centres[visible].reshape(B, -1, 3), centres[mask].reshape(B, hidden, 3)], 1))
        for block in self.decoder:
            x = block(x + pos)
        x = self.decoder_norm(x)
        pred = self.head(x[:, -hidden:]).reshape(B * hidden, enc.patch, 3)
        return pred, local[mask].reshape(B * hidden, enc.patch, 3), {"centres": centres, "local": local}

    def forward(self, batch: PointBatch) -> Dict[str, Tensor]:
        """``{"loss": Chamfer distance of the hidden patches, "chamfer": the same, detached}``."""
        mask = self.random_mask(batch.batch_size, device=batch.coord.device)
        pred, true, _ = self._predict(batch, mask)
        loss = chamfer_distance(pred, true)
        return {"loss": loss, "chamfer": loss.detach()}

    @torch.no_grad()
    def held_out_metrics(self, batch: PointBatch, generator: torch.Generator) -> Dict[str, float]:
        """On a held-out batch with a seeded mask: the model's Chamfer distance of the hidden patches, and that
        of the baseline that copies, for each hidden patch, the nearest visible patch (by centre distance),
        translated to the hidden patch's centre."""
        mask = self.random_mask(batch.batch_size, generator, batch.coord.device)
        pred, true, g = self._predict(batch, mask)
        centres, local = g["centres"], g["local"]
        copies: List[Tensor] = []
        for b in range(batch.batch_size):
            vis, hid = (~mask[b]).nonzero()[:, 0], mask[b].nonzero()[:, 0]
            nearest = torch.cdist(centres[b, hid], centres[b, vis]).argmin(1)
            copies.append(local[b, vis[nearest]])
        return {"chamfer": float(chamfer_distance(pred, true)), "chamfer_copy": float(chamfer_distance(torch.cat(copies), true))}

    def param_groups(self) -> List[Dict]:
        """AdamW groups as the reference's ``add_weight_decay``: no weight decay on biases, norms and tokens
        (every parameter of fewer than two dimensions, and the mask token)."""
        decay, plain = [], []
        for name, p in self.named_parameters():
            (plain if p.ndim < 2 or name.endswith("mask_token") else decay).append(p)
        return [{"params": decay}, {"params": plain, "weight_decay": 0.0}]
