"""Gaussian2Scene: scene-level point-cloud pretraining in two stages, a dual-branch masked autoencoder, then
supervision by 3D Gaussians rendered into views of the scene the encoder did not see.

Liu et al., "Gaussian2Scene: 3D Scene Representation Learning via Self-supervised Learning with 3D Gaussian
Splatting", arXiv 2506.08777 (2025). No code is public; where the paper is silent this follows its nearest open
relatives: PiMAE (Chen et al., CVPR 2023) for the first stage (:class:`~geossl.pointcloud.methods.pimae.PiMAE`),
UniPre3D (Wang et al., CVPR 2025) for per-point Gaussians (:class:`~geossl.gaussians.head.GaussianHead`) and 3DGS
(Kerbl et al., SIGGRAPH 2023) for the photometric loss.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.profiler import record_function

from geossl.encoder import Encoder
from geossl.errors import ConfigError
from geossl.frames import Views
from geossl.method import Method
from geossl.gaussians.head import GaussianHead, PointGaussians, stack_gaussians
from geossl.gaussians.metrics import psnr, ssim
from geossl.ops import rasterize_gaussians
from geossl.ops.camera import backproject_depth, invert_pose, scale_intrinsics
from geossl.ops.geometry import chamfer_distance, knn
from geossl.points import PointBatch
from geossl.registry import METHODS

from geossl.pointcloud.encoders.patch_transformer import is_patch_encoder
from geossl.pointcloud.methods.pimae import PiMAE


#: The ranges of a training step that a profiler sees under their own names (torch.profiler.record_function;
#: free when no profiler runs): benchmarks/gaussian2scene_speed.py reads them.
PROFILE_LABELS = {"forward": "gaussian2scene: forward", "encoder": "gaussian2scene: masked encoder-decoder pass",
                  "head": "gaussian2scene: Gaussian head", "render": "gaussian2scene: rendering (forward)",
                  "pixels": "gaussian2scene: pixels near the crop"}


def select_views(views: Views, start: int, stop: Optional[int] = None) -> Views:
    """Views ``start:stop`` of every scene."""
    return Views(views.color[:, start:stop], views.depth[:, start:stop], views.K[:, start:stop], views.cam_to_world[:, start:stop])


def render_targets(views: Views, width: int, height: int) -> Tuple[Tensor, Tensor, Tensor]:
    """``(colour [B, V, h, w, 3], depth [B, V, h, w], K [B, V, 3, 3])`` of ``views`` resized to ``width`` x ``height``:
    colour averaged over the pixels each target pixel covers, depth the nearest pixel's (0 stays invalid)."""
    B, V, H, W, _ = views.color.shape
    color = F.interpolate(views.color.reshape(B * V, H, W, 3).permute(0, 3, 1, 2), size=(height, width), mode="area")
    depth = F.interpolate(views.depth.reshape(B * V, 1, H, W), size=(height, width), mode="nearest")
    K = scale_intrinsics(views.K, width / W, height / H)
    return color.permute(0, 2, 3, 1).reshape(B, V, height, width, 3), depth.reshape(B, V, height, width), K


def render(scenes: List[PointGaussians], K: Tensor, cam_to_world: Tensor, width: int, height: int) -> Tuple[Tensor, Tensor]:
    """``(rgb [B, V, h, w, 3], expected depth [B, V, h, w])`` of ``B`` scenes' Gaussians, each in its own ``V`` views
    (``K`` and ``cam_to_world`` ``[B, V, ...]``), in one batched ``rasterize_gaussians`` call."""
    g = stack_gaussians(scenes)
    viewmats = invert_pose(cam_to_world)
    images, _, _ = rasterize_gaussians(g.means, g.quats, g.scales, g.opacities, g.colors, viewmats, K, width, height,
                                       render_mode="RGB+ED")
    return images[..., :3], images[..., 3]


