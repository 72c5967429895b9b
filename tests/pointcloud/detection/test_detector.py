"""The detector: a VoteNet head on a scene encoder, its losses, NMS, predictions, and save/load."""

import math

import pytest
import torch

from geossl.errors import CheckpointError, ConfigError
from geossl.points import collate
from geossl.pointcloud.detection.detector import Detector, load_detector, save_detector
from geossl.pointcloud.detection.votenet import nms_3d
from geossl.pointcloud.encoders import PointPatchTransformer
from geossl.pointcloud.rooms import CLASSES, make_room
from geossl.pointcloud.transforms import CenterShift, Compose, PointBudget


def _rooms(seeds, points=1024):
    t = Compose([CenterShift(), PointBudget(points, "subsample")])
    out = []
    for s in seeds:
        r = make_room(s, num_points=6000, num_views=0)
        out.append(t({"coord": r["coord"], "feat": r["feat"], "boxes": r["boxes"]}, torch.Generator().manual_seed(s)))
    return collate(out)


def _detector(**kw):
    torch.manual_seed(0)
    backbone = PointPatchTransformer(centres=16, patch=32, dim=32, depth=1, heads=4, tokeniser=8)
    return Detector(backbone, CLASSES, head_config={"num_seeds": 128, "num_proposals": 32, "group": 8, "width": 32}, **kw)


def test_nms_keeps_the_best_of_overlapping_boxes_of_one_class():
    boxes = torch.tensor([[0, 0, 0, 1, 1, 1], [0.1, 0, 0, 1, 1, 1], [0, 0, 0, 1, 1, 1], [5, 5, 5, 1, 1, 1.0]])
    scores, labels = torch.tensor([0.5, 0.9, 0.8, 0.1]), torch.tensor([0, 0, 1, 0])
    assert nms_3d(boxes, scores, labels, 0.25).tolist() == [1, 2, 3]  # box 0 overlaps the better box 1 of its class


def test_the_head_trains_and_predicts_boxes_of_the_datasets_classes():
    det = _detector()
    batch = _rooms([1, 2])
    opt = torch.optim.AdamW(det.parameters(), lr=2e-3)
    first = None
    for _ in range(60):
        losses = det.loss(batch)
        first = first or {k: float(v.detach()) for k, v in losses.items()}
        opt.zero_grad()
        losses["loss"].backward()
        opt.step()
    assert set(losses) == {"loss", "vote", "objectness", "centre", "size", "class"}
    # the votes move to the object centres, so proposals land near objects and the box terms come in
    assert first["centre"] == first["size"] == 0.0 and float(losses["vote"].detach()) < 0.6 * first["vote"]
    losses = {k: float(v.detach()) for k, v in losses.items()}
    assert losses["class"] > 0 and losses["objectness"] < 0.5 * first["objectness"]
    preds = det.predict(batch)
    assert len(preds) == 2 and preds[0]["boxes"].shape[1] == 7 and len(preds[0]["boxes"]) == len(preds[0]["scores"]) <= 32
    assert (preds[0]["boxes"][:, 3:6] > 0).all() and preds[0]["boxes"][:, 6].max() < len(CLASSES)


def test_only_the_vote_loss_moves_the_votes_and_it_weighs_vote_weight():
    det = _detector()
    batch = _rooms([1])
    for _ in range(5):  # a few steps, so that some proposals are positive and every box term is on
        losses = det.loss(batch)
        torch.optim.SGD(det.parameters(), lr=0.05).zero_grad()
        losses["loss"].backward()
    det.zero_grad()
    losses = det.loss(batch)
    (losses["objectness"] + losses["centre"] + losses["size"] + losses["class"]).backward()
    offset_rows = det.head.vote[-1].weight.grad[:3]  # the vote MLP's outputs that are the offsets
    assert torch.count_nonzero(offset_rows) == 0 and torch.count_nonzero(det.head.vote[-1].weight.grad[3:]) > 0
    expected = 10.0 * losses["vote"] + 0.5 * losses["objectness"] + losses["centre"] + losses["size"] + 0.1 * losses["class"]
    torch.testing.assert_close(losses["loss"], expected)
    with pytest.raises(ConfigError, match="vote_weight=0"):
        Detector(PointPatchTransformer(centres=16, patch=32, dim=32, depth=1, heads=4, tokeniser=8), CLASSES,
                 head_config={"vote_weight": 0})


def test_yaw_boxes_add_heading_outputs_and_losses():
    det = _detector(yaw=True)
    batch = _rooms([3])
    batch.boxes = [torch.cat([b[:, :6], torch.full((len(b), 1), 0.4), b[:, 6:]], 1) for b in batch.boxes]
    losses = det.loss(batch)
    assert {"heading_class", "heading_residual"} <= set(losses) and torch.isfinite(losses["loss"])
    assert det.predict(batch)[0]["boxes"].shape[1] == 8


