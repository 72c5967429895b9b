"""The scene domain's adapter to the shared run pipeline (:mod:`geossl.pipeline`), and the scene
commands ``geossl show`` and ``geossl fit-gaussians``.

A scene run reads a scene dataset's train split through the run's transforms (:mod:`.transforms`) in
shuffled batches of ``dataset.batch_size`` scenes, loaded by ``trainer.num_workers`` workers with a
seed per item. It is evaluated without labels (RankMe of the per-point features, and the method's own
held-out metrics, e.g. Point-MAE's masked-patch Chamfer distance against a copy baseline) and, where the
dataset has per-point semantic labels, by the segmentation probe (:func:`geossl.eval.seg_probe`):
a linear classifier on frozen per-point features, trained on the train split, selected on val,
scored on test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from omegaconf import DictConfig

from geossl.config import schema_from_signature, validate
from geossl.errors import ConfigError, GeosslError
from geossl.eval import rankme, seg_probe
from geossl.pipeline import DomainAdapter, Job, dataset_builder, section
from geossl.points import collate
from geossl.registry import DATASETS, ENCODERS, METHODS

from .datasets import SceneDataset, scene_for_show
from .transforms import TransformConfig

#: ``eval=``: "auto" (the segmentation probe where the dataset has semantic labels, else label-free
#: metrics only), "seg_probe" (required), "none" (label-free metrics only).
EVALS = ("auto", "seg_probe", "none")
#: Keys of a scene dataset's config section that are the run's, not the dataset builder's, with their defaults.
RUN_KEYS = {"batch_size": 8, "train_fraction": 1.0}
#: The seg probe's keys that are the run's, not :func:`seg_probe`'s.
PROBE_KEYS = {"name": None, "train_scenes": 200, "points_per_scene": 2048}


@dataclass
class SceneData:
    """The splits of a scene dataset for one run (built on first use) and what they carry.

    Attributes:
        name: the dataset's name. in_dim: point feature width. batch_size: scenes per step.
        transform: the run's transforms (train items augmented, val/test items only centred, grid-sampled
            and subsampled, deterministically).
        build: ``build(split)`` -> the split's :class:`SceneDataset` (untransformed).
    """

    name: str
    in_dim: int
    batch_size: int
    transform: TransformConfig
    build: Callable[[str], SceneDataset]
    train_fraction: float = 1.0
    _splits: Dict[str, SceneDataset] = field(default_factory=dict)

    def split(self, name: str) -> SceneDataset:
        if name not in self._splits:
            ds = self.build(name)
            ds.transform = self.transform.train() if name == "train" else self.transform.eval()
            if name == "train" and self.train_fraction < 1.0:
                # a fixed share of the training scenes: the same subset for every run seed
                order = torch.randperm(len(ds.keys), generator=torch.Generator().manual_seed(0)).tolist()
                ds.keys = [ds.keys[i] for i in sorted(order[:max(1, math.ceil(self.train_fraction * len(ds.keys)))])]
            self._splits[name] = ds
        return self._splits[name]

    @property
    def semantic_classes(self) -> Optional[Tuple[str, ...]]:
        return self.split("train").semantic_classes


def labelled_datasets() -> str:
    return "rooms, scannet, scene_folder (with semantic arrays)"


def views_datasets() -> str:
    return "rooms, sevenscenes, redwood, scene_folder with frames (scannet: the sample scene0000_00 only, colour without depth)"


def probe_settings(cfg: DictConfig) -> Dict[str, Any]:
    """The validated ``eval`` section: its name, the probe's arguments and the run's (train_scenes, points_per_scene)."""
    name = cfg.eval.get("name")
    if name not in EVALS:
        raise ConfigError(f"Unknown eval {name!r}. Valid choices of eval for scenes: {', '.join(EVALS)}.")
    if name == "none":
        extra = sorted(set(cfg.eval) - {"name"})
        if extra:
            raise ConfigError(f"eval=none takes no settings; got {', '.join(f'eval.{k}' for k in extra)}.")
        return {"name": "none"}
    return validate(cfg.eval, schema_from_signature(seg_probe, exclude=("train_x", "train_y", "val_x", "val_y", "test_x", "test_y",
                                                                        "num_classes", "seed"), extra=PROBE_KEYS), "eval")


@torch.no_grad()
def point_features(features: Callable, dataset: SceneDataset, batch_size: int, max_scenes: Optional[int] = None,
                   points_per_scene: Optional[int] = None, seed: int = 0) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(features [N, D], labels [N])`` of the scenes of ``dataset`` (its first ``max_scenes``), each item with
    its evaluation seed; ``points_per_scene`` keeps a fixed random subset of each scene's points.
    ``features(batch)`` is an encoder in eval mode, or any function of a batch (raw xyz+rgb, say)."""
    from torch.utils.data import DataLoader

    from geossl.engine.loader import SeededSampler

    n = len(dataset) if max_scenes is None else min(max_scenes, len(dataset))
    sampler = SeededSampler(range(n), seed)
    g = torch.Generator().manual_seed(seed)
    xs, ys = [], []
    for batch in DataLoader(dataset, batch_size=batch_size, sampler=sampler, collate_fn=collate):
        f = features(batch)
        labels = batch.labels if batch.labels is not None else torch.full((len(batch.coord),), -1, dtype=torch.long)
        for s in batch.scene_slices():
            keep = torch.arange(s.start, s.stop)
            if points_per_scene is not None and len(keep) > points_per_scene:
                keep = keep[torch.randperm(len(keep), generator=g)[:points_per_scene]]
            xs.append(f[keep].float().cpu())
            ys.append(labels[keep].cpu())
    return torch.cat(xs), torch.cat(ys)