def supervised_pixels(depth: Tensor, K: Tensor, cam_to_world: Tensor, points: List[Tensor], radius: float) -> Tensor:
    """``[B, V, h, w]``, True at the pixels of each scene's views whose surface (the view's depth ``[B, V, h, w]``,
    back-projected with ``K`` and ``cam_to_world`` ``[B, V, ...]``) lies within ``radius`` metres of one of that
    scene's ``points``: the part of a view that a crop of the scene shows. False where the view has no depth."""
    B, V, h, w = depth.shape
    out = torch.zeros(B, V, h * w, dtype=torch.bool, device=depth.device)
    with torch.no_grad():
        for b in range(B):
            lo, hi = points[b].amin(0) - radius, points[b].amax(0) + radius
            for v in range(V):
                surface, pixel = backproject_depth(depth[b, v], K[b, v], cam_to_world[b, v])
                near = ((surface >= lo) & (surface <= hi)).all(1)  # only these can be within the radius
                if bool(near.any()):
                    d, _ = knn(surface[near], points[b].to(surface.dtype), 1)
                    out[b, v, pixel[near][d[:, 0] <= radius ** 2]] = True
    return out.view(B, V, h, w)


def point_baseline(points: Tensor, colors: Tensor) -> PointGaussians:
    """The baseline of the rendering benchmark: one isotropic Gaussian per point, with the point's colour, fully
    opaque, its scale the distance to the point's nearest neighbour."""
    d, _ = knn(points, points, 2)
    scale = d[:, 1].clamp_min(1e-8).sqrt()[:, None].expand(-1, 3)  # knn gives squared distances
    quats = torch.zeros(len(points), 4, dtype=points.dtype, device=points.device)
    quats[:, 0] = 1.0
    return PointGaussians(points, quats, scale.contiguous(), torch.ones(len(points), dtype=points.dtype, device=points.device),
                          colors.clamp(0, 1))


