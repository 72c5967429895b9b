"""Semantic segmentation as a downstream task of the run pipeline (:func:`geossl.pipeline.finetune`): ``geossl finetune
segmentation=<head> dataset=<name> encoder=<file | registry name>`` trains a segmenter (the encoder as its backbone,
unfrozen unless ``segmentation.freeze_backbone``) on the training split's crops through the engine, follows its
validation mIoU, and scores every point of the test scenes (:func:`~geossl.pointcloud.segmentation.segmenter.segment_scene`):
mIoU over the classes present in the test labels or predictions, overall accuracy and per-class IoU, as Pointcept's
tester; ``geossl evaluate model=<file>`` (or ``segmenter=<file>``) scores a saved segmenter again.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Dict

import torch
from omegaconf import DictConfig

from geossl.encoder import Encoder
from geossl.errors import ConfigError
from geossl.eval.seg_probe import confusion, iou_scores
from geossl.pipeline import FinetuneJob
from geossl.points import collate
from geossl.pointcloud.adapter import announce_data
from geossl.pointcloud.datasets import datasets_with
from geossl.pointcloud.finetuned import FinetuneTraining, head_settings, monitor_curve
from geossl.pointcloud.segmentation.segmenter import Segmenter, save_segmenter, segment_scene

#: Segmenter keys of the ``segmentation`` section (the rest are the head's).
SEGMENTER_KEYS = ("freeze_backbone", "backbone_lr")


def build_segmenter(cfg: DictConfig, data, backbone: Encoder) -> Segmenter:
    """The segmenter of ``cfg``: ``backbone`` (the run's encoder, pretrained or fresh), the head of ``cfg.segmentation``,
    the dataset's semantic classes; refused before training when a split has no labels or the point budget is too small."""
    settings = head_settings(cfg, "segmentation")
    model_args = {k: settings.pop(k) for k in SEGMENTER_KEYS}
    classes = data.semantic_classes
    if classes is None:
        raise ConfigError(f"Dataset {data.name!r} has no per-point semantic labels to train a segmenter on. Datasets with labels: "
                          f"{datasets_with('labels')}.")
    t = data.transform
    segmenter = Segmenter(backbone, classes, head=cfg.segmentation.name, head_config=settings, voxel=t.voxel, points=t.points,
                          budget=t.budget, **model_args)
    if data.transform.points < segmenter.min_points:
        raise ConfigError(f"transform.points={data.transform.points} is below what the segmenter needs per scene: "
                          f"{segmenter.min_points} points (the backbone's patches).")
    return segmenter


@torch.no_grad()
def evaluate_on(segmenter: Segmenter, data, split: str = "test", device="cpu") -> Dict[str, Any]:
    """mIoU, overall accuracy and per-class IoU of ``segmenter`` over every labelled point of every scene of a split
    (each scene once, whatever ``dataset.loop``), segmented whole at the density and in the pieces it was trained on."""
    ds = data.split(split)
    classes = list(ds.semantic_classes or [])
    if classes != segmenter.classes:
        raise ConfigError(f"The segmenter predicts {', '.join(segmenter.classes)}; dataset {data.name!r} labels "
                          f"{', '.join(classes) or 'nothing'}: a segmenter is scored on the classes it was trained for.")
    conf = torch.zeros(len(classes), len(classes), dtype=torch.long)
    t0 = time.perf_counter()
    for key in ds.keys:
        scene = ds.scene(key, frames=False)
        if scene.get("labels") is None:
            raise ConfigError(f"Scene {scene.get('name', key)} of the {split} split of {data.name!r} has no per-point labels.")
        pred = segment_scene(segmenter, scene, data.batch_size, device)
        conf += confusion(pred, scene["labels"].long(), len(classes))
    miou, oa, per_class = iou_scores(conf)
    return {"mIoU": miou, "OA": oa, "class_IoU": {c: (None if math.isnan(v) else v) for c, v in zip(classes, per_class)},
            "test_scenes": len(ds.keys), "test_points": int(conf.sum()),
            "inference_seconds_per_scene": (time.perf_counter() - t0) / max(len(ds.keys), 1)}


def segmentation_job(cfg: DictConfig, data, encoder: Encoder, engine) -> FinetuneJob:
    """How a segmenter trains on ``data`` and is scored: the pieces :func:`geossl.pipeline.finetune` runs."""
    segmenter = build_segmenter(cfg, data, encoder)
    train = data.split("train")
    announce_data(data, engine)
    batches = engine.loader(train, data.batch_size, collate_fn=collate, shuffle=True, seeded=True)

    def monitor(task) -> Dict[str, float]:  # the learning curve: validation mIoU at the monitored steps
        return {"val_mIoU": evaluate_on(task.model, data, "val", engine.device)["mIoU"]}

    def evaluate(task, run_dir: Path) -> Dict[str, Any]:
        return {**evaluate_on(task.model, data), "val_curve": monitor_curve(run_dir / "metrics.csv", "step" if engine.cfg.steps else "epoch")}

    def save(task, path: Path, metadata: Dict[str, Any]) -> Path:
        return save_segmenter(task.model, path, metadata=metadata)

    return FinetuneJob(FinetuneTraining(segmenter), batches, monitor, evaluate, save, "segmenter",
                       extra={"train_scenes": len(train.keys), "train_fraction": data.train_fraction})


def evaluate_segmenter(segmenter: Segmenter, data) -> Dict[str, Any]:
    """``geossl evaluate model=<segmenter file>``: the test split's metrics."""
    return evaluate_on(segmenter, data)
