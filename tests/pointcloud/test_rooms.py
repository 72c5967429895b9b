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


def _fingerprint(room) -> dict:
    """A room's labels as a digest (exact), and per float array (points, boxes, views) its sum and a position-weighted
    absolute sum (float64), which catch changed and reordered values but not the last bits of a float."""
    import hashlib

    h = hashlib.sha256()
    for k in ("semantic", "instance", "box_instance"):
        h.update(room[k].contiguous().numpy().tobytes())
    frames = room["frames"].frames
    for f in frames:
        h.update(f.name.encode())
    arrays = {k: room[k] for k in ("coord", "feat", "normal", "boxes", "room_size")}
    for k in ("depth", "color", "K", "cam_to_world"):
        arrays[k] = torch.stack([getattr(f, k) for f in frames])
    out = {"labels": h.hexdigest()[:16], "hits": int((arrays["depth"] > 0).sum())}
    for k, v in arrays.items():
        v = v.double()
        weight = torch.arange(v.numel(), dtype=torch.float64).remainder(7).add(1).reshape(v.shape)
        out[k] = (float(v.sum()), float((v.abs() * weight).sum()))
    return out


ROOMS_MADE = {  # make_room(seed, num_points=5000, num_views=3, width=64, height=48)
    0: {"labels": "8a13c240a91c83cb", "hits": 8824, "coord": (33923.498830, 135242.142912), "feat": (5768.562351, 23110.744332),
        "normal": (1124.000000, 19915.000000), "boxes": (100.165483, 386.919804), "room_size": (14.243383, 24.555309),
        "depth": (29718.693302, 118889.250079), "color": (9888.000451, 39547.113189), "K": (503.553749, 2006.789371),
        "cam_to_world": (19.075989, 146.620613)},
    1: {"labels": "a9b82ceba21086a5", "hits": 9203, "coord": (38516.772195, 153270.993130), "feat": (6520.792537, 26080.854064),
        "normal": (1772.000000, 19943.000000), "boxes": (40.254679, 116.895649), "room_size": (16.506805, 29.623987),
        "depth": (23116.039560, 92423.320186), "color": (11497.287307, 45985.468767), "K": (503.553749, 2006.789371),
        "cam_to_world": (22.392069, 147.785964)},
    2: {"labels": "4b13f0289f7fefae", "hits": 9216, "coord": (28750.824369, 114706.519396), "feat": (6342.328357, 25413.495727),
        "normal": (1250.000000, 20094.000000), "boxes": (56.546289, 226.657586), "room_size": (13.166104, 24.211449),
        "depth": (22208.260746, 88849.330043), "color": (10725.657539, 42892.978928), "K": (503.553749, 2006.789371),
        "cam_to_world": (20.253362, 142.826708)},
    3: {"labels": "8549ad8b8c312049", "hits": 9216, "coord": (27483.858148, 109611.093532), "feat": (6271.369114, 25024.909697),
        "normal": (1240.000000, 20032.000000), "boxes": (40.383881, 157.177286), "room_size": (12.210349, 22.998610),
        "depth": (22467.591162, 89791.837920), "color": (11801.971020, 47189.059166), "K": (503.553749, 2006.789371),
        "cam_to_world": (19.159337, 130.011965)},
}


@pytest.mark.parametrize("seed", sorted(ROOMS_MADE))
def test_a_seed_makes_the_room_it_always_made(seed):
    """Labels, points, colours, normals, boxes and views of a few seeds as the generator made them (the code of issue 40's
    faster generator, which was byte for byte the one before it on an AMD EPYC). Bytes are not kept across CPUs: on an
    Intel Xeon with AVX-512 the same code gives other last bits (see the docstring of geossl.pointcloud.rooms), so the
    labels are compared exactly and the floats to 1e-5 of their sums (views 1e-4: a ray that grazes an edge may hit the
    other face). A miss means the generator changed, and every recorded rooms result was measured on other
    rooms."""
    got, want = _fingerprint(make_room(seed, num_points=5000, num_views=3, width=64, height=48)), ROOMS_MADE[seed]
    assert got["labels"] == want["labels"] and abs(got["hits"] - want["hits"]) <= 5
    for k in ("coord", "feat", "normal", "boxes", "room_size", "K", "cam_to_world", "depth", "color"):
        rel = 1e-4 if k in ("depth", "color") else 1e-5
        assert got[k] == pytest.approx(want[k], rel=rel, abs=1e-4), k


def test_rendering_only_some_views_gives_those_views_unchanged():
    every = make_room(4, num_points=500, num_views=4, width=32, height=24)
    some = make_room(4, num_points=500, num_views=4, width=32, height=24, render=[3, 1, 3])
    assert [f.name for f in some["frames"].frames] == ["view003", "view001", "view003"]
    for f, i in zip(some["frames"].frames, (3, 1, 3)):
        g = every["frames"].frames[i]
        assert all(torch.equal(getattr(f, k), getattr(g, k)) for k in ("color", "depth", "K", "cam_to_world"))
    assert torch.equal(some["coord"], every["coord"])
    with pytest.raises(RoomsError, match="render=\\[4\\] must name views among the room's num_views=4"):
        make_room(4, num_points=500, num_views=4, width=32, height=24, render=[4])


def test_an_item_that_renders_only_its_views_is_the_item_that_picked_from_all():
    from geossl.pointcloud.datasets import rooms

    ds = rooms(split="train", num_points=600, num_views=4, width=32, height=24, views=2)
    assert ds.view_count == 4
    picked_first = [ds[(i, 10 + i)] for i in range(3)]
    ds.view_count = None  # the general path: load every frame, then pick
    for a, b in zip(picked_first, [ds[(i, 10 + i)] for i in range(3)]):
        assert torch.equal(a["coord"], b["coord"]) and [v.name for v in a["views"]] == [v.name for v in b["views"]]
        assert all(torch.equal(v.color, w.color) and torch.equal(v.depth, w.depth) for v, w in zip(a["views"], b["views"]))
