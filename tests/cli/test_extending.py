"""Adding a head and a scene dataset touches their own code and nothing else (docs/architecture.md): a toy dataset
(boxes of one class on a table-top) and a toy detection head (one box per scene at the points' centroid) are
registered from this test module and run through the CLI's finetune and evaluate tasks."""

import json
from typing import Dict, List

import torch
from torch import Tensor, nn

from geossl import cli
from geossl.points import PointBatch
from geossl.registry import DATASETS, HEADS


def toy_boxes(split: str = "train", scenes: int = 3, points: int = 600):
    """A toy scene dataset: each scene a cloud of points filling one axis-aligned box of class ``crate``."""
    from geossl.pointcloud.datasets import SceneDataset

    def load(seed, frames: bool):
        g = torch.Generator().manual_seed(int(seed))
        centre, size = torch.rand(3, generator=g) * 2, 0.5 + torch.rand(3, generator=g)
        coord = centre + (torch.rand(points, 3, generator=g) - 0.5) * size
        return {"coord": coord, "feat": torch.rand(points, 3, generator=g), "labels": torch.zeros(points, dtype=torch.long),
                "boxes": torch.cat([centre, size, torch.zeros(1)])[None], "name": f"toy{seed}"}

    first = {"train": 0, "val": 100, "test": 200}[split]
    return SceneDataset("toy_boxes", split, list(range(first, first + scenes)), load, semantic_classes=("crate",),
                        box_classes=("crate",))


class CentroidHead(nn.Module):
    """A toy detection head: one box per scene at the centroid of its points, sized by their extent, scored by a
    learned constant (its loss pushes that score up, so it has something to train)."""

    def __init__(self, in_dim: int, num_classes: int, yaw: bool = False, scale: float = 1.0):
        super().__init__()
        self.score, self.scale, self.num_classes = nn.Parameter(torch.zeros(1)), scale, num_classes

    def forward(self, batch: PointBatch, features: Tensor) -> Dict[str, object]:
        boxes = []
        for s in batch.scene_slices():
            lo, hi = batch.coord[s].min(0).values, batch.coord[s].max(0).values
            boxes.append(torch.cat([(lo + hi) / 2, (hi - lo) * self.scale, torch.zeros(1)]))
        return {"boxes": boxes, "features": features}

    def loss(self, out, boxes: List[Tensor]) -> Dict[str, Tensor]:
        loss = (1 - torch.sigmoid(self.score)).sum() + 0 * out["features"].sum()
        return {"loss": loss}

    def predict(self, out) -> List[Dict[str, Tensor]]:
        score = torch.sigmoid(self.score).detach()
        return [{"boxes": b[None].detach(), "scores": score.clone()} for b in out["boxes"]]


def test_a_toy_head_and_a_toy_dataset_registered_here_run_through_the_cli(tmp_path):
    DATASETS.register("toy_boxes", domain="scene", capabilities=("labels", "boxes"))(toy_boxes)
    HEADS.register("toy_centroid", domain="scene", group="detection")(CentroidHead)
    try:
        assert "toy_boxes" in DATASETS.having("boxes", "scene")
        from geossl.pointcloud.adapter import ADAPTER

        assert "toy_boxes" in [name for name, _, _ in ADAPTER.dataset_status(None)]  # geossl datasets lists it
        dataset = ["~dataset", "+dataset.name=toy_boxes", "+dataset.scenes=3", "+dataset.batch_size=3"]
        head = ["~detection", "+detection.name=toy_centroid", "+detection.scale=1.0", "+detection.freeze_backbone=false",
                "+detection.backbone_lr=1.0"]
        small = ["transform.points=256", "encoder.centres=8", "encoder.dim=16", "encoder.depth=1", "encoder.tokeniser=8",
                 "trainer.steps=1", "trainer.warmup=1", "trainer.progress=false", "trainer.threads=1"]
        assert cli.main(["finetune", *dataset, *head, *small, f"run_dir={tmp_path / 'run'}"]) == 0
        summary = json.loads((tmp_path / "run" / "summary.json").read_text())
        assert summary["detection"] == "toy_centroid" and summary["dataset"] == "toy_boxes" and summary["train_scenes"] == 3
        # the centroid box of a box-filling cloud is the box, up to the sampling of its points: every scene found
        assert summary["mAP@0.25"] == 1.0
        assert cli.main(["evaluate", f"model={tmp_path / 'run' / 'detector.safetensors'}", *dataset, *small]) == 0
    finally:
        DATASETS.unregister("toy_boxes")
        HEADS.unregister("toy_centroid")
