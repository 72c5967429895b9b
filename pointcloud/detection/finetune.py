"""``geossl finetune detection=<head> dataset=<name> encoder=<file | registry name>`` and
``geossl evaluate detector=<file> dataset=<name>``: train a detector through the engine (the one training
loop: checkpoints, resume, NaN stop, logs), then score it on the test split with mmdetection3d's indoor
protocol, and draw test scenes with their predicted and true boxes.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Any, Dict, List

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from geossl.engine import Engine
from geossl.errors import ConfigError
from geossl.io import peak_rss_mb, write_json
from geossl.pipeline import section, trainer_config
from geossl.points import collate
from geossl.registry import ENCODERS
from geossl.pointcloud.detection.detector import Detector, detector_from_encoder, load_detector, save_detector
from geossl.pointcloud.detection.evaluation import indoor_map
from geossl.pointcloud.detection.votenet import HEADS

#: Detector keys of the ``detection`` section (the rest are the head's).
DETECTOR_KEYS = ("freeze_backbone", "backbone_lr")


class DetectionTraining(nn.Module):
    """What the engine trains: a detector whose ``forward`` returns its named losses."""

    def __init__(self, detector: Detector):
        super().__init__()
        self.detector = detector

    def forward(self, batch) -> Dict[str, torch.Tensor]:
        return self.detector.loss(batch)

    def param_groups(self):
        return self.detector.param_groups()

    def train(self, mode: bool = True):
        self.detector.train(mode)
        self.training = mode
        return self


def head_settings(cfg: DictConfig) -> Dict[str, Any]:
    """The validated ``detection`` section without its name: the head's arguments and the detector's
    (``freeze_backbone``, ``backbone_lr``)."""
    from geossl.config import schema_from_signature, validate

    name = cfg.detection.get("name")
    if name not in HEADS:
        raise ConfigError(f"Unknown detection head {name!r}. Valid choices of detection: {', '.join(sorted(HEADS))}.")
    schema = schema_from_signature(HEADS[name], exclude=("in_dim", "num_classes", "yaw"),
                                   extra={"name": None, "freeze_backbone": False, "backbone_lr": 1.0})
    out = validate(cfg.detection, schema, "detection")
    out.pop("name")
    out["freeze_backbone"], out["backbone_lr"] = bool(out["freeze_backbone"]), float(out["backbone_lr"])
    return out


def build_detector(cfg: DictConfig, data) -> Detector:
    """The detector of ``cfg``: backbone from ``cfg.encoder_file`` (pretrained) or a fresh ``cfg.encoder``, head from
    ``cfg.detection``, classes and yaw from the dataset."""
    settings = head_settings(cfg)
    detector_args = {k: settings.pop(k) for k in DETECTOR_KEYS}
    train = data.split("train")
    if train.box_classes is None:
        raise ConfigError(f"Dataset {data.name!r} has no boxes to train a detector on. Datasets with boxes: rooms, scannet, "
                          "scene_folder (with boxes.json).")
    boxes = train.scene(train.keys[0], frames=False).get("boxes")
    yaw = boxes is not None and boxes.shape[1] == 8
    if cfg.get("encoder_file"):
        backbone = str(cfg.encoder_file)
    else:
        cls = ENCODERS.get(cfg.encoder.name, domain="scene")
        backbone = cls(in_dim=data.in_dim, **section(cfg, "encoder", cls, exclude=("in_dim",)))
    detector = detector_from_encoder(backbone, train.box_classes, in_dim=data.in_dim, head=cfg.detection.name,
                                     head_config=settings, yaw=yaw, **detector_args)
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
    (score >= 0.3) red, each labelled with its class."""
    import numpy as np
    from PIL import Image, ImageDraw

    from geossl.pointcloud.show import _view

    tiles = []
    for (coord, feat), pred, gt in list(zip(evaluated["scenes"], evaluated["predictions"], evaluated["ground_truth"]))[:scenes]:
        shown = pred["boxes"][pred["scores"] >= 0.3]
        img = _view(coord.numpy(), feat.numpy(), np.zeros((0, 7)), (0, 1), 2, size)  # the points; boxes drawn below
        draw = ImageDraw.Draw(img)
        lo = coord[:, :2].min(0).values.numpy()
        hi = coord[:, :2].max(0).values.numpy()
        scale = (size - 20) / max(float((hi - lo).max()), 1e-6)
        h = img.size[1]
        for boxes, colour in ((gt, (0, 160, 0)), (shown, (220, 0, 0))):
            for b in boxes.numpy():
                x0, y0 = (b[:2] - b[3:5] / 2 - lo) * scale + 10
                x1, y1 = (b[:2] + b[3:5] / 2 - lo) * scale + 10
                draw.rectangle([x0, h - 1 - y1, x1, h - 1 - y0], outline=colour, width=2)
                draw.text((x0 + 3, h - 1 - y1 + 2), classes[int(b[-1])], fill=colour)
        tiles.append(np.array(img.convert("RGB")))
    height = max(t.shape[0] for t in tiles)
    tiles = [np.pad(t, ((0, height - t.shape[0]), (0, 4), (0, 0)), constant_values=255) for t in tiles]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(tiles, 1)).save(path)
    return path