@METHODS.register("gaussian2scene", domain="scene")
class Gaussian2Scene(PiMAE):
    """Gaussian2Scene on a patch encoder (``encoder=point_patch_transformer``), or stage 2 alone on a per-point
    encoder (``encoder=spunet``: one Gaussian per input point from its features, as GS3 and UniPre3D do).

    Every scene of a batch brings ``input_views`` posed views that the model sees and at least one more that it
    renders. **Stage 1** (the first ``stage1_epochs`` epochs) is :class:`PiMAE` on the points and the input views.
    **Stage 2** runs the same masked pass, then builds the reconstructed cloud (each visible patch's own points,
    each hidden patch's predicted points, around their centres) and predicts one 3D Gaussian per point of it with
    :class:`~geossl.gaussians.head.GaussianHead` from the decoder's code of the point's patch, the point's offset
    in it and, for the points of visible patches, the point's colour, which the Gaussian's colour starts from
    (geossl's choice; without it the colours collapsed to the room's mean). The Gaussians of each scene are
    rendered (``geossl.ops.rasterize_gaussians``: gsplat on CUDA, the compiled compositor on CPU) into its other
    views at ``render_width`` x ``render_height`` and supervised with ``(1 - lambda_dssim) L1 + lambda_dssim
    (1 - SSIM)`` on colour, L1 on depth where the view has depth, and the
    Chamfer distance between the Gaussians' centres and the scene's points; the stage-1 losses stay on with
    ``stage1_weight``. With ``render_radius`` > 0 the colour and depth losses (and the held-out PSNR and SSIM) count
    only the pixels whose surface lies within that distance of the scene's input points
    (:func:`supervised_pixels`), so that a crop of a room (``transform.budget=view_crop``: Point-MAE's crops,
    around a point the rendered view sees) is supervised where the view shows it and not where it shows the rest
    of the room (geossl's choice, to train on the points Point-MAE trains on). A non-finite Gaussian makes the loss
    NaN, which stops the run with the last good checkpoint.

    Args:
        encoder: a patch encoder.
        in_dim: point feature width (RGB colours first, which the head reads; given by the run).
        stage1_epochs: epochs of stage 1; the rest of ``trainer.epochs`` is stage 2.
        input_views: views per scene the encoder sees (the first ones of each item); the others are rendered.
        mask_ratio, image_patch, decoder_depth, decoder_heads, point_weight, image_weight: stage 1 (:class:`PiMAE`).
        stage1_weight: weight of the stage-1 losses in stage 2.
        render_width, render_height: size of the rendered views.
        rgb_weight, lambda_dssim: weight of the colour loss and the share of D-SSIM in it (3DGS: 0.2).
        depth_weight: weight of the depth L1 (metres).
        position_weight: weight of the Chamfer distance between Gaussian centres and scene points.
        head_hidden, offset_scale, scale_init: the Gaussian head (:class:`~geossl.gaussians.head.GaussianHead`).
        render_radius: 0 supervises every pixel of the rendered views (the points cover the whole scene); > 0 only
            the pixels whose surface lies within this many metres of an input point.
    """

    def __init__(self, encoder: Encoder, in_dim: int, stage1_epochs: int = 10, input_views: int = 1, mask_ratio: float = 0.6,
                 image_patch: int = 16, decoder_depth: int = 2, decoder_heads: int = 4, point_weight: float = 1.0,
                 image_weight: float = 1.0, stage1_weight: float = 1.0, render_width: int = 160, render_height: int = 120,
                 rgb_weight: float = 1.0, lambda_dssim: float = 0.2, depth_weight: float = 0.1, position_weight: float = 1.0,
                 head_hidden: int = 128, offset_scale: float = 0.1, scale_init: float = 0.08, render_radius: float = 0.0):
        self.patches = is_patch_encoder(type(encoder))
        if self.patches:
            super().__init__(encoder, in_dim, mask_ratio, image_patch, decoder_depth, decoder_heads, point_weight, image_weight)
        else:  # a per-point encoder (spunet): no tokens to mask, so stage 2 alone, from the encoder's per-point features
            Method.__init__(self)
            self.encoder = encoder
            if stage1_epochs:
                raise ConfigError(f"scene.stage1_epochs={stage1_epochs}: stage 1 masks patch tokens, which a per-point encoder "
                                  f"({type(encoder).__name__}) does not make; set scene.stage1_epochs=0 (Gaussians from its "
                                  "per-point features from the first epoch) or use encoder=point_patch_transformer.")
        if stage1_epochs < 0 or input_views < 1 or min(render_width, render_height) < 1 or not 0 <= lambda_dssim <= 1 \
                or min(stage1_weight, rgb_weight, depth_weight, position_weight, render_radius) < 0:
            raise ConfigError(f"gaussian2scene needs scene.stage1_epochs >= 0, scene.input_views >= 1, a positive render size, "
                              f"0 <= scene.lambda_dssim <= 1 and non-negative weights and render_radius; got "
                              f"stage1_epochs={stage1_epochs}, input_views={input_views}, render {render_width}x{render_height}, "
                              f"lambda_dssim={lambda_dssim}, render_radius={render_radius}.")
        if in_dim < 3:
            raise ConfigError(f"gaussian2scene reads each point's RGB colour from its first 3 features; the dataset gives "
                              f"{in_dim} features per point; every scene dataset of geossl gives colours.")
        self.stage1_epochs, self.input_views = stage1_epochs, input_views
        self.stage1_weight, self.rgb_weight, self.lambda_dssim = stage1_weight, rgb_weight, lambda_dssim
        self.depth_weight, self.position_weight = depth_weight, position_weight
        from geossl.io import check_fits

        # at least: per rendered pixel of one view, colour, depth and alpha with their gradients and the loss's copies
        check_fits(64 * render_width * render_height, f"scene.render_width={render_width} x scene.render_height={render_height}")
        self.render_width, self.render_height, self.render_radius = render_width, render_height, render_radius
        self.head = GaussianHead(encoder.out_dim + 7, head_hidden, offset_scale, scale_init)
        self.stage = 1 if stage1_epochs > 0 else 2

    def before_epoch(self, epoch: int) -> None:
        """The engine's hook: stage 1 for the first ``stage1_epochs`` epochs, then stage 2 (resumes land right)."""
        self.stage = 1 if epoch < self.stage1_epochs else 2

    def _split(self, batch: PointBatch) -> Tuple[PointBatch, Views]:
        if batch.views is None or batch.views.color.shape[1] <= self.input_views:
            have = 0 if batch.views is None else batch.views.color.shape[1]
            raise ConfigError(f"gaussian2scene renders views the encoder does not see: every scene needs more than "
                              f"scene.input_views={self.input_views} posed views, and has {have}; raise dataset.views.")
        return dataclasses.replace(batch, views=select_views(batch.views, 0, self.input_views)), select_views(batch.views, self.input_views)

    def predict(self, seen: PointBatch, generator: Optional[torch.Generator] = None,
                mask: bool = True) -> Tuple[Dict[str, Tensor], List[PointGaussians]]:
        """``(stage-1 pass, per-scene Gaussians)`` of a batch with its input views: from the reconstructed cloud of a
        masked pass (patch encoder; ``mask=False`` encodes every token, as the held-out evaluation does), or one
        Gaussian per input point from the encoder's per-point features (per-point encoder; the stage-1 pass is then
        empty)."""
        if self.patches:
            with record_function(PROFILE_LABELS["encoder"]):
                rec = self.reconstruct(seen, generator, mask)
            with record_function(PROFILE_LABELS["head"]):
                return rec, self.gaussians(rec)
        with record_function(PROFILE_LABELS["encoder"]):
            features = self.encoder(seen)
        ones = features.new_ones(len(features), 1)
        inputs = torch.cat([features, features.new_zeros(len(features), 3), seen.feat[:, :3], ones], 1)  # no offset in a patch
        with record_function(PROFILE_LABELS["head"]):
            return {}, [self.head(seen.coord[s], inputs[s], seen.feat[s, :3]) for s in seen.scene_slices()]

    def gaussians(self, rec: Dict[str, Tensor]) -> List[PointGaussians]:
        """Per scene, one Gaussian per point of the reconstructed cloud of a :meth:`reconstruct` pass, from the
        decoder's code of the point's patch, the point's offset from the patch centre, and, for the points of visible
        patches, the point's colour and a flag (a hidden patch's points are predicted, so their colour is unknown: 0)."""
        hidden = rec["point_hidden"][..., None, None]
        local = torch.where(hidden, rec["predicted"], rec["local"])  # [B, G, K, 3]
        points = rec["centres"][:, :, None] + local
        codes = rec["point_codes"][:, :, None].expand(-1, -1, local.shape[2], -1)
        seen = (~hidden).to(local.dtype).expand(-1, -1, local.shape[2], 1)
        colour = rec["local_feat"][..., :3] * seen
        features = torch.cat([codes, local, colour, seen], -1)
        base = colour + 0.5 * (1 - seen)  # grey where the colour is unknown
        B = len(points)
        return [self.head(points[b].reshape(-1, 3), features[b].reshape(-1, features.shape[-1]), base[b].reshape(-1, 3))
                for b in range(B)]

    def forward(self, batch: PointBatch, generator: Optional[torch.Generator] = None) -> Dict[str, Tensor]:
        with record_function(PROFILE_LABELS["forward"]):
            return self._forward(batch, generator)

    def _forward(self, batch: PointBatch, generator: Optional[torch.Generator] = None) -> Dict[str, Tensor]:
        seen, targets = self._split(batch)
        if self.stage == 1:
            rec = self.reconstruct(seen, generator)
            return {"loss": rec["loss"], "chamfer": rec["chamfer"], "image_mse": rec["image_mse"]}
        rec, per_scene = self.predict(seen, generator)
        stage1 = {k: rec[k] for k in ("chamfer", "image_mse")} if rec else {}
        if not all(g.is_finite() for g in per_scene):
            return {"loss": per_scene[0].means.new_tensor(float("nan")), **stage1}
        color, depth, K = render_targets(targets, self.render_width, self.render_height)
        with record_function(PROFILE_LABELS["render"]):
            rgb, ed = render(per_scene, K, targets.cam_to_world, self.render_width, self.render_height)
        rgb_loss = depth_loss = position = batch.coord.new_zeros(())
        slices = batch.scene_slices()
        with record_function(PROFILE_LABELS["pixels"]):
            supervised = self._supervised(depth, K, targets, batch)
        views = 0
        for b, g in enumerate(per_scene):
            for v in range(rgb.shape[1]):
                m = None if supervised is None else supervised[b, v]
                if m is not None and not bool(m.any()):
                    continue
                err = (rgb[b, v] - color[b, v]).abs()
                rgb_loss = rgb_loss + (1 - self.lambda_dssim) * (err.mean() if m is None else err[m].mean()) \
                    + self.lambda_dssim * (1 - ssim(rgb[b, v], color[b, v], m))
                views += 1
            valid = depth[b] > 0 if supervised is None else (depth[b] > 0) & supervised[b]
            if bool(valid.any()):
                depth_loss = depth_loss + (ed[b][valid] - depth[b][valid]).abs().mean()
            position = position + chamfer_distance(g.means, batch.coord[slices[b]])
        B = color.shape[0]
        rgb_loss, depth_loss, position = rgb_loss / max(views, 1), depth_loss / B, position / B
        loss = self.rgb_weight * rgb_loss + self.depth_weight * depth_loss + self.position_weight * position
        if rec:
            loss = loss + self.stage1_weight * rec["loss"]
        return {"loss": loss, **stage1, "render_rgb": rgb_loss.detach(), "render_depth": depth_loss.detach(),
                "gaussian_position": position.detach()}

    def _supervised(self, depth: Tensor, K: Tensor, targets: Views, batch: PointBatch) -> Optional[Tensor]:
        """The :func:`supervised_pixels` of the rendered views (None with ``render_radius`` 0: every pixel)."""
        if not self.render_radius:
            return None
        return supervised_pixels(depth, K, targets.cam_to_world, [batch.coord[s] for s in batch.scene_slices()], self.render_radius)

    @staticmethod
    def check_encoder(encoder_cls) -> None:
        """Any scene encoder: a patch encoder runs both stages, a per-point one (spunet) stage 2 alone."""

    @staticmethod
    def views_needed(scene_cfg) -> int:
        """Posed views every item must bring: the input views and at least one to render."""
        return int(scene_cfg.get("input_views", 1)) + 1

    @torch.no_grad()
    def held_out_views(self, batch: PointBatch, generator: torch.Generator) -> List[Tuple[Tensor, Tensor]]:
        """``(rendered, real)`` ``[h, w, 3]`` pairs of every scene's views that the encoder did not see."""
        seen, targets = self._split(batch)
        per_scene = self.predict(seen, generator, mask=False)[1]
        color, _, K = render_targets(targets, self.render_width, self.render_height)
        rgb, _ = render(per_scene, K, targets.cam_to_world, self.render_width, self.render_height)
        B, V = color.shape[:2]
        return [(rgb[b, v].clamp(0, 1), color[b, v]) for b in range(B) for v in range(V)]

    @torch.no_grad()
    def held_out_metrics(self, batch: PointBatch, generator: torch.Generator) -> Dict[str, float]:
        """PSNR and SSIM of the views the encoder did not see, rendered from the Gaussians predicted with nothing
        hidden (the encoder sees every point and the input views, as the baseline does) and from the
        :func:`point_baseline` of the scene's points, at ``render_width`` x ``render_height``, averaged over views.
        With ``render_radius`` > 0 both are scored on the supervised pixels only, over the views that have any (NaN
        if none has), and ``supervised_share`` is the share of the views' pixels that were scored."""
        seen, targets = self._split(batch)
        per_scene = self.predict(seen, generator, mask=False)[1]
        color, depth, K = render_targets(targets, self.render_width, self.render_height)
        out = {"render_psnr": 0.0, "render_ssim": 0.0, "baseline_psnr": 0.0, "baseline_ssim": 0.0}
        slices = batch.scene_slices()
        B, V = color.shape[:2]
        supervised = self._supervised(depth, K, targets, batch)
        scored = [(b, v) for b in range(B) for v in range(V) if supervised is None or bool(supervised[b, v].any())]
        baseline = [point_baseline(batch.coord[s], batch.feat[s, :3]) for s in slices]
        for name, scenes in (("render", per_scene), ("baseline", baseline)):
            rgb, _ = render(scenes, K, targets.cam_to_world, self.render_width, self.render_height)
            for b, v in scored:
                m = None if supervised is None else supervised[b, v]
                out[f"{name}_psnr"] += psnr(rgb[b, v].clamp(0, 1), color[b, v], m) / len(scored)
                out[f"{name}_ssim"] += float(ssim(rgb[b, v].clamp(0, 1), color[b, v], m)) / len(scored)
        if supervised is not None:
            out = {k: (v if scored else float("nan")) for k, v in out.items()}
            out["supervised_share"] = float(supervised.float().mean())
        return out
