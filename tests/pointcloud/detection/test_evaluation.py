"""Indoor detection mAP (mmdetection3d's protocol) on hand-computed cases."""

import math

import pytest
import torch

from geossl.pointcloud.detection import DetectionEvalError, box_iou_3d, indoor_map

CLASSES = ("table", "chair", "sofa")


def _box(x, y, z, dx, dy, dz, cls, yaw=None):
    return [x, y, z, dx, dy, dz] + ([yaw] if yaw is not None else []) + [cls]


def _pred(boxes, scores):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, len(boxes[0]) if boxes else 7), "scores": torch.tensor(scores)}


def test_iou_of_shifted_and_rotated_boxes():
    unit = torch.tensor([[0.0, 0, 0, 1, 1, 1]])
    shifted = torch.tensor([[0.5, 0, 0, 1, 1, 1]])
    assert box_iou_3d(unit, shifted).item() == pytest.approx(0.5 / 1.5)  # half a cube shared of one and a half
    square = torch.tensor([[0.0, 0, 0, 2, 2, 1, 0.0]])
    turned = torch.tensor([[0.0, 0, 0, 2, 2, 1, math.pi / 4]])
    # a square and itself turned by 45 degrees share a regular octagon: IoU 1/sqrt(2)
    assert box_iou_3d(square, turned).item() == pytest.approx(1 / math.sqrt(2), abs=1e-9)
    assert box_iou_3d(turned, turned + torch.tensor([0, 0, 2.0, 0, 0, 0, 0])).item() == 0.0  # stacked, not overlapping
    assert box_iou_3d(square, torch.tensor([[0.0, 0, 0, 2, 2, 1, math.pi / 2]])).item() == pytest.approx(1.0)


def test_a_perfect_detection_a_duplicate_and_a_miss():
    gt = [torch.tensor([_box(0, 0, 0.5, 1, 1, 1, 0), _box(3, 3, 0.5, 1, 2, 1, 1)])]
    perfect = indoor_map([_pred([_box(0, 0, 0.5, 1, 1, 1, 0), _box(3, 3, 0.5, 1, 2, 1, 1)], [0.9, 0.8])], gt, CLASSES)
    assert perfect.map == {0.25: 1.0, 0.5: 1.0}
    # the same table twice: the second is a false positive after the first matched, but recall 1 came at precision 1
    dup = indoor_map([_pred([_box(0, 0, 0.5, 1, 1, 1, 0), _box(0, 0, 0.5, 1, 1, 1, 0)], [0.9, 0.8])], gt, CLASSES)
    assert dup.class_ap[0.25] == {"table": 1.0, "chair": 0.0}  # the chair has ground truth and no detection: AP 0
    assert dup.map[0.25] == 0.5
    # a worse-placed duplicate ranked first (IoU 1/3): at 0.25 it takes the table and the exact box after it is the false
    # positive (AP 1); at 0.5 it is the false positive and the exact box the true one (precision 0 then 1/2: AP 1/2)
    shifted_first = indoor_map([_pred([_box(0.5, 0, 0.5, 1, 1, 1, 0), _box(0, 0, 0.5, 1, 1, 1, 0)], [0.9, 0.8])], gt, CLASSES)
    assert shifted_first.class_ap[0.25]["table"] == 1.0 and shifted_first.class_ap[0.5]["table"] == 0.5


def test_a_box_shifted_to_a_known_iou_passes_one_threshold_and_not_the_other():
    gt = [torch.tensor([_box(0, 0, 0, 1, 1, 1, 2)])]
    r = indoor_map([_pred([_box(0.5, 0, 0, 1, 1, 1, 2)], [1.0])], gt, CLASSES)  # IoU 1/3
    assert r.class_ap[0.25] == {"sofa": 1.0} and r.class_ap[0.5] == {"sofa": 0.0}


def test_ap_is_the_area_under_the_precision_envelope():
    # two chairs; detections ranked TP, FP, TP: precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1
    gt = [torch.tensor([_box(0, 0, 0, 1, 1, 1, 1), _box(5, 0, 0, 1, 1, 1, 1)])]
    r = indoor_map([_pred([_box(0, 0, 0, 1, 1, 1, 1), _box(9, 9, 0, 1, 1, 1, 1), _box(5, 0, 0, 1, 1, 1, 1)], [0.9, 0.8, 0.7])], gt, CLASSES)
    assert r.class_ap[0.5]["chair"] == pytest.approx(0.5 * 1.0 + 0.5 * (2 / 3))
    assert r.class_recall[0.5]["chair"] == 1.0