def probe(features: Callable, data: SceneData, cfg: DictConfig) -> Dict[str, Any]:
    """The segmentation probe of ``features`` on ``data`` with the ``eval`` settings of ``cfg``, plus RankMe of
    the test points' features."""
    settings = probe_settings(cfg)
    name = settings.pop("name")
    test_x, test_y = point_features(features, data.split("test"), data.batch_size)
    out: Dict[str, Any] = {"rankme": rankme(test_x)}
    classes = data.semantic_classes
    if name == "none" or (name == "auto" and classes is None):
        return out
    train_scenes, per_scene = settings.pop("train_scenes"), settings.pop("points_per_scene")
    train_x, train_y = point_features(features, data.split("train"), data.batch_size, train_scenes, per_scene)
    val_x, val_y = point_features(features, data.split("val"), data.batch_size)
    r = seg_probe(train_x, train_y, val_x, val_y, test_x, test_y, len(classes), seed=int(cfg.seed), **settings)
    out.update({"seg_miou": r.miou, "seg_oa": r.oa, "seg_val_miou": r.val_miou, "seg_best_epoch": r.best_epoch,
                "seg_class_iou": {c: (None if math.isnan(v) else v) for c, v in zip(classes, r.class_iou)}, "seg_train_points": len(train_x), "seg_test_points": len(test_x)})
    return out


def held_out_metrics(method, data: SceneData, device) -> Dict[str, float]:
    """The method's own metrics (``method.held_out_metrics(batch, generator)``) averaged over the test split."""
    from torch.utils.data import DataLoader

    from geossl.engine.loader import SeededSampler

    test = data.split("test")
    sums: Dict[str, float] = {}
    batches = 0
    was = method.training
    method.eval()
    try:
        loader = DataLoader(test, batch_size=data.batch_size, sampler=SeededSampler(range(len(test)), 0), collate_fn=collate)
        for i, batch in enumerate(loader):
            for k, v in method.held_out_metrics(batch.to(device), torch.Generator().manual_seed(i)).items():
                sums[k] = sums.get(k, 0.0) + v
            batches += 1
    finally:
        method.train(was)
    return {f"test_{k}": v / max(batches, 1) for k, v in sums.items()}


