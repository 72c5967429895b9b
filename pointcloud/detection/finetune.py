"""Detection as a downstream task of the run pipeline (:func:`geossl.pipeline.finetune`): ``geossl finetune
detection=<head> dataset=<name> encoder=<file | registry name>`` trains a detector (the encoder as its backbone,
a head of :data:`geossl.registry.HEADS`) through the engine, scores it on the test split with mmdetection3d's
indoor protocol, and draws test scenes with their predicted and true boxes; ``geossl evaluate model=<file>``
(or ``detector=<file>``) scores a saved detector again.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict, List

import torch
from omegaconf import DictConfig

from geossl.encoder import Encoder
from geossl.errors import ConfigError
from geossl.pipeline import FinetuneJob
from geossl.points import collate
from geossl.pointcloud.adapter import announce_data
from geossl.pointcloud.datasets import datasets_with
from geossl.pointcloud.detection.detector import Detector, save_detector
from geossl.pointcloud.detection.evaluation import indoor_map
from geossl.pointcloud.finetuned import FinetuneTraining, head_settings, monitor_curve

#: Detector keys of the ``detection`` section (the rest are the head's).
DETECTOR_KEYS = ("freeze_backbone", "backbone_lr")


def build_detector(cfg: DictConfig, data, backbone: Encoder) -> Detector:
    """The detector of ``cfg``: ``backbone`` (the run's encoder, pretrained or fresh), head from ``cfg.detection``,
    classes and yaw from the dataset."""
    settings = head_settings(cfg, "detection", exclude=("in_dim", "num_classes", "yaw"))
    detector_args = {k: settings.pop(k) for k in DETECTOR_KEYS}
    train = data.split("train")
    for split in ("train", "val", "test"):  # refused before training: a split without boxes cannot train or score one
        if data.split(split).box_classes is None:
            raise ConfigError(f"Dataset {data.name!r} has no boxes to train a detector on (its {split} split holds none). "
                              f"Datasets with boxes: {datasets_with('boxes')}.")
    detector = Detector(backbone, train.box_classes, head=cfg.detection.name, head_config=settings, yaw=train.box_yaw,
                        **detector_args)
    if data.transform.points < detector.min_points:
        raise ConfigError(f"transform.points={data.transform.points} is below what the detector needs per scene: {detector.min_points} "
                          "points (the backbone's patches and the head's seeds).")
    return detector


@torch.no_grad()
def evaluate_on(detector: Detector, data, split: str = "test") -> Dict[str, Any]:
    """mAP@0.25/0.5 and per-class AP of ``detector`` on a split (each scene with its evaluation seed). When the
    detector's classes are not the dataset's (a detector trained on rooms, evaluated on ScanNet), the classes they
    share by name are evaluated: predictions are renumbered into the dataset's classes, the rest of both dropped."""
    from torch.utils.data import DataLoader

    from geossl.engine.loader import SeededSampler

    ds = data.split(split)
    classes = list(ds.box_classes or [])
    shared = [c for c in detector.classes if c in classes]
    if not shared:
        raise ConfigError(f"The detector predicts {', '.join(detector.classes)}; dataset {data.name!r} has "
                          f"{', '.join(classes) or 'no boxes'}: no class in common to evaluate.")
    to_dataset = torch.tensor([classes.index(c) if c in classes else -1 for c in detector.classes])
    keep_gt = torch.tensor([c in shared for c in classes])
    preds, gts, scenes = [], [], []
    detector.eval()
    t0 = time.perf_counter()
    for batch in DataLoader(ds, batch_size=data.batch_size, sampler=SeededSampler(range(len(ds)), 0), collate_fn=collate):
        for p in detector.predict(batch):
            boxes, scores = p["boxes"].cpu(), p["scores"].cpu()
            mapped = to_dataset[boxes[:, -1].long()]
            boxes = torch.cat([boxes[:, :-1], mapped[:, None].float()], 1)[mapped >= 0]
            preds.append({"boxes": boxes, "scores": scores[mapped >= 0]})
        gts += [b.cpu()[keep_gt[b[:, -1].long().cpu()]] for b in batch.boxes]
        scenes += [(batch.coord[s], batch.feat[s]) for s in batch.scene_slices()]
    seconds = time.perf_counter() - t0
    result = indoor_map(preds, gts, classes)
    out = {"mAP@0.25": result.map[0.25], "mAP@0.5": result.map[0.5], "class_AP@0.25": result.class_ap[0.25],
           "classes_evaluated": shared if len(shared) < len(classes) or shared != list(detector.classes) else "all",
           "class_AP@0.5": result.class_ap[0.5], "test_scenes": len(gts), "inference_seconds_per_scene": seconds / max(len(gts), 1)}
    return {"metrics": out, "predictions": preds, "ground_truth": gts, "scenes": scenes}


def save_detection_views(evaluated: Dict[str, Any], classes: List[str], path: Path, scenes: int = 4, size: int = 400) -> Path:
    """A PNG of the first test scenes from above: points in their colours, true boxes green, predicted boxes
    (score >= 0.3) red, each labelled with its class; a yawed box drawn as its turned footprint, every box inside."""
    import numpy as np
    from PIL import Image

    from geossl.pointcloud.show import _view

    tiles = []
    for (coord, feat), pred, gt in list(zip(evaluated["scenes"], evaluated["predictions"], evaluated["ground_truth"]))[:scenes]:
        shown = pred["boxes"][pred["scores"] >= 0.3]
        img = _view(coord.numpy(), feat.numpy(), [(gt.numpy(), (0, 160, 0)), (shown.numpy(), (220, 0, 0))], (0, 1), 2, size, classes)
        tiles.append(np.array(img.convert("RGB")))
    height = max(t.shape[0] for t in tiles)
    tiles = [np.pad(t, ((0, height - t.shape[0]), (0, 4), (0, 0)), constant_values=255) for t in tiles]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(tiles, 1)).save(path)
    return path


def detection_job(cfg: DictConfig, data, encoder: Encoder, engine) -> FinetuneJob:
    """How a detector trains on ``data`` and is scored: the pieces :func:`geossl.pipeline.finetune` runs."""
    detector = build_detector(cfg, data, encoder)
    train = data.split("train")
    announce_data(data, engine)
    batches = engine.loader(train, data.batch_size, collate_fn=collate, shuffle=True, seeded=True)

    def monitor(task) -> Dict[str, float]:  # the learning curve: validation mAP every trainer.monitor_every epochs
        m = evaluate_on(task.model, data, "val")["metrics"]
        task.train()
        return {"val_mAP@0.25": m["mAP@0.25"], "val_mAP@0.5": m["mAP@0.5"]}

    def evaluate(task, run_dir: Path) -> Dict[str, Any]:
        evaluated = evaluate_on(task.model, data)
        png = save_detection_views(evaluated, list(data.split("test").box_classes), run_dir / "detections.png")
        return {**evaluated["metrics"], "val_curve": monitor_curve(run_dir / "metrics.csv", "step" if engine.cfg.steps else "epoch"), "detections_png": str(png.resolve())}

    def save(task, path: Path, metadata: Dict[str, Any]) -> Path:
        return save_detector(task.model, path, metadata=metadata)

    return FinetuneJob(FinetuneTraining(detector), batches, monitor, evaluate, save, "detector",
                       extra={"train_scenes": len(train.keys), "train_fraction": data.train_fraction})


def evaluate_detector(detector: Detector, data) -> Dict[str, Any]:
    """``geossl evaluate model=<detector file>``: the test split's metrics."""
    return evaluate_on(detector, data)["metrics"]
