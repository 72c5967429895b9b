"""The scene domain's adapter to the shared run pipeline (:mod:`geossl.pipeline`): scene data, batches,
evaluations, and the detection and segmentation heads that the pipeline's ``finetune`` task trains.

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
from geossl.errors import ConfigError
from geossl.eval import rankme, seg_probe
from geossl.pipeline import DomainAdapter, Job, dataset_builder, section
from geossl.points import collate
from geossl.registry import DATASETS, ENCODERS, METHODS

from geossl.pointcloud.datasets import SceneDataset, datasets_with
from geossl.pointcloud.transforms import TransformConfig

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
            if name != "train":  # dataset.loop repeats the training scenes only: every val/test scene is scored once
                ds.loop = 1
            if name == "train" and self.train_fraction < 1.0:
                # a fixed share of the training scenes: the same subset for every run seed
                order = torch.randperm(len(ds.keys), generator=torch.Generator().manual_seed(0)).tolist()
                ds.keys = [ds.keys[i] for i in sorted(order[:max(1, math.ceil(self.train_fraction * len(ds.keys)))])]
            self._splits[name] = ds
        return self._splits[name]

    @property
    def semantic_classes(self) -> Optional[Tuple[str, ...]]:
        return self.split("train").semantic_classes


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


def announce_data(data: SceneData, engine) -> None:
    """One line, before anything is trained, saying where the training items come from (the run's first minutes may
    go to making them) and how many loader workers make them; shown where the engine shows progress."""
    if engine.cfg.progress and engine.fabric.is_global_zero:
        train = data.split("train")
        per = "per epoch" if engine.cfg.steps is None else "per pass (the run counts steps; the passes repeat, reshuffled)"
        print(f"data: {len(train)} training items of {data.name} {per}, {data.batch_size} per batch: {train.origin}; "
              f"{engine.cfg.num_workers} loader worker(s) (trainer.num_workers)", flush=True)


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
                              f"labels: {datasets_with('labels')}; eval=auto or eval=none evaluates without labels.")
        method_name = cfg.scene.get("name") if "scene" in cfg else None
        method_cls = METHODS.get(method_name, domain="scene") if method_name in METHODS.names("scene") else None
        need = method_cls.views_needed(cfg.scene) if hasattr(method_cls, "views_needed") else 0
        if data.split("train").views < need:
            raise ConfigError(f"scene={method_name} learns from {need} posed view(s) of every scene, and dataset.views is "
                              f"{data.split('train').views}: set dataset.views={need} or more. Datasets with posed views: "
                              f"{datasets_with('views')}.")
        if need and isinstance(cfg.scene.get("image_patch"), int):  # before the method allocates its patch embedding
            train = data.split("train")
            H, W = train.scene(train.keys[0])["frames"].frames[0].color.shape[:2]
            if not 1 <= cfg.scene.image_patch <= min(W, H):
                raise ConfigError(f"scene.image_patch={cfg.scene.image_patch} must be between 1 and the views' shorter side: "
                                  f"dataset {data.name!r} has {W}x{H} views.")
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
        announce_data(data, engine)
        batches = engine.loader(train, data.batch_size, collate_fn=collate, shuffle=True, seeded=True)
        monitor_batch = collate([data.split("val")[(i, i)] for i in range(min(data.batch_size, len(data.split("val"))))])

        def monitor(method) -> Dict[str, float]:
            return {"rankme": rankme(method.embed(monitor_batch.to(engine.device)))}

        def evaluate(method) -> Dict[str, Any]:
            out: Dict[str, Any] = {}
            if hasattr(method, "held_out_metrics"):
                out.update(held_out_metrics(method, data, engine.device))
            if hasattr(method, "held_out_views"):  # rendered | real, for the first test scenes
                from geossl.pointcloud.show import save_render_pairs

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
        """``(name, state, where)`` of every scene dataset, from what its registration declares: a ``folder`` under the
        data root (found or missing), else its ``state`` and ``about`` text (generated data, or a folder the user names)."""
        from geossl.data import data_root

        base = data_root(root)
        out = []
        for name in DATASETS.names("scene"):
            tags = DATASETS.tags(name)
            if tags.get("folder"):
                where = base / tags["folder"]
                out.append((name, "found" if where.is_dir() else "missing", str(where)))
            else:
                out.append((name, tags.get("state", ""), tags.get("about", "")))
        return out

    def finetune_job(self, cfg: DictConfig, data: SceneData, encoder, group: str, engine):
        if group == "detection":
            from geossl.pointcloud.detection.finetune import detection_job

            return detection_job(cfg, data, encoder, engine)
        if group == "segmentation":
            from geossl.pointcloud.segmentation.finetune import segmentation_job

            return segmentation_job(cfg, data, encoder, engine)
        raise ConfigError(f"The scene domain fine-tunes detection and segmentation heads; {group}= is not one of its head groups.")

    def load_model(self, path: str):
        from geossl.pointcloud.finetuned import load_finetuned

        return load_finetuned(path)

    def evaluate_model(self, cfg: DictConfig, data: SceneData, model) -> Dict[str, Any]:
        from geossl.pointcloud.detection.detector import Detector

        if isinstance(model, Detector):
            from geossl.pointcloud.detection.finetune import evaluate_detector

            return evaluate_detector(model, data)
        from geossl.pointcloud.segmentation.finetune import evaluate_segmenter

        return evaluate_segmenter(model, data)

    def describe_finetune(self, summary: Dict[str, Any], run_dir: Path) -> str:
        if "segmentation" in summary:
            return (f"{summary['segmentation']} segmentation on {summary['dataset']} ({summary['train_scenes']} training scenes, encoder "
                    f"{summary['encoder']}): mIoU={summary['mIoU']:.4f} OA={summary['OA']:.4f} over {summary['test_points']} test points "
                    f"({summary['seconds_per_step']:.2f} s/step) -> {run_dir}")
        return (f"{summary['detection']} on {summary['dataset']} ({summary['train_scenes']} training scenes, encoder "
                f"{summary['encoder']}): mAP@0.25={summary['mAP@0.25']:.4f} mAP@0.5={summary['mAP@0.5']:.4f} "
                f"({summary['seconds_per_step']:.2f} s/step) -> {run_dir}")


#: The adapter the CLI finds through the ``geossl.domains`` entry point ``scene``.
ADAPTER = SceneAdapter()
