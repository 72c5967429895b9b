"""The segmenter: Pointcept's linear head on a scene encoder, whole-scene segmentation by pieces, the test metrics on
hand-built predictions, and save/load."""

from types import SimpleNamespace

import pytest
import torch
from torch.nn import functional as F

from geossl.errors import CheckpointError, ConfigError
from geossl.points import collate
from geossl.pointcloud.encoders import PointPatchTransformer
from geossl.pointcloud.rooms import make_room
from geossl.pointcloud.segmentation import finetune as seg_finetune
from geossl.pointcloud.segmentation.linear import LinearSegHead
from geossl.pointcloud.segmentation.segmenter import Segmenter, load_segmenter, save_segmenter, scene_pieces, segment_scene
from geossl.pointcloud.transforms import GridSample, grid_cells

CLASSES = ("a", "b", "c")


def _segmenter(**kw):
    torch.manual_seed(0)
    return Segmenter(PointPatchTransformer(centres=8, patch=16, dim=16, depth=1, heads=2, tokeniser=8), CLASSES, **kw)


def test_the_linear_head_is_cross_entropy_over_labelled_points():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [5.0, 5.0, 5.0]])
    labels = torch.tensor([0, 2, -1])
    expected = (F.cross_entropy(logits[:1], labels[:1]) + F.cross_entropy(logits[1:2], labels[1:2])) / 2
    assert torch.allclose(LinearSegHead.loss(logits, labels)["loss"], expected)
    assert float(LinearSegHead.loss(logits, torch.full((3,), -1))["loss"]) == 0.0  # nothing labelled: nothing to learn


def test_the_test_metrics_on_a_hand_built_prediction(monkeypatch):
    labels = torch.tensor([0, 0, 1, 1, 2, -1])
    pred = torch.tensor([0, 1, 1, 1, 2, 0])
    scene = {"coord": torch.zeros(6, 3), "feat": torch.zeros(6, 3), "labels": labels}
    split = SimpleNamespace(keys=[0, 1], semantic_classes=CLASSES, scene=lambda key, frames=False: scene)
    data = SimpleNamespace(name="toy", split=lambda name: split, batch_size=2)
    monkeypatch.setattr(seg_finetune, "segment_scene", lambda *a, **k: pred)
    out = seg_finetune.evaluate_on(_segmenter(), data)
    # class a: 1 hit of 2 true points, no false one -> 1/2; b: 2 hits, 1 false -> 2/3; c: 1/1; the -1 point is ignored
    assert out["class_IoU"] == pytest.approx({"a": 0.5, "b": 2 / 3, "c": 1.0})
    assert out["mIoU"] == pytest.approx((0.5 + 2 / 3 + 1) / 3) and out["OA"] == pytest.approx(4 / 5)
    assert out["test_points"] == 10 and out["test_scenes"] == 2  # both scenes' labelled points
    other = SimpleNamespace(keys=[0], semantic_classes=("x", "y"), scene=lambda key, frames=False: scene)
    with pytest.raises(ConfigError, match="scored on the classes it was trained for"):
        seg_finetune.evaluate_on(_segmenter(), SimpleNamespace(name="other", split=lambda name: other))


def test_scene_pieces_hold_every_point_at_the_training_budget():
    coord = torch.rand(1000, 3, generator=torch.Generator().manual_seed(0)) * 4
    crops = scene_pieces(coord, 128, "crop")
    assert torch.unique(torch.cat(crops)).numel() == 1000 and all(len(p) == 128 for p in crops)
    first = crops[0]  # a crop is the 128 nearest points of the first point not yet held
    assert int(first[(coord[first] - coord[0]).pow(2).sum(1).argmin()]) == 0
    assert (coord[first] - coord[0]).pow(2).sum(1).max() <= (coord - coord[0]).pow(2).sum(1).sort().values[127] + 1e-6
    parts = scene_pieces(coord, 300, "subsample")
    assert [len(p) for p in parts] == [300] * 4 and torch.unique(torch.cat(parts)).numel() == 1000
    assert torch.cat(parts[:3]).unique().numel() == 900  # a partition, its last piece topped up with others' points
    assert [len(p) for p in scene_pieces(coord[:50], 128, "crop")] == [50]


