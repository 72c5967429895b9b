"""PiMAE: a dual-branch masked autoencoder over a scene's point patches and the patches of its posed colour views.

Chen, Li, Lin, Zhou, Wang, Sun. "PiMAE: Point Cloud and Image Interactive Masked Autoencoders for 3D Object
Detection", CVPR 2023 (reference code: BLVLab/PiMAE). Gaussian2Scene (Liu et al., arXiv 2506.08777) describes its
first stage as this model: point and image tokens aligned by projection, masked complementarily, one shared encoder
and decoder, Chamfer loss on the hidden point patches and MSE on the hidden image patches.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geossl.encoder import Encoder
from geossl.errors import ConfigError
from geossl.method import Method
from geossl.ops.geometry import chamfer_distance
from geossl.points import PointBatch
from geossl.registry import METHODS

from geossl.pointcloud.crossmodal import complementary_masks, image_patch_of_points, patch_grid
from geossl.pointcloud.datasets import datasets_with
from geossl.pointcloud.encoders.patch_transformer import require_patch_encoder


def sincos_2d(cols: int, rows: int, dim: int) -> Tensor:
    """MAE's fixed 2D sine-cosine position embedding of a ``rows`` x ``cols`` grid: ``[rows * cols, dim]`` (row-major);
    half the channels encode the column, half the row."""
    if dim % 4:
        raise ConfigError(f"A 2D sine-cosine embedding needs a width divisible by 4; got {dim}.")
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim // 4))
    r, c = torch.meshgrid(torch.arange(rows, dtype=torch.float64), torch.arange(cols, dtype=torch.float64), indexing="ij")
    parts = [f(x.reshape(-1, 1) * omega) for x in (c, r) for f in (torch.sin, torch.cos)]
    return torch.cat(parts, 1).float()


def image_patches(color: Tensor, patch: int) -> Tensor:
    """``[..., H, W, 3]`` images -> ``[..., P, patch * patch * 3]`` row-major patches of the :func:`patch_grid`."""
    *lead, H, W, _ = color.shape
    cols, rows = patch_grid(W, H, patch)
    x = color[..., : rows * patch, : cols * patch, :].reshape(*lead, rows, patch, cols, patch, 3)
    x = x.movedim(-4, -3)  # [..., rows, cols, patch, patch, 3]
    return x.reshape(*lead, rows * cols, patch * patch * 3)


@METHODS.register("pimae", domain="scene")
class PiMAE(Method):
    """Dual-branch masked autoencoding on a patch encoder (``encoder=point_patch_transformer``) and the batch's views.

    One step, per scene: the encoder's patches (farthest-point centres, nearest-neighbour points, mini-PointNet
    tokens) and the ``patch`` x ``patch`` patches of each posed view (a linear embedding of their pixels, MAE-style);
    every patch centre is projected into every view (:func:`~geossl.pointcloud.crossmodal.image_patch_of_points`)
    and the masks are complementary (:func:`~geossl.pointcloud.crossmodal.complementary_masks`: no region visible
    in both modalities). The encoder's transformer blocks run on the visible tokens of both modalities together:
    point tokens carry the encoder's 3D position embedding of their centre, image tokens a fixed 2D sine-cosine
    embedding of their grid cell, each modality a learned embedding. A light shared decoder takes the visible codes
    and a mask token per hidden token (decoder position embeddings of the same kinds); a linear head per modality
    predicts the hidden point patches' points (relative to their centre) and the hidden image patches' pixels,
    normalised per patch (MAE's ``norm_pix_loss``). Loss ``point_weight * Chamfer + image_weight * MSE``.

    Args:
        encoder: a patch encoder (:class:`~geossl.pointcloud.encoders.PointPatchTransformer`).
        in_dim: point feature width (given by the run).
        mask_ratio: share of hidden tokens per modality (PiMAE: 0.6).
        image_patch: image patch size in pixels.
        decoder_depth, decoder_heads: the shared decoder's blocks and heads.
        point_weight, image_weight: weights of the Chamfer and image losses.
    """

    def __init__(self, encoder: Encoder, in_dim: int, mask_ratio: float = 0.6, image_patch: int = 16, decoder_depth: int = 2,
                 decoder_heads: int = 4, point_weight: float = 1.0, image_weight: float = 1.0):
        super().__init__()
        self.check_encoder(type(encoder))
        if not 0.0 < mask_ratio < 1.0 or int(mask_ratio * encoder.centres) < 1:
            raise ConfigError(f"mask_ratio must hide at least one of encoder.centres={encoder.centres} patches and leave one "
                              f"visible; got {mask_ratio}.")
        dim = encoder.out_dim
        if decoder_depth < 1 or dim % decoder_heads or dim % 4 or image_patch < 1 or min(point_weight, image_weight) < 0:
            raise ConfigError(f"PiMAE needs decoder_depth >= 1, encoder.dim={dim} divisible by decoder_heads={decoder_heads} and "
                              f"by 4, image_patch >= 1 and non-negative loss weights.")
        self.encoder, self.mask_ratio, self.image_patch = encoder, mask_ratio, image_patch
        self.point_weight, self.image_weight = point_weight, image_weight
        self.image_embed = nn.Linear(3 * image_patch * image_patch, dim)
        self.modality = nn.Parameter(torch.zeros(2, dim))  # 0: points, 1: image
        self.mask_token = nn.Parameter(torch.zeros(2, dim))
        nn.init.trunc_normal_(self.modality, std=0.02)
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        self.decoder_pos = nn.Sequential(nn.Linear(3, 128), nn.GELU(), nn.Linear(128, dim))
        self.decoder_image_pos = nn.Linear(dim, dim)
        self.decoder = nn.ModuleList([nn.TransformerEncoderLayer(dim, decoder_heads, 4 * dim, dropout=0.0, activation="gelu",
                                                                 batch_first=True, norm_first=True) for _ in range(decoder_depth)])
        self.decoder_norm = nn.LayerNorm(dim)
        self.point_head = nn.Linear(dim, 3 * encoder.patch)
        self.image_head = nn.Linear(dim, 3 * image_patch * image_patch)

    @staticmethod
    def views_needed(scene_cfg) -> int:
        """Posed views every item must bring (``dataset.views``)."""
        return 1

    @staticmethod
    def check_encoder(encoder_cls) -> None:
        """PiMAE needs an encoder that groups points into patches and exposes its transformer blocks."""
        require_patch_encoder(encoder_cls, "pimae")

    def masks(self, batch: PointBatch, centres: Tensor, generator: Optional[torch.Generator] = None) -> Tuple[Tensor, Tensor]:
        """``(point_hidden [B, G], image_hidden [B, V, P])``: each scene's complementary masks from its centres'
        projections into its views."""
        views = batch.views
        W, H = views.size
        cols, rows = patch_grid(W, H, self.image_patch)
        point_hidden, image_hidden = [], []
        for b in range(len(centres)):
            landed = image_patch_of_points(centres[b].detach(), views.K[b], views.cam_to_world[b], W, H, self.image_patch)
            p, i = complementary_masks(landed, cols * rows, self.mask_ratio, generator)
            point_hidden.append(p)
            image_hidden.append(i)
        return torch.stack(point_hidden), torch.stack(image_hidden)

    def _blocks(self, blocks, norm, x: Tensor, pos: Tensor, padding: Tensor) -> Tensor:
        for block in blocks:
            x = block(x + pos, src_key_padding_mask=padding)
        return norm(x)

    def forward(self, batch: PointBatch, generator: Optional[torch.Generator] = None) -> Dict[str, Tensor]:
        """``{"loss", "chamfer", "image_mse"}`` of one batch (the last two detached)."""
        out = self.reconstruct(batch, generator)
        return {k: out[k] for k in ("loss", "chamfer", "image_mse")}

    def reconstruct(self, batch: PointBatch, generator: Optional[torch.Generator] = None, mask: bool = True) -> Dict[str, Tensor]:
        """One masked pass: the losses of :meth:`forward` and what a second stage builds on: ``centres [B, G, 3]``,
        ``local [B, G, K, 3]`` (each patch's true points relative to its centre), ``local_feat [B, G, K, C]`` (their
        features), ``point_hidden [B, G]``, ``predicted [B, G, K, 3]`` (the head's points of every patch, relative to
        its centre) and ``point_codes [B, G, dim]`` (the decoder's output at every point patch). ``mask=False``
        hides nothing (every token of both modalities is encoded, as downstream); the losses are then 0."""
        if batch.views is None:
            raise ConfigError(f"PiMAE needs posed views with every scene: set dataset.views. Datasets with posed views: "
                              f"{datasets_with('views')}.")
        enc, p = self.encoder, self.image_patch
        centres, nb = enc.group(batch)
        B, G = centres.shape[:2]
        W, H = batch.views.size
        cols, rows = patch_grid(W, H, p)
        if mask:
            point_hidden, image_hidden = self.masks(batch, centres, generator)
        else:
            point_hidden = torch.zeros(B, G, dtype=torch.bool, device=centres.device)
            image_hidden = torch.zeros(B, batch.views.color.shape[1], cols * rows, dtype=torch.bool, device=centres.device)
        pixels = image_patches(batch.views.color, p)  # [B, V, P, 3pp]
        V, P = pixels.shape[1], pixels.shape[2]
        dim = enc.out_dim
        grid = sincos_2d(cols, rows, dim).to(pixels.device)

        # encoder input: every token of both modalities, then the visible ones of each scene (padded to one length)
        point_tokens = enc.tokenise(batch, centres, nb) + self.modality[0]
        image_tokens = self.image_embed(pixels).reshape(B, V * P, dim) + self.modality[1]
        tokens = torch.cat([point_tokens, image_tokens], 1)
        pos = torch.cat([enc.pos(centres), grid.repeat(V, 1).expand(B, -1, -1)], 1)
        hidden = torch.cat([point_hidden, image_hidden.reshape(B, V * P)], 1)  # [B, G + V*P]
        visible_count = (~hidden).sum(1)
        L = int(visible_count.max())
        order = torch.argsort(hidden.int(), dim=1, stable=True)  # visible tokens first, in their order
        take = order[:, :L]
        padding = torch.arange(L, device=hidden.device)[None] >= visible_count[:, None]
        gather = lambda t, i: torch.gather(t, 1, i[..., None].expand(-1, -1, t.shape[-1]))  # noqa: E731
        codes = self._blocks(enc.blocks, enc.norm, gather(tokens, take), gather(pos, take), padding)

        # decoder: the visible codes back in place, a mask token of the right modality everywhere else
        is_image = torch.arange(G + V * P, device=hidden.device)[None].expand(B, -1) >= G
        full = self.mask_token[is_image.long()]  # [B, G + V*P, dim]
        full = full.scatter(1, take[..., None].expand(-1, -1, dim), torch.where(padding[..., None], gather(full, take), codes))
        dec_pos = torch.cat([self.decoder_pos(centres), self.decoder_image_pos(grid).repeat(V, 1).expand(B, -1, -1)], 1)
        x = self._blocks(self.decoder, self.decoder_norm, full, dec_pos, torch.zeros_like(hidden))

        # losses on the hidden tokens of each modality
        local = batch.coord[nb] - centres[:, :, None]  # [B, G, K, 3]
        predicted = self.point_head(x[:, :G]).reshape(B, G, enc.patch, 3)
        chamfer = chamfer_distance(predicted[point_hidden], local[point_hidden]) if bool(point_hidden.any()) else predicted.sum() * 0.0
        target = pixels.reshape(B, V * P, -1)[image_hidden.reshape(B, -1)]
        pred_pixels = self.image_head(x[:, G:][image_hidden.reshape(B, -1)])
        if len(target):
            target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6).sqrt()
            image_mse = F.mse_loss(pred_pixels, target)
        else:  # nothing hidden
            image_mse = pred_pixels.sum() * 0.0
        loss = self.point_weight * chamfer + self.image_weight * image_mse
        return {"loss": loss, "chamfer": chamfer.detach(), "image_mse": image_mse.detach(), "centres": centres, "local": local,
                "local_feat": batch.feat[nb], "point_hidden": point_hidden, "predicted": predicted, "point_codes": x[:, :G]}

