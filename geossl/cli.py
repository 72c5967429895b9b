"""``geossl <command> key=value ...``: compose the Hydra configs in ``configs/`` and run.

Commands:
    pretrain graph=<method> dataset=<name> [key=value ...]   pretrain and evaluate an encoder
    evaluate encoder=<file.safetensors> dataset=<name>       evaluate a saved encoder (eval=linear_probe|svc|finetune)
    fit-gaussians dataset=<sevenscenes|redwood|scannet_export|rooms> fit 3D Gaussians to posed RGB-D frames
    show dataset=<scannet|rooms|sevenscenes|...>             PNG views of a scene (points coloured, boxes drawn)
    datasets                                                 list datasets and where they were found
    config graph=<method> dataset=<name> [key=value ...]     print the composed config

Any error caused by input (a wrong name, a missing file, a bad key) is printed as one paragraph
and the process exits with status 2; no traceback.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time
from pathlib import Path
from typing import List, Optional

USAGE = __doc__.split("Any error")[0].strip()
DOMAINS = {"graph": "geossl.graph"}


def _compose(config_name: str, overrides: List[str]):
    """Compose ``configs/<config_name>.yaml`` with ``overrides``; input errors become ConfigErrors
    that name the bad choice or key and list the valid ones."""
    import re

    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import ConfigCompositionException, MissingConfigException
    from omegaconf import DictConfig

    from geossl.errors import ConfigError

    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="geossl.configs", version_base="1.3"):
        try:
            return compose(config_name=config_name, overrides=overrides)
        except MissingConfigException as exc:
            missing = str(exc.missing_cfg_file or "")
            if "/" in missing and exc.options:
                group, choice = missing.split("/", 1)
                raise ConfigError(f"Unknown {group} {choice!r}. Valid choices of {group}: {', '.join(exc.options)}.") from None
            raise
        except ConfigCompositionException as exc:
            match = re.match(r"Could not override '([^']+)'", str(exc))
            if not match:
                raise
            key = match.group(1)
            parent_key = key.rsplit(".", 1)[0] if "." in key else ""
            rest = [o for o in overrides if not o.lstrip("~+").startswith(key + "=")]
            parent = compose(config_name=config_name, overrides=rest)
            for part in filter(None, parent_key.split(".")):
                parent = parent.get(part) if isinstance(parent, DictConfig) else None
            where = parent_key or "the top level"
            valid = f" Valid keys of {where}: {', '.join(parent.keys())}." if isinstance(parent, DictConfig) else ""
            raise ConfigError(f"Unknown config key {key!r}.{valid}") from None


def _domain(overrides: List[str]) -> str:
    keys = {o.split("=", 1)[0].lstrip("+~") for o in overrides if "=" in o}
    found = [d for d in DOMAINS if d in keys]
    if "scene" in keys:
        from geossl.errors import GeosslError

        raise GeosslError("Scene pretraining (scene=...) is not built yet in this version of geossl; graph=<method> is.")
    return found[0] if found else "graph"


def _run_dir(cfg) -> Path:
    if cfg.trainer.get("resume"):
        resume = Path(cfg.trainer.resume)
        return resume if resume.is_dir() else resume.parent
    if cfg.get("run_dir"):
        return Path(cfg.run_dir)
    base = Path(cfg.out_dir) / f"{cfg.graph.name}-{cfg.dataset.name}"
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # Every process of a torchrun job must pick the same folder: the local ranks share their
        # parent (torchrun's agent); several machines must be given one shared run_dir.
        if os.environ.get("LOCAL_WORLD_SIZE") != os.environ.get("WORLD_SIZE"):
            from geossl.errors import ConfigError

            raise ConfigError("A multi-node run needs run_dir=<a folder every node can write> on the command line.")
        return base / f"{time.strftime('%Y%m%d')}-torchrun{os.getppid()}"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path, i = base / stamp, 1
    while path.exists():
        path, i = base / f"{stamp}-{i}", i + 1
    return path


def cmd_pretrain(overrides: List[str]) -> int:
    import importlib

    domain = _domain(overrides)
    cfg = _compose(f"pretrain_{domain}", overrides)
    run = importlib.import_module(f"{DOMAINS[domain]}.run")
    run_dir = _run_dir(cfg)
    summary = run.pretrain(cfg, run_dir)
    if "test_acc" in summary:
        print(
            f"{summary['method']} on {summary['dataset']}: test_acc={summary['test_acc']:.4f} "
            f"val_acc={summary['val_acc']:.4f} rankme={summary['rankme']:.1f} "
            f"({summary['seconds_per_epoch']:.3f} s/epoch) -> {run_dir}"
        )
    elif "cv_acc" in summary:
        print(
            f"{summary['method']} on {summary['dataset']}: cv_acc={summary['cv_acc']:.2f} ± {summary['cv_std']:.2f} "
            f"({summary['pooling']} pooling, SVC, 10-fold) rankme={summary['rankme']:.1f} "
            f"({summary['seconds_per_epoch']:.3f} s/epoch, {summary['world_size']} process(es)) -> {run_dir}"
        )
    return 0


def cmd_evaluate(overrides: List[str]) -> int:
    import geossl.graph.run as run

    # `encoder` is also the name of a config group, so the file path travels as encoder_file.
    overrides = [f"encoder_file={o.split('=', 1)[1]}" if o.startswith("encoder=") else o for o in overrides]
    cfg = _compose("evaluate_graph", overrides)
    print(json.dumps(run.evaluate(cfg), indent=2))
    return 0


#: Datasets whose files the user names, and how.
USER_FILE_DATASETS = {
    "tu": "any TU raw folder: dataset=tu dataset.name=<NAME> [dataset.root=<dir>] (docs/datasets.md)",
    "graph_list": "a saved list of PyG Data: dataset=graph_list dataset.path=<file.pt> (docs/datasets.md)",
}


def cmd_fit_gaussians(overrides: List[str]) -> int:
    from geossl.gaussians.run import fit_scene
    from geossl.pointcloud.scenes import load_sequence

    cfg = _compose("fit_gaussians", overrides)
    ds = cfg.dataset
    sequence = load_sequence(ds)  # an unknown name is refused there, listing the valid ones
    if cfg.get("run_dir"):
        run_dir = Path(cfg.run_dir)
    else:
        run_dir = Path(cfg.out_dir) / f"fit-{ds.name}" / time.strftime("%Y%m%d-%H%M%S")
    s = fit_scene(cfg, run_dir, sequence)
    print(f"fit-gaussians on {ds.name}: held-out PSNR {s['psnr']:.2f} dB (depth-valid pixels {s['psnr_valid_depth']:.2f}), "
          f"SSIM {s['ssim']:.3f}, {s['gaussians']} Gaussians, {s['iterations']} iterations in {s['fit_seconds']:.0f} s -> {run_dir}")
    if s["stopped_early"]:
        print(f"geossl: error: the fit stopped early ({s['stopped_early']}); the last good Gaussians were written.", file=sys.stderr)
        return 1
    return 0


def cmd_show(overrides: List[str]) -> int:
    from geossl.pointcloud.scenes import load_scene
    from geossl.pointcloud.show import save_rgbd_views, save_scene_views

    cfg = _compose("show", overrides)
    scene = load_scene(cfg.dataset, cfg.fusion)
    out = Path(cfg.run_dir) if cfg.get("run_dir") else Path(cfg.out_dir) / f"show-{cfg.dataset.name}"
    paths = save_scene_views(scene, out, scene["name"], int(cfg.size))
    if scene.get("frames") is not None and len(scene["frames"].frames):
        paths.append(save_rgbd_views(scene["frames"].frames, out / f"{scene['name']}_rgbd.png"))
    print(f"{scene['name']}: {len(scene['coord'])} points, {len(scene.get('boxes', []))} boxes")
    for path in paths:
        print(path)
    return 0


def cmd_datasets(overrides: List[str]) -> int:
    from geossl.data import DATA_ENV, data_root
    from geossl.graph.datasets import dataset_status
    from geossl.registry import DATASETS

    root = None
    for o in overrides:
        if o.startswith("dataset.root="):
            root = o.split("=", 1)[1]
    print(f"data root: {data_root(root)} (from {'dataset.root' if root else DATA_ENV if os.environ.get(DATA_ENV) else 'default'})")
    for name in DATASETS.names():
        if name in USER_FILE_DATASETS:
            print(f"  {name:14s} {USER_FILE_DATASETS[name]}")
            continue
        ok, where = dataset_status(name, root)
        print(f"  {name:14s} {'found' if ok else 'missing':8s} {where}")
    print("RGB-D sequences (geossl fit-gaussians dataset=<name>):")
    for name, folder in (("sevenscenes", "3d/7scenes_tsdf_fusion_every5th"), ("redwood", "3d/redwood_livingroom1_open3d")):
        path = data_root(root) / folder
        print(f"  {name:14s} {'found' if path.is_dir() else 'missing':8s} {path}")
    print(f"  {'scannet_export':14s} {'':8s} an exported ScanNet scene: dataset.root=<folder with color/ depth/ pose/ intrinsic/>")
    from geossl.pointcloud.scannet import DEFAULT, scannet_scenes

    print("Point-cloud scenes (geossl show dataset=<name>; RGB-D sequences are fused by TSDF fusion):")
    scenes = scannet_scenes(root and str(data_root(root) / DEFAULT))
    print(f"  {'scannet':14s} {'found' if scenes else 'missing':8s} {data_root(root) / DEFAULT} ({', '.join(scenes) or 'no scenes'})")
    print(f"  {'rooms':14s} {'built-in':8s} procedural rooms, one per dataset.seed (points, boxes, ray-cast RGB-D views; also fit-gaussians)")
    return 0


def cmd_config(overrides: List[str]) -> int:
    from omegaconf import OmegaConf

    print(OmegaConf.to_yaml(_compose(f"pretrain_{_domain(overrides)}", overrides)))
    return 0


COMMANDS = {"pretrain": cmd_pretrain, "evaluate": cmd_evaluate, "fit-gaussians": cmd_fit_gaussians, "show": cmd_show,
            "datasets": cmd_datasets, "config": cmd_config}


def _friendly(exc: BaseException) -> Optional[str]:
    """A one-paragraph message for errors caused by input; None for programming errors."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from geossl.errors import GeosslError

    if isinstance(exc, GeosslError):
        return str(exc)
    if isinstance(exc, (HydraException, OmegaConfBaseException)):
        text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        text = text.replace("Available options in", ". Available options in").replace(" . ", ". ")
        return f"Config error: {text}"
    return None


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    command, overrides = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"geossl: error: unknown command {command!r}. Valid commands: {', '.join(COMMANDS)}.", file=sys.stderr)
        return 2
    sys.path.insert(0, os.getcwd())
    try:
        for name in DOMAINS.values():
            __import__(name)
        return COMMANDS[command](overrides)
    except KeyboardInterrupt:
        print("geossl: interrupted; the last checkpoint in the run folder can be resumed with trainer.resume=<run folder>.", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - only input errors are turned into messages
        message = _friendly(exc)
        if message is None:
            raise
        print("\n".join(textwrap.wrap(f"geossl: error: {message}", width=100, break_long_words=False, break_on_hyphens=False)), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
