"""Procedural rooms: deterministic per seed, boxes that hold their objects, RGB-D views that agree
with the point cloud."""

import numpy as np
import pytest
import torch

from geossl.ops.camera import backproject_depth
from geossl.points import collate
from geossl.pointcloud.rooms import CLASSES, SEMANTIC, RoomsError, make_room


@pytest.fixture(scope="module")
def room():
    return make_room(7, num_points=100_000, num_views=3, width=96, height=72, color_noise=0.0)


def test_same_seed_same_scene_other_seed_other_scene():
    a, b, c = make_room(1, num_views=1, width=32, height=24), make_room(1, num_views=1, width=32, height=24), make_room(2, num_views=0)
    for k in ("coord", "feat", "semantic", "instance", "boxes"):
        assert torch.equal(a[k], b[k]), k
    assert torch.equal(a["frames"].frames[0].color, b["frames"].frames[0].color)
    assert not torch.equal(a["boxes"], c["boxes"]) or not torch.equal(a["coord"][:100], c["coord"][:100])


def test_boxes_contain_exactly_their_objects_and_do_not_overlap(room):
    size, boxes = room["room_size"], room["boxes"]
    assert 4 <= len(boxes) <= 10 and set(boxes[:, 6].long().tolist()) <= set(range(len(CLASSES)))
    for box, inst in zip(boxes, room["box_instance"]):
        pts = room["coord"][room["instance"] == inst]
        lo, hi = box[:3] - box[3:6] / 2, box[:3] + box[3:6] / 2
        assert len(pts) > 50 and ((pts >= lo - 1e-4) & (pts <= hi + 1e-4)).all()
        # tight: the points reach every face of the box
        assert ((pts.min(0).values - lo).abs() < 0.05).all() and ((pts.max(0).values - hi).abs() < 0.05).all()
        assert (lo[:2] >= 0).all() and (hi[:2] <= size[:2]).all() and lo[2].abs() < 1e-5  # inside the room, on the floor
        assert (room["semantic"][room["instance"] == inst] == 2 + int(box[6])).all()
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            gap = (boxes[i, :2] - boxes[j, :2]).abs() - (boxes[i, 3:5] + boxes[j, 3:5]) / 2
            assert (gap > 0.05).any(), (i, j)
    floor = room["coord"][room["semantic"] == SEMANTIC.index("floor")]
    assert floor[:, 2].abs().max() < 1e-6 and (room["instance"][room["semantic"] < 2] == 0).all()


def test_views_agree_with_the_point_cloud(room):
    from scipy.spatial import cKDTree

    tree = cKDTree(room["coord"].numpy())
    for f in room["frames"].frames:
        assert f.color.shape == (72, 96, 3) and f.depth.shape == (72, 96)
        assert (f.depth > 0).float().mean() > 0.5
        pts, idx = backproject_depth(f.depth, f.K, f.cam_to_world)
        lo, hi = torch.zeros(3) - 1e-3, room["room_size"] + 1e-3
        assert ((pts >= lo) & (pts <= hi)).all()  # every ray ends on a surface of the room
        dist, nn = tree.query(pts.numpy())
        assert np.median(dist) < 0.02  # on the sampled surface (100k points: ~1 cm spacing)
        near = dist < 0.01
        colour_err = (f.color.reshape(-1, 3)[idx][near] - room["feat"][nn[near]]).abs()
        assert colour_err.mean() < 0.05  # the same shaded albedo (an edge may pick the other face)


def test_rooms_collate_into_a_point_batch():
    scenes = [make_room(s, num_points=2000, num_views=0) for s in range(4)]
    batch = collate(scenes)
    assert batch.offset.tolist() == [2000, 4000, 6000, 8000] and len(batch.boxes) == 4


def test_bad_settings_are_refused():
    with pytest.raises(RoomsError, match="num_points"):
        make_room(0, num_points=0)
    with pytest.raises(RoomsError, match="min_objects <= max_objects"):
        make_room(0, min_objects=5, max_objects=2)
    with pytest.raises(RoomsError, match="view settings"):
        make_room(0, fov_deg=200)