def test_classes_without_ground_truth_and_scenes_without_objects():
    gt = [torch.tensor([_box(0, 0, 0, 1, 1, 1, 0)]), torch.zeros(0, 7)]
    preds = [_pred([_box(0, 0, 0, 1, 1, 1, 0)], [0.9]), _pred([_box(1, 1, 1, 1, 1, 1, 2), _box(0, 0, 0, 1, 1, 1, 0)], [0.8, 0.1])]
    r = indoor_map(preds, gt, CLASSES)
    # the sofa was detected but is nowhere in the ground truth: reported as None and left out of the mean
    assert r.class_ap[0.25] == {"table": 1.0, "sofa": None} and r.map[0.25] == 1.0
    # a table detected in the empty scene is a false positive ranked below the true one: AP stays 1
    assert indoor_map([_pred([], []), _pred([], [])], gt, CLASSES).map[0.25] == 0.0


def test_bad_boxes_are_refused():
    gt = [torch.tensor([_box(0, 0, 0, 1, 1, 1, 0)])]
    with pytest.raises(DetectionEvalError, match="non-positive size"):
        indoor_map([_pred([_box(0, 0, 0, 1, 0, 1, 0)], [1.0])], gt, CLASSES)
    with pytest.raises(DetectionEvalError, match="not one of the 3 classes"):
        indoor_map([_pred([_box(0, 0, 0, 1, 1, 1, 7)], [1.0])], gt, CLASSES)
    with pytest.raises(DetectionEvalError, match="must all be axis-aligned"):
        indoor_map([_pred([_box(0, 0, 0, 1, 1, 1, 0, yaw=0.3)], [1.0])], gt, CLASSES)


@pytest.mark.parametrize("misses", [1, 39])  # numpy's default argsort keeps ties in order only for short arrays
def test_tied_scores_are_ranked_in_scene_order(misses):
    """Detections of equal score are ranked by scene, then by their order in the scene (a stable sort), whatever their
    number; mmdetection3d's argsort of -confidence does this only below 17 detections (issue 43)."""
    gt = [torch.zeros(0, 7)] * misses + [torch.tensor([_box(0, 0, 0, 1, 1, 1, 1)])]
    preds = [_pred([_box(9, 9, 0, 1, 1, 1, 1)], [0.5])] * misses + [_pred([_box(0, 0, 0, 1, 1, 1, 1)], [0.5])]
    assert indoor_map(preds, gt, CLASSES).class_ap[0.5]["chair"] == pytest.approx(1 / (misses + 1))  # the hit ranks last
    first = indoor_map(preds[::-1], gt[::-1], CLASSES)
    assert first.class_ap[0.5]["chair"] == 1.0  # the hit's scene comes first: it ranks first


def test_the_batched_footprint_overlap_equals_polygon_clipping_and_hand_cases():
    from geossl.pointcloud.detection.evaluation import bev_corners, footprint_overlap, polygon_overlap_python as _clip_oracle

    g = torch.Generator().manual_seed(0)
    n = 400
    boxes = torch.cat([torch.rand(n, 2, generator=g) * 3, torch.zeros(n, 1), 0.2 + torch.rand(n, 2, generator=g) * 2,
                       torch.ones(n, 1), (torch.rand(n, 1, generator=g) - 0.5) * 2 * math.pi], 1).double()
    a, b = bev_corners(boxes[: n // 2]), bev_corners(boxes[n // 2:])
    fast = footprint_overlap(a, b)
    slow = torch.tensor([_clip_oracle(p.numpy(), q.numpy()) for p, q in zip(a, b)], dtype=torch.float64)
    assert (slow > 0).sum() > 50 and torch.allclose(fast, slow, atol=1e-9)
    square = torch.tensor([[0.0, 0, 0, 2, 2, 1, 0.3]], dtype=torch.float64)
    rect = torch.tensor([[0.0, 0, 0, 2, 1, 1, 0.0]], dtype=torch.float64)
    cases = [(square, square, 4.0),  # identical
             (rect, rect + torch.tensor([0, 0, 0, 0, 0, 0, math.pi / 2], dtype=torch.float64), 1.0),  # a 90-degree turn: 1 x 1
             (rect, rect + torch.tensor([2.0, 0, 0, 0, 0, 0, 0], dtype=torch.float64), 0.0),  # touching
             (square, torch.tensor([[0.1, 0, 0, 0.5, 0.5, 1, 1.0]], dtype=torch.float64), 0.25)]  # one inside the other
    for p, q, area in cases:
        assert footprint_overlap(bev_corners(p), bev_corners(q)).item() == pytest.approx(area, abs=1e-9)
    ious = box_iou_3d(boxes[:50, :7].float(), boxes[50:100, :7].float())  # only overlapping pairs computed, same answer
    full = torch.tensor([[_clip_oracle(p.numpy(), q.numpy()) for q in bev_corners(boxes[50:100])] for p in bev_corners(boxes[:50])])
    vol = boxes[:, 3:6].prod(1)
    assert torch.allclose(ious, full / (vol[:50, None] + vol[None, 50:100] - full), atol=1e-6)