def test_a_scene_without_objects_is_a_valid_negative():
    det = _detector()
    batch = _rooms([4])
    batch.boxes = [torch.zeros(0, 7)]
    losses = det.loss(batch)
    assert float(losses["objectness"].detach()) > 0 and float(losses["vote"].detach()) == 0.0 and torch.isfinite(losses["loss"])


def test_frozen_backbones_and_their_learning_rate_groups():
    frozen = _detector(freeze_backbone=True).train()
    assert not frozen.backbone.training and all(not p.requires_grad for p in frozen.backbone.parameters())
    assert len(frozen.param_groups()) == 1
    slow = _detector(backbone_lr=0.1)
    assert slow.param_groups()[1]["lr_scale"] == 0.1
    with pytest.raises(ConfigError, match="backbone_lr"):
        _detector(backbone_lr=0.0)
    with pytest.raises(ConfigError, match="samples detection.num_seeds=128 seeds per scene"):
        _detector().loss(_rooms([1], points=100))


def test_a_detector_saves_and_loads_with_its_predictions(tmp_path):
    det = _detector().eval()
    batch = _rooms([5])
    before = det.predict(batch)
    save_detector(det, tmp_path / "det.safetensors", metadata={"dataset": "rooms"})
    back = load_detector(tmp_path / "det.safetensors")
    after = back.predict(batch)
    assert back.classes == list(CLASSES) and back.pretrained == {"dataset": "rooms"}
    assert torch.equal(before[0]["boxes"], after[0]["boxes"]) and torch.equal(before[0]["scores"], after[0]["scores"])
    import geossl

    geossl.save_encoder(det.backbone, tmp_path / "enc.safetensors")
    with pytest.raises(CheckpointError, match="is not a geossl detector"):
        load_detector(tmp_path / "enc.safetensors")
    with pytest.raises(Exception, match="scene encoder"):
        from geossl.graph.encoders import GCN

        Detector(GCN(3, hidden=4), CLASSES)
    assert math.isfinite(float(before[0]["scores"].sum()))


def test_a_rooms_detector_is_evaluated_on_scannet_through_the_classes_they_share():
    from omegaconf import OmegaConf

    from geossl.pointcloud.adapter import ADAPTER
    from geossl.pointcloud.detection.finetune import evaluate_on
    from tests.conftest import _scene_present

    if not _scene_present("scannet_scene0000_mmdet3d"):
        pytest.skip("ScanNet samples not under $GEOSSL_DATA")
    cfg = OmegaConf.create({"dataset": {"name": "scannet", "batch_size": 1}, "transform": {"points": 2048, "budget": "subsample"}})
    data = ADAPTER.load_dataset(cfg)
    evaluated = evaluate_on(_detector(), data)
    m = evaluated["metrics"]
    assert m["classes_evaluated"] == ["table", "chair", "cabinet", "bed", "sofa", "bookshelf"] and m["test_scenes"] == 1
    assert set(m["class_AP@0.25"]) <= set(m["classes_evaluated"]) and all(int(b[-1]) in (0, 1, 2, 3, 4, 7) for b in evaluated["ground_truth"][0])  # cabinet, bed, chair, sofa, table, bookshelf


@pytest.mark.parametrize("setting, value", [("heading_bins", 0), ("nms_iou", float("nan")), ("nms_iou", 1.5), ("width", 0),
                                            ("vote_weight", float("nan"))])
def test_a_bad_head_setting_is_refused_by_its_name(setting, value):
    """heading_bins=0 was refused without naming it, and nms_iou=nan was accepted (issue 45)."""
    from geossl.pointcloud.detection.votenet import VoteHead

    with pytest.raises(ConfigError, match=f"detection.{setting}"):
        VoteHead(in_dim=8, num_classes=3, **{setting: value})


def test_nms_of_yawed_boxes_suppresses_within_a_class_only():
    base = [0.0, 0.0, 0.5, 2.0, 1.0, 1.0]
    boxes = torch.tensor([base + [0.3], base + [0.35], base + [0.3], [4.0, 4.0, 0.5, 1.0, 1.0, 1.0, 1.0]])
    scores, labels = torch.tensor([0.9, 0.8, 0.7, 0.6]), torch.tensor([0, 0, 1, 0])
    assert nms_3d(boxes, scores, labels, 0.25).tolist() == [0, 2, 3]  # box 1 overlaps box 0 of its class; box 2 is another class