class SceneAdapter(DomainAdapter):
    """Scenes: scene datasets with splits, point batches, RankMe + the segmentation probe."""

    domain = "scene"

    def load_dataset(self, cfg: DictConfig) -> SceneData:
        builder, kwargs, run_keys = dataset_builder(cfg, "scene", extra=RUN_KEYS, exclude=("split",))
        kwargs.pop("scene", None)  # which scene `show` draws; a run reads the splits
        transform = TransformConfig(**validate(cfg.transform, TransformConfig, "transform"))
        if int(run_keys["batch_size"]) < 1 or not 0 < float(run_keys["train_fraction"]) <= 1:
            raise ConfigError(f"dataset.batch_size must be >= 1 and dataset.train_fraction in (0, 1]; got {run_keys['batch_size']} "
                              f"and {run_keys['train_fraction']}.")
        data = SceneData(cfg.dataset.name, 3, int(run_keys["batch_size"]), transform, lambda split: builder(split=split, **kwargs),
                         float(run_keys["train_fraction"]))
        data.split("train")  # a missing dataset or split fails here, before anything else
        return data

    def check(self, cfg: DictConfig, data: SceneData) -> None:
        name = probe_settings(cfg)["name"]
        if name == "seg_probe" and data.semantic_classes is None:
            raise ConfigError(f"eval=seg_probe needs per-point semantic labels, and dataset {data.name!r} has none. Datasets with "
                              f"labels: {labelled_datasets()}; eval=auto or eval=none evaluates without labels.")
        method_name = cfg.scene.get("name") if "scene" in cfg else None
        method_cls = METHODS.get(method_name, domain="scene") if method_name in METHODS.names("scene") else None
        need = method_cls.views_needed(cfg.scene) if hasattr(method_cls, "views_needed") else 0
        if data.split("train").views < need:
            raise ConfigError(f"scene={method_name} learns from {need} posed view(s) of every scene, and dataset.views is "
                              f"{data.split('train').views}: set dataset.views={need} or more. Datasets with posed views: "
                              f"{views_datasets()}.")
        if cfg.get("encoder_file") is None:  # pretraining: the encoder of the config (evaluate: check_encoder)
            encoder_cls = ENCODERS.get(cfg.encoder.name, domain="scene")
            with torch.device("meta"):
                shell = encoder_cls(in_dim=data.in_dim, **section(cfg, "encoder", encoder_cls, exclude=("in_dim",)))
            self._check_points(data, shell, f"encoder={cfg.encoder.name}")

    @staticmethod
    def _check_points(data: SceneData, encoder, what: str) -> None:
        need = int(getattr(encoder, "min_points", 1))
        if data.transform.points < need:
            raise ConfigError(f"transform.points={data.transform.points} is below what {what} needs per scene: "
                              f"{need} points (encoder.centres={encoder.centres} x encoder.patch={encoder.patch}). Raise "
                              "transform.points or lower the encoder's centres or patch size.")

    def check_encoder(self, cfg: DictConfig, data: SceneData, encoder, path: str) -> None:
        super().check_encoder(cfg, data, encoder, path)
        self._check_points(data, encoder, f"the encoder in {path!r}")

    def check_method(self, cfg: DictConfig, method_cls, encoder_cls) -> None:
        if hasattr(method_cls, "check_encoder"):
            method_cls.check_encoder(encoder_cls)

    def job(self, cfg: DictConfig, data: SceneData, engine) -> Job:
        train = data.split("train")
        batches = engine.loader(train, data.batch_size, collate_fn=collate, shuffle=True, seeded=True)
        monitor_batch = collate([data.split("val")[(i, i)] for i in range(min(data.batch_size, len(data.split("val"))))])

        def monitor(method) -> Dict[str, float]:
            return {"rankme": rankme(method.embed(monitor_batch.to(engine.device)))}

        def evaluate(method) -> Dict[str, Any]:
            out: Dict[str, Any] = {}
            if hasattr(method, "held_out_metrics"):
                out.update(held_out_metrics(method, data, engine.device))
            if hasattr(method, "held_out_views"):  # rendered | real, for the first test scenes
                from .show import save_render_pairs

                test = data.split("test")
                batch = collate([test[(i, i)] for i in range(min(data.batch_size, len(test), 3))]).to(engine.device)
                method.eval()
                pairs = method.held_out_views(batch, torch.Generator().manual_seed(0))
                out["held_out_views_png"] = str(save_render_pairs(pairs, engine.run_dir / "held_out_views.png").resolve())
            method.encoder.eval()
            out.update(probe(lambda b: method.encoder(b.to(engine.device)), data, cfg))
            return out

        return Job(batches, monitor, evaluate, extra={"train_scenes": len(train.keys), "steps_per_epoch": len(batches)})

    def evaluate_encoder(self, cfg: DictConfig, data: SceneData, encoder) -> Dict[str, Any]:
        return probe(encoder, data, cfg)

    def describe(self, summary: Dict[str, Any], run_dir: Path) -> str:
        parts = [f"{summary['method']} on {summary['dataset']}:"]
        if "test_chamfer" in summary:
            parts.append(f"held-out chamfer={summary['test_chamfer']:.5f} (copy baseline {summary['test_chamfer_copy']:.5f})")
        if "test_render_psnr" in summary:
            parts.append(f"held-out views PSNR={summary['test_render_psnr']:.2f} (point baseline {summary['test_baseline_psnr']:.2f})")
        if "seg_miou" in summary:
            parts.append(f"seg_probe mIoU={summary['seg_miou']:.4f} OA={summary['seg_oa']:.4f}")
        parts.append(f"rankme={summary['rankme']:.1f} ({summary['seconds_per_epoch']:.2f} s/epoch) -> {run_dir}")
        return " ".join(parts)

    def dataset_status(self, root) -> List[Tuple[str, str, str]]:
        from geossl.data import data_root

        from .scannet import DEFAULT, scannet_scenes

        base = data_root(root)
        scenes = scannet_scenes(str(base / DEFAULT)) if (base / DEFAULT).is_dir() else []
        out = [("rooms", "built-in", "procedural rooms, a split is a range of seeds (points, labels, boxes, ray-cast RGB-D views)"),
               ("scannet", "found" if scenes else "missing", f"{base / DEFAULT} ({', '.join(scenes) or 'no scenes'})")]
        for name, folder in (("sevenscenes", "3d/7scenes_tsdf_fusion_every5th"), ("redwood", "3d/redwood_livingroom1_open3d")):
            out.append((name, "found" if (base / folder).is_dir() else "missing", str(base / folder)))
        out.append(("scannet_export", "", "an exported ScanNet scene: dataset.root=<folder with color/ depth/ pose/ intrinsic/>"))
        out.append(("scene_folder", "", "your scenes in the scene-folder format: dataset.root=<folder> (docs/datasets.md)"))
        return out

    @property
    def commands(self) -> Dict[str, Callable]:
        return {"fit-gaussians": cmd_fit_gaussians, "show": cmd_show, "finetune": cmd_finetune, "evaluate-detector": cmd_evaluate_detector}


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