def finetune(cfg: DictConfig, run_dir: Path, adapter) -> Dict[str, Any]:
    """Train ``cfg.detection`` on ``cfg.dataset``'s train split with ``cfg.encoder`` as the backbone; write the run
    folder (checkpoint, metrics, ``detector.safetensors``, ``detections.png``, ``summary.json``)."""
    import geossl

    trainer_cfg = trainer_config(cfg)
    data = adapter.load_dataset(cfg)
    head_settings(cfg)
    engine = Engine(trainer_cfg, run_dir, seed=int(cfg.seed), config=OmegaConf.to_container(cfg, resolve=True))
    if engine.fabric.is_global_zero:
        OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    detector = build_detector(cfg, data)
    train = data.split("train")
    batches = engine.loader(train, data.batch_size, collate_fn=collate, shuffle=True, seeded=True)

    def monitor(task) -> Dict[str, float]:  # the learning curve: validation mAP every trainer.monitor_every epochs
        m = evaluate_on(task.detector, data, "val")["metrics"]
        task.train()
        return {"val_mAP@0.25": m["mAP@0.25"], "val_mAP@0.5": m["mAP@0.5"]}

    result = engine.fit(DetectionTraining(detector), batches, monitor=monitor)
    source = str(cfg.encoder_file) if cfg.get("encoder_file") else f"{cfg.encoder.name} (from scratch)"
    summary: Dict[str, Any] = {"detection": cfg.detection.name, "dataset": data.name, "encoder": source, "seed": int(cfg.seed),
                               "epochs": result.epochs, "train_scenes": len(train.keys), "train_fraction": data.train_fraction,
                               "train_seconds": round(result.train_seconds, 3), "seconds_per_epoch": round(result.seconds_per_epoch, 4),
                               "seconds_per_step": round(result.train_seconds / max(len(batches) * (result.epochs), 1), 4),
                               "final_losses": result.last_losses, "world_size": engine.fabric.world_size,
                               "peak_rss_mb": peak_rss_mb()}  # the process's peak after training, before the test pass
    if not engine.fabric.is_global_zero:
        return summary
    detector = detector.to("cpu")
    save_detector(detector, run_dir / "detector.safetensors", metadata={"dataset": data.name, "encoder": source,
                                                                          "seed": int(cfg.seed), "epochs": result.epochs})
    evaluated = evaluate_on(detector, data)
    summary.update(evaluated["metrics"])
    summary["val_curve"] = _curve(run_dir / "metrics.csv")
    summary["detections_png"] = str(save_detection_views(evaluated, list(data.split("test").box_classes), run_dir / "detections.png").resolve())
    summary.update({"detector": str((run_dir / "detector.safetensors").resolve()), "run_dir": str(run_dir.resolve()),
                    "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "geossl": geossl.__version__,
                    "machine": platform.machine()})
    write_json(run_dir / "summary.json", summary)
    return summary


def _curve(metrics_csv: Path) -> List[Dict[str, float]]:
    """``[{epoch, val_mAP@0.25, val_mAP@0.5}]`` from the run's metrics.csv (the monitored epochs)."""
    import csv

    if not metrics_csv.is_file():
        return []
    rows = []
    with open(metrics_csv) as fh:
        for row in csv.DictReader(fh):
            if row.get("monitor/val_mAP@0.25"):
                rows.append({"epoch": int(float(row["step"])), "val_mAP@0.25": float(row["monitor/val_mAP@0.25"]),
                             "val_mAP@0.5": float(row["monitor/val_mAP@0.5"])})
    return rows


def evaluate_detector(cfg: DictConfig, adapter) -> Dict[str, Any]:
    """``geossl evaluate detector=<file> dataset=<name>``."""
    data = adapter.load_dataset(cfg)
    detector = load_detector(str(cfg.detector_file))
    out = {"detector": str(cfg.detector_file), "dataset": data.name}
    out.update(evaluate_on(detector, data)["metrics"])
    return out
