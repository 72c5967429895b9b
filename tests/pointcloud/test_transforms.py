"""Scene transforms: what each keeps, determinism per seed, and boxes and cameras moving with the points."""

import math

import pytest
import torch

from geossl.frames import RGBDFrame
from geossl.ops.camera import backproject_depth
from geossl.pointcloud import transforms as T
from geossl.pointcloud.rooms import make_room


def _g(seed=0):
    return torch.Generator().manual_seed(seed)


def _room(seed=1, views=0):
    r = make_room(seed, num_points=8000, num_views=views, width=40, height=30)
    return {"coord": r["coord"], "feat": r["feat"], "labels": r["semantic"], "instance": r["instance"], "boxes": r["boxes"],
            "normal": r["normal"], "views": list(r["frames"].frames), "name": r["name"]}


def test_grid_sample_keeps_one_point_per_occupied_cell():
    s = _room()
    for random in (True, False):
        out = T.GridSample(0.2, random=random)(s, _g())
        cells = torch.floor(s["coord"] / 0.2).long()
        kept = torch.floor(out["coord"] / 0.2).long()
        assert len(torch.unique(kept, dim=0)) == len(kept) == len(torch.unique(cells, dim=0))
        assert len(out["labels"]) == len(out["coord"]) == len(out["feat"]) == len(out["instance"])
    first = T.GridSample(0.2, random=False)
    assert torch.equal(first(s, _g(0))["coord"], first(s, _g(1))["coord"])  # evaluation: no randomness
    rand = T.GridSample(0.2, random=True)
    assert torch.equal(rand(s, _g(5))["coord"], rand(s, _g(5))["coord"]) and not torch.equal(rand(s, _g(5))["coord"], rand(s, _g(6))["coord"])


def test_point_budget_crops_the_nearest_points_or_subsamples():
    s = _room()
    crop = T.PointBudget(1000, "crop")(s, _g(3))
    assert len(crop["coord"]) == 1000
    # a sphere crop: every kept point is nearer the crop's centre than every dropped one
    kept = set(map(tuple, crop["coord"].tolist()))
    centre = s["coord"][int(torch.randint(len(s["coord"]), (1,), generator=_g(3)))]
    d = (s["coord"] - centre).norm(dim=1)
    inside = torch.tensor([tuple(p) in kept for p in s["coord"].tolist()])
    assert d[inside].max() <= d[~inside].min() + 1e-6
    assert len(T.PointBudget(1000, "subsample")(s, _g())["coord"]) == 1000
    assert len(T.PointBudget(10**6)(s, _g())["coord"]) == len(s["coord"])  # fewer points than the budget: all kept
    with pytest.raises(Exception, match="crop, view_crop, subsample"):
        T.PointBudget(10, "sphere")


def _camera_at_origin_looking_down_z(width=20, height=10, depth=2.0):
    """A camera at the origin looking along +z at a wall ``depth`` metres away (f = 10 px, centre at the middle)."""
    K = torch.tensor([[10.0, 0.0, width / 2], [0.0, 10.0, height / 2], [0.0, 0.0, 1.0]])
    return RGBDFrame(torch.zeros(height, width, 3), torch.full((height, width), depth), K, torch.eye(4), "v")


def test_points_seen_are_in_front_inside_the_image_and_at_the_views_depth():
    view = _camera_at_origin_looking_down_z()
    coord = torch.tensor([[0.0, 0.0, 2.0],     # on the wall at the image centre: seen
                          [0.5, 0.2, 2.0],     # on the wall, off centre (u = 12.5, v = 6): seen
                          [0.0, 0.0, 1.0],     # in front of the wall: the wall's depth says 2 m, so not seen
                          [0.0, 0.0, 3.0],     # behind the wall: hidden
                          [5.0, 0.0, 2.0],     # outside the image (u = 35)
                          [0.0, 0.0, -2.0]])   # behind the camera
    assert T.points_seen({"coord": coord}, view).tolist() == [0, 1]


def test_a_view_crop_is_centred_on_a_point_the_last_view_sees():
    room = make_room(3, num_points=8000, num_views=2, width=40, height=30)
    s = {"coord": room["coord"], "feat": room["feat"], "views": list(room["frames"].frames)}
    seen = set(T.points_seen(s, s["views"][-1]).tolist())
    assert 0 < len(seen) < len(s["coord"])
    pool = T.points_seen(s, s["views"][-1])
    for seed in range(5):
        kept = T.PointBudget(200, "view_crop")(s, _g(seed))["coord"]
        centre = int(pool[int(torch.randint(len(pool), (1,), generator=_g(seed)))])  # the draw among the seen points
        assert centre in seen
        nearest = (s["coord"] - s["coord"][centre]).pow(2).sum(1).topk(200, largest=False).indices
        assert torch.equal(kept, s["coord"][torch.sort(nearest).values])  # the 200 points nearest to it
    no_views = {"coord": s["coord"], "feat": s["feat"]}  # nothing to see it with: a crop around any point
    assert torch.equal(T.PointBudget(200, "view_crop")(no_views, _g(1))["coord"], T.PointBudget(200, "crop")(no_views, _g(1))["coord"])