def cmd_show(overrides: List[str], compose) -> int:
    """``geossl show dataset=<name> [dataset.scene=<id>]``: PNG views of one scene, its boxes and its RGB-D views."""
    from geossl.pipeline import run_dir_for

    from .show import save_rgbd_views, save_scene_views

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


def cmd_fit_gaussians(overrides: List[str], compose) -> int:
    """``geossl fit-gaussians dataset=<name>``: fit 3D Gaussians to a scene's posed RGB-D frames."""
    import sys

    from geossl.gaussians.run import fit_config, fit_device, fit_scene
    from geossl.pipeline import run_dir_for

    cfg = compose("fit_gaussians", overrides, "scene")
    _strict(cfg, ("dataset", "fit", "grid_views", "threads", "device", "progress", "seed", "out_dir", "run_dir"), "fit-gaussians")
    fit_config(cfg), fit_device(str(cfg.device))  # bad settings fail before the scene is read
    scene = _raw_scene(cfg)
    if scene.get("frames") is None or not len(scene["frames"].frames):
        with_views = [n for n in DATASETS.names("scene") if n != "scannet"]
        raise GeosslError(f"fit-gaussians needs posed RGB-D frames, and scene {scene['name']} of dataset {cfg.dataset.name!r} has "
                          f"none. Datasets with posed RGB-D frames: {', '.join(with_views)}.")
    run_dir = run_dir_for(cfg, f"fit-{cfg.dataset.name}")
    s = fit_scene(cfg, run_dir, scene["frames"])
    print(f"fit-gaussians on {cfg.dataset.name}: held-out PSNR {s['psnr']:.2f} dB (depth-valid pixels {s['psnr_valid_depth']:.2f}), "
          f"SSIM {s['ssim']:.3f}, {s['gaussians']} Gaussians, {s['iterations']} iterations in {s['fit_seconds']:.0f} s -> {run_dir}")
    if s["stopped_early"]:
        print(f"geossl: error: the fit stopped early ({s['stopped_early']}); the last good Gaussians were written.", file=sys.stderr)
        return 1
    return 0


def cmd_finetune(overrides: List[str], compose) -> int:
    """``geossl finetune detection=<head> dataset=<name> encoder=<file | registry name>``: train and evaluate a detector."""
    import os

    from geossl.pipeline import run_dir_for

    from .detection.finetune import finetune

    from pathlib import Path as _Path

    def as_file(o: str) -> str:  # encoder=<file> starts from a saved encoder; encoder=<name> picks the encoder group
        value = o.split("=", 1)[1]
        return f"encoder_file={value}" if value.endswith(".safetensors") or _Path(value).is_file() else o

    cfg = compose("finetune_scene", [as_file(o) if o.startswith("encoder=") else o for o in overrides], "scene")
    DATASETS.get(cfg.dataset.name, domain="scene")
    run_dir = run_dir_for(cfg, f"{cfg.detection.name}-{cfg.dataset.name}")
    s = finetune(cfg, run_dir, ADAPTER)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"{cfg.detection.name} on {s['dataset']} ({s['train_scenes']} training scenes, encoder {s['encoder']}): "
              f"mAP@0.25={s['mAP@0.25']:.4f} mAP@0.5={s['mAP@0.5']:.4f} ({s['seconds_per_epoch']:.1f} s/epoch) -> {run_dir}")
    return 0


def cmd_evaluate_detector(overrides: List[str], compose) -> int:
    """``geossl evaluate detector=<file> dataset=<name>``: mAP of a saved detector on the dataset's test split."""
    import json

    from .detection.finetune import evaluate_detector

    overrides = [f"detector_file={o.split('=', 1)[1]}" if o.startswith("detector=") else o for o in overrides]
    cfg = compose("evaluate_detector", overrides, "scene")
    DATASETS.get(cfg.dataset.name, domain="scene")
    print(json.dumps(evaluate_detector(cfg, ADAPTER), indent=2))
    return 0


#: The adapter the CLI finds through the ``geossl.domains`` entry point ``scene``.
ADAPTER = SceneAdapter()