def test_grid_cells_keep_the_points_grid_sampling_keeps_and_map_every_point_to_its_cell():
    coord = torch.rand(500, 3, generator=torch.Generator().manual_seed(1))
    kept, cell = grid_cells(coord, 0.2)
    sampled = GridSample(0.2, random=False)({"coord": coord}, torch.Generator())
    assert torch.equal(coord[kept], sampled["coord"])
    assert torch.equal(torch.floor(coord[kept][cell] / 0.2), torch.floor(coord / 0.2))  # every point's cell point is in its cell


def test_a_perfect_per_point_model_segments_every_point_of_a_whole_scene(monkeypatch):
    room = make_room(3, num_points=6000, num_views=0)
    scene = {"coord": room["coord"], "feat": room["feat"], "labels": room["semantic"]}
    model = Segmenter(PointPatchTransformer(centres=8, patch=16, dim=16, depth=1, heads=2, tokeniser=8),
                      [str(i) for i in range(int(room["semantic"].max()) + 1)], voxel=0.0, points=512)
    truth = {}

    def oracle(batch):  # scores that name each point's true class (looked up by position)
        keys = [tuple(p) for p in batch.coord.round(decimals=4).tolist()]
        return F.one_hot(torch.tensor([truth[k] for k in keys]), len(model.classes)).float() * 10

    monkeypatch.setattr(model, "forward", oracle)
    from geossl.pointcloud.transforms import CenterShift

    centred = CenterShift()(dict(scene), torch.Generator())
    truth.update({tuple(p): int(y) for p, y in zip(centred["coord"].round(decimals=4).tolist(), scene["labels"].tolist())})
    for budget in ("crop", "subsample"):
        model.budget = budget
        assert torch.equal(segment_scene(model, scene, batch_size=4), scene["labels"])
    model.voxel, model.budget = 0.05, "crop"
    pred = segment_scene(model, scene, batch_size=4)  # each point gets its cell's point's class
    kept, cell = grid_cells(centred["coord"], 0.05)
    assert torch.equal(pred, scene["labels"][kept][cell])
    assert float((pred == scene["labels"]).float().mean()) > 0.95


def test_a_segmenter_trains_saves_and_loads_with_its_predictions(tmp_path):
    room = make_room(5, num_points=3000, num_views=0)
    batch = collate([{"coord": room["coord"][:512], "feat": room["feat"][:512], "labels": room["semantic"][:512].clamp_max(2)}])
    seg = _segmenter()
    opt = torch.optim.AdamW(seg.parameters(), lr=1e-2)
    first = float(seg.loss(batch)["loss"].detach())
    for _ in range(30):
        loss = seg.loss(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.7 * first
    seg.eval()
    save_segmenter(seg, tmp_path / "seg.safetensors", metadata={"dataset": "rooms"})
    back = load_segmenter(tmp_path / "seg.safetensors")
    assert back.classes == list(CLASSES) and back.pretrained == {"dataset": "rooms"} and back.config() == seg.config()
    assert torch.equal(seg(batch), back(batch))
    from geossl.pointcloud.detection.detector import Detector, save_detector

    save_detector(Detector(seg.backbone, ["x"], head_config={"num_seeds": 64, "num_proposals": 8, "group": 8, "width": 16}),
                  tmp_path / "det.safetensors")
    with pytest.raises(CheckpointError, match="is not a geossl segmenter"):
        load_segmenter(tmp_path / "det.safetensors")
    import geossl

    geossl.save_encoder(seg.backbone, tmp_path / "enc.safetensors")
    with pytest.raises(CheckpointError, match="encoders are loaded with geossl.load_encoder"):
        load_segmenter(tmp_path / "enc.safetensors")


def test_a_frozen_backbone_gets_no_gradients_and_bad_settings_are_refused():
    seg = _segmenter(freeze_backbone=True)
    assert [len(g["params"]) for g in seg.param_groups()] == [2]  # the head alone trains
    with pytest.raises(ConfigError, match="segmentation.backbone_lr"):
        _segmenter(backbone_lr=2.0)
    with pytest.raises(ConfigError, match="is a detection head"):
        _segmenter(head="votenet")
    with pytest.raises(ConfigError, match="at least two classes"):
        Segmenter(PointPatchTransformer(centres=8, patch=16, dim=16, depth=1, heads=2, tokeniser=8), ["only"])
