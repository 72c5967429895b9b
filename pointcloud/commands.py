"""The scene domain's own commands: ``geossl show`` (PNG views of a scene) and ``geossl fit-gaussians`` (3D
Gaussians fitted to a scene's posed RGB-D frames). The CLI finds them through the ``geossl.commands`` entry points
(pyproject.toml), so that ``geossl show`` imports the scene domain alone."""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

from omegaconf import DictConfig

from geossl.config import compose
from geossl.errors import ConfigError, GeosslError
from geossl.pipeline import dataset_builder

from geossl.pointcloud.adapter import RUN_KEYS
from geossl.pointcloud.datasets import datasets_with, scene_for_show


def _strict(cfg: DictConfig, allowed: Tuple[str, ...], command: str) -> None:
    """Refuse top-level keys a command does not read (``+sizee=3``): a typo must not pass silently."""
    unknown = sorted(set(cfg) - set(allowed))
    if unknown:
        raise ConfigError(f"Unknown key(s) {', '.join(repr(k) for k in unknown)} for geossl {command}. Valid keys: {', '.join(allowed)}.")


def _raw_scene(cfg: DictConfig) -> Dict[str, Any]:
    builder, kwargs, _ = dataset_builder(cfg, "scene", extra=RUN_KEYS, exclude=("split",))
    return scene_for_show(kwargs, builder)


def _box_names(cfg: DictConfig):
    builder, kwargs, _ = dataset_builder(cfg, "scene", extra=RUN_KEYS, exclude=("split",))
    kwargs.pop("scene", None)
    return builder(split="train", **kwargs).box_classes


def cmd_show(overrides: List[str]) -> int:
    """``geossl show dataset=<name> [dataset.scene=<id>]``: PNG views of one scene, its boxes and its RGB-D views."""
    from geossl.pipeline import run_dir_for

    from geossl.pointcloud.show import save_rgbd_views, save_scene_views

    cfg = compose("show", overrides, "scene")
    _strict(cfg, ("dataset", "size", "out_dir", "run_dir"), "show")
    scene = _raw_scene(cfg)
    out = run_dir_for(cfg, f"show-{cfg.dataset.name}")
    paths = save_scene_views(scene, out, scene["name"], int(cfg.size), _box_names(cfg))
    if scene.get("frames") is not None and len(scene["frames"].frames):
        paths.append(save_rgbd_views(scene["frames"].frames, out / f"{scene['name']}_rgbd.png"))
    print(f"{scene['name']}: {len(scene['coord'])} points, {len(scene.get('boxes', []))} boxes")
    for path in paths:
        print(path)
    return 0


def cmd_fit_gaussians(overrides: List[str]) -> int:
    """``geossl fit-gaussians dataset=<name>``: fit 3D Gaussians to a scene's posed RGB-D frames."""
    import sys

    from geossl.gaussians.run import fit_config, fit_device, fit_scene
    from geossl.pipeline import run_dir_for

    cfg = compose("fit_gaussians", overrides, "scene")
    _strict(cfg, ("dataset", "fit", "grid_views", "threads", "device", "progress", "seed", "out_dir", "run_dir"), "fit-gaussians")
    fit_config(cfg), fit_device(str(cfg.device))  # bad settings fail before the scene is read
    scene = _raw_scene(cfg)
    if scene.get("frames") is None or not len(scene["frames"].frames):
        raise GeosslError(f"fit-gaussians needs posed RGB-D frames, and scene {scene['name']} of dataset {cfg.dataset.name!r} has "
                          f"none. Datasets with posed RGB-D frames: {datasets_with('rgbd')}.")
    run_dir = run_dir_for(cfg, f"fit-{cfg.dataset.name}")
    s = fit_scene(cfg, run_dir, scene["frames"])
    print(f"fit-gaussians on {cfg.dataset.name}: held-out PSNR {s['psnr']:.2f} dB (depth-valid pixels {s['psnr_valid_depth']:.2f}), "
          f"SSIM {s['ssim']:.3f}, {s['gaussians']} Gaussians, {s['iterations']} iterations in {s['fit_seconds']:.0f} s -> {run_dir}")
    if s["stopped_early"]:
        print(f"geossl: error: the fit stopped early ({s['stopped_early']}); the last good Gaussians were written.", file=sys.stderr)
        return 1
    return 0


def cmd_import_pointcept(overrides: List[str]) -> int:
    """``geossl import-pointcept <checkpoint.pth> out=<encoder.safetensors> [voxel_size=0.02]``: a Pointcept / PonderV2
    SpUNet checkpoint as a geossl encoder file (:func:`geossl.pointcloud.pointcept.load_pointcept`)."""
    from geossl.encoder import save_encoder
    from geossl.pointcloud.pointcept import load_pointcept

    files = [o for o in overrides if "=" not in o]
    settings = dict(o.split("=", 1) for o in overrides if "=" in o)
    if len(files) != 1 or "out" not in settings or set(settings) - {"out", "voxel_size"}:
        raise ConfigError("geossl import-pointcept takes one checkpoint and out=<encoder.safetensors> (and optionally "
                          "voxel_size=<metres>, default 0.02): geossl import-pointcept model_best.pth out=spunet.safetensors.")
    try:
        voxel = float(settings.get("voxel_size", 0.02))
    except ValueError:
        raise ConfigError(f"voxel_size={settings['voxel_size']!r} is not a number of metres.") from None
    encoder = load_pointcept(files[0], voxel_size=voxel)
    path = save_encoder(encoder, settings["out"], metadata=encoder.pretrained)
    print(f"{files[0]}: SpUNet (Pointcept variant) of widths {encoder.config()['channels']}, {encoder.out_dim} features per "
          f"point -> {path}")
    return 0