def _inside_boxes(scene, slack=1e-4):
    """Every object point (instance k) lies inside box k."""
    for k, box in enumerate(scene["boxes"], start=1):
        pts = scene["coord"][scene["instance"] == k]
        lo, hi = box[:3] - box[3:6] / 2 - slack, box[:3] + box[3:6] / 2 + slack
        assert ((pts >= lo) & (pts <= hi)).all(), k


def test_boxes_move_with_the_points_under_every_augmentation():
    s = _room(seed=4)
    _inside_boxes(s)
    for seed in range(5):
        out = T.TransformConfig(voxel=0.0, points=10**6, rotate=180.0, flip=0.5, scale=[0.8, 1.2], jitter=0.05).train()(s, _g(seed))
        _inside_boxes(out)
        assert out["boxes"].shape == s["boxes"].shape and (out["boxes"][:, 3:6] > 0).all()
    quarter = T.RotateZ(90.0)
    turned = T.rigid(s, torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]), torch.zeros(3))
    assert torch.allclose(turned["boxes"][:, [4, 3, 5]], s["boxes"][:, 3:6], atol=1e-6)  # a quarter turn swaps the sizes: still tight
    assert quarter.degrees == 90.0


@pytest.mark.parametrize("transform", [T.RotateZ(180.0), T.Flip(1.0), T.Scale(0.7, 1.3), T.CenterShift()])
def test_cameras_move_with_the_points(transform):
    """Back-project a view's depth into world points, transform scene and view together: the transformed
    view's depth back-projects onto the transformed points."""
    room = make_room(2, num_points=100, num_views=1, width=40, height=30)
    f = room["frames"].frames[0]
    pts, _ = backproject_depth(f.depth, f.K, f.cam_to_world)
    scene = {"coord": pts, "feat": torch.zeros_like(pts), "views": [f]}
    out = transform(scene, _g(7))
    g = out["views"][0]
    assert isinstance(g, RGBDFrame) and torch.allclose(torch.linalg.det(g.cam_to_world[:3, :3]), torch.tensor(1.0), atol=1e-5)
    moved, _ = backproject_depth(g.depth, g.K, g.cam_to_world)
    assert len(moved) == len(out["coord"])
    assert torch.cdist(moved, out["coord"], compute_mode="donot_use_mm_for_euclid_dist").min(1).values.max() < 1e-4
    if isinstance(transform, T.Flip):  # mirrored in x and in y: each mirror flips the image, two give it back
        assert torch.equal(g.color, f.color)
        draws = {s: torch.rand(2, generator=_g(s)) for s in range(100)}
        seed = next(s for s, r in draws.items() if r[0] < 0.5 <= r[1])
        once = T.Flip(0.5)(scene, _g(seed))["views"][0]  # a mirror in x alone
        assert torch.equal(once.color, f.color.flip(1)) and torch.equal(once.depth, f.depth.flip(1))


def test_colour_jitter_changes_point_colours_only():
    s = _room(views=1)
    out = T.ColorJitter(0.1)(s, _g())
    assert not torch.equal(out["feat"], s["feat"]) and 0 <= out["feat"].min() and out["feat"].max() <= 1
    assert out["views"][0] is s["views"][0] and torch.equal(out["coord"], s["coord"])


def test_the_same_seed_gives_the_same_item():
    s = _room()
    t = T.TransformConfig().train()
    a, b, c = t(s, _g(11)), t(s, _g(11)), t(s, _g(12))
    assert torch.equal(a["coord"], b["coord"]) and torch.equal(a["feat"], b["feat"])
    assert not torch.equal(a["coord"], c["coord"])
    assert math.isclose(float(a["coord"][:, 2].min()), 0.0, abs_tol=0.35)  # centred: the floor near z = 0 (a crop may miss it)


def test_bad_transform_settings_are_errors():
    from geossl.errors import ConfigError

    with pytest.raises(ConfigError, match="scale"):
        T.TransformConfig(scale=[1.2, 0.8])
    with pytest.raises(ConfigError, match="flip"):
        T.TransformConfig(flip=2.0)
