"""``geossl fit-gaussians``: fit a scene and write its run folder.

The run folder holds ``scene.ply`` (3DGS layout), ``views.png`` (held-out views: rendered | real),
``history.csv`` (held-out PSNR/SSIM against iterations) and ``summary.json``.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Sequence

import torch

from geossl.gaussians.fit import FitConfig, fit_gaussians
from geossl.gaussians.ply import save_ply
from geossl.io import peak_rss_mb, write_json
from geossl.ops.camera import invert_pose


def save_view_grid(gaussians, frames: Sequence, path: Path, views: int = 4) -> Path:
    """A PNG with one row per held-out view (up to ``views``, evenly spaced): rendered | real."""
    from PIL import Image

    pick = [frames[round(i * (len(frames) - 1) / max(views - 1, 1))] for i in range(min(views, len(frames)))]
    rows = []
    device = gaussians.means.device
    with torch.no_grad():
        for f in pick:
            w, h = f.color.shape[1], f.color.shape[0]
            img = gaussians.render(invert_pose(f.cam_to_world.to(device))[None], f.K.to(device)[None], w, h)[0][0].clamp(0, 1)
            rows.append(torch.cat([img.cpu(), torch.ones(h, 4, 3), f.color.cpu()], 1))
    grid = torch.cat([torch.cat([r, torch.ones(4, r.shape[1], 3)]) for r in rows])[:-4]
    Image.fromarray((grid * 255).round().byte().numpy()).save(path)
    return path


def fit_device(name: str) -> torch.device:
    """``device`` of ``geossl fit-gaussians``: "auto" (CUDA when there is a GPU, else the CPU), "cpu", "cuda[:i]"."""
    from geossl.errors import ConfigError

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"Unknown device {name!r}. Valid choices: auto, cpu, cuda, cuda:<index>.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda was asked for, and this machine has no CUDA GPU; use device=auto or device=cpu.")
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device={name} is not supported; valid choices: auto, cpu, cuda, cuda:<index>.")
    return device


def fit_config(cfg) -> FitConfig:
    """The ``fit`` section of ``geossl fit-gaussians`` validated (unknown keys and bad values are refused) and the run seed."""
    from geossl.config import validate

    settings = validate(cfg.fit, FitConfig, "fit")
    settings["seed"] = int(cfg.seed)
    return FitConfig(**settings)


def fit_scene(cfg, run_dir: Path, sequence) -> dict:
    """Fit ``sequence`` (an RGB-D sequence with ``split``) with ``cfg.fit`` and write the run folder."""
    from omegaconf import OmegaConf

    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    run_dir.mkdir(parents=True, exist_ok=True)
    train, test = sequence.split(int(cfg.dataset.test_every))
    if not test:
        test = train[:1]
    fit_cfg = fit_config(cfg)
    device = fit_device(str(cfg.device))
    t0 = time.time()
    if cfg.progress:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn("fitting"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      TextColumn("{task.fields[info]}"), TimeElapsedColumn()) as bar:
            task = bar.add_task("fit", total=fit_cfg.iterations, info="")
            result = fit_gaussians(train, test, fit_cfg, progress=lambda s, st: bar.update(
                task, completed=s, info=f"loss {st['loss']:.4f}  {st['gaussians']} Gaussians"), device=device)
    else:
        result = fit_gaussians(train, test, fit_cfg, device=device)
    save_ply(result.gaussians, run_dir / "scene.ply")
    save_view_grid(result.gaussians, test, run_dir / "views.png", int(cfg.grid_views))
    with open(run_dir / "history.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(result.history[0]))
        writer.writeheader()
        writer.writerows(result.history)
    final = result.history[-1]
    summary = {
        "dataset": cfg.dataset.name, "train_frames": len(train), "test_frames": len(test),
        "width": train[0].color.shape[1], "height": train[0].color.shape[0],
        "psnr": final["psnr"], "psnr_valid_depth": final["psnr_valid_depth"], "ssim": final["ssim"],
        "gaussians": len(result.gaussians), "iterations": result.iterations, "stopped_early": result.stopped or None,
        "fit_seconds": round(result.seconds, 1), "device": str(device),
        "total_seconds": round(time.time() - t0, 1), "torch_threads": torch.get_num_threads(), "peak_rss_mb": peak_rss_mb(),
        "history": result.history, "config": OmegaConf.to_container(cfg, resolve=True), "run_dir": str(run_dir),
    }
    write_json(run_dir / "summary.json", summary)
    return summary
