"""Scene datasets: splits, items, labels and views; the scene-folder format and what it refuses."""

import json

import numpy as np
import pytest
import torch

from geossl.errors import ConfigError, DatasetNotFoundError, GeosslError
from geossl.frames import RGBDFrame
from geossl.points import collate
from geossl.pointcloud.datasets import SceneDatasetError, rooms, scannet, scene_folder
from geossl.pointcloud.rooms import CLASSES, SEMANTIC
from geossl.pointcloud.scene_folder import SceneFolderError, write_meta, write_scene
from tests.conftest import requires_scannet, requires_sevenscenes


def test_rooms_splits_are_ranges_of_seeds_and_items_are_deterministic():
    splits = {"train": [0, 6], "val": [10, 12], "test": [20, 23]}
    ds = {s: rooms(split=s, splits=splits, num_points=3000, loop=2 if s == "train" else 1) for s in ("train", "val", "test")}
    assert (len(ds["train"]), len(ds["val"]), len(ds["test"])) == (12, 2, 3)  # loop repeats the train split
    assert ds["test"].keys == [20, 21, 22] and ds["train"].semantic_classes == SEMANTIC and ds["train"].box_classes == CLASSES
    item = ds["train"][(1, 5)]
    assert item["coord"].shape == (3000, 3) and item["feat"].shape == (3000, 3) and item["name"] == "rooms-seed1"
    assert item["labels"].min() >= 0 and item["labels"].max() < len(SEMANTIC) and item["boxes"].shape[1] == 7
    assert torch.equal(ds["train"][(7, 5)]["coord"], item["coord"])  # index 7 is seed 1 again (loop 2)
    with pytest.raises(ConfigError, match="no 'extra' split"):
        rooms(split="extra", splits=splits)


def test_rooms_items_carry_posed_views_drawn_per_seed():
    ds = rooms(split="train", splits={"train": [0, 2]}, num_points=2000, num_views=5, views=2, width=32, height=24)
    a, b = ds[(0, 1)], ds[(0, 2)]
    assert len(a["views"]) == 2 and all(isinstance(f, RGBDFrame) and f.size == (32, 24) for f in a["views"])
    assert len({f.name for f in a["views"]}) == 2  # two different views of the five
    assert [f.name for f in ds[(0, 1)]["views"]] == [f.name for f in a["views"]]
    batch = collate([a, b])
    assert batch.views.color.shape == (2, 2, 24, 32, 3) and batch.views.K.shape == (2, 2, 3, 3)
    assert batch.views.scene(1)[0].name == "view0"
    with pytest.raises(ConfigError, match="dataset.views=5 views per item, but each room renders dataset.num_views=4"):
        rooms(split="train", views=5)


@requires_scannet
def test_scannet_samples_map_to_the_benchmark_classes_and_the_detection_classes():
    train, test = scannet(split="train"), scannet(split="test")
    assert train.keys == ["scene0000_00", "scene0000_01"] and test.keys == ["scene0000_02"] and len(scannet(split="train", loop=3)) == 6
    assert len(train.semantic_classes) == 20 and len(train.box_classes) == 18 and train.box_classes[13] == "showercurtrain"
    s = train.scene("scene0000_00", frames=False)
    from geossl.data import data_root

    raw = np.load(data_root() / "3d/scannet_scene0000_mmdet3d/instance_data/scene0000_00_sem_label_all.npy")
    assert int((s["labels"] == 0).sum()) == int((raw == 1).sum()) == 13899  # nyu40 1 (wall) is class 0
    assert int((s["labels"] == -1).sum()) == 21917  # nyu40 0, 15, 18, 19, 22, 25, 32, 38, 40: not benchmark classes
    assert len(s["boxes"]) == 27 and s["boxes"][:, 6].max() < 18
    with pytest.raises(DatasetNotFoundError, match="scene9999_00_vert_all.npy"):
        train.find("scene9999_00")


@requires_scannet
def test_dataset_loop_repeats_the_training_scenes_only():
    """(issue 43, 4) A run's val and test splits are scored once per scene whatever dataset.loop says (ScanNet's default
    64 once made its one test scene 64 differently subsampled items)."""
    from geossl.pipeline import configure

    _, cfg, adapter = configure("finetune", ["detection=votenet", "dataset=scannet", "dataset.loop=5"])
    data = adapter.load_dataset(cfg)
    assert (len(data.split("train")), len(data.split("val")), len(data.split("test"))) == (10, 1, 1)


@requires_sevenscenes
def test_an_rgbd_sequence_is_one_scene_whose_splits_differ_in_their_views():
    from geossl.pointcloud.datasets import DATASETS

    build = DATASETS.get("sevenscenes")
    train, test = build(split="train", stride=4, views=3, width=80, height=60), build(split="test", stride=4, views=2, width=80, height=60)
    a, b = train[(0, 0)], test[(0, 0)]
    assert len(a["coord"]) > 5000 and a["name"] == "7scenes_tsdf_fusion_every5th"
    seq = train.scene("sevenscenes")["frames"]
    held = {f.name for f in seq.split(10)[1]}
    assert all(f.name not in held for f in a["views"]) and all(f.name in held for f in b["views"])
    assert len(train) == 1 and train.semantic_classes is None


def _folder(tmp_path, **overrides):
    g = np.random.default_rng(0)
    coord = g.random((500, 3)).astype(np.float32) * 2
    kw = dict(coord=coord, color=(g.random((500, 3)) * 255).astype(np.uint8), semantic=g.integers(-1, 2, 500),
              boxes=[{"class": "chair", "center": [1, 1, 0.5], "size": [0.5, 0.5, 1.0]}])
    kw.update(overrides)
    write_scene(str(tmp_path), "a", **kw)
    write_scene(str(tmp_path), "b", **kw)
    write_meta(str(tmp_path), semantic_classes=["floor", "chair"], box_classes=["chair", "table"],
               splits={"train": ["a"], "val": ["b"], "test": ["b"]})
    return tmp_path


def test_the_scene_folder_format_round_trips(tmp_path):
    room = rooms(split="train", num_points=100, num_views=2, width=32, height=24).find(3)
    frames = [RGBDFrame(f.color, f.depth, f.K, f.cam_to_world, f"f{i}") for i, f in enumerate(room["frames"].frames)]
    root = _folder(tmp_path, frames=frames)
    train = scene_folder(split="train", root=str(root), views=2)
    assert train.keys == ["a"] and train.semantic_classes == ("floor", "chair") and train.box_classes == ("chair", "table")
    item = train[(0, 0)]
    assert item["coord"].shape == (500, 3) and item["feat"].max() <= 1 and set(item["labels"].unique().tolist()) <= {-1, 0, 1}
    assert item["boxes"].tolist() == [[1, 1, 0.5, 0.5, 0.5, 1.0, 0]]
    assert len(item["views"]) == 2 and torch.allclose(item["views"][0].depth, frames[0].depth, atol=1e-3)
    assert torch.allclose(item["views"][0].color, frames[0].color, atol=1 / 255)
    assert not train.box_yaw
    write_meta(str(tmp_path / "yawed"), box_classes=["chair", "table"])
    write_scene(str(tmp_path / "yawed"), "c", coord=np.zeros((3, 3)), color=np.ones((3, 3)),
                boxes=[{"class": "table", "center": [0, 0, 0], "size": [1, 1, 1], "yaw": 0.5}])
    write_scene(str(tmp_path / "yawed"), "d", coord=np.zeros((3, 3)), color=np.ones((3, 3)), boxes=[])
    yawed = scene_folder(split="train", root=str(tmp_path / "yawed"))
    assert yawed.box_yaw and yawed.find("c")["boxes"].tolist() == [[0, 0, 0, 1, 1, 1, 0.5, 1]]
    assert yawed.find("d")["boxes"].shape == (0, 8)  # an empty scene of a yawed folder has the folder's columns


def test_the_scene_folder_refuses_what_does_not_fit_the_format(tmp_path):
    root = _folder(tmp_path / "nocolor")
    np.savez(root / "a" / "points.npz", coord=np.zeros((5, 3)))
    with pytest.raises(SceneFolderError, match="has points but no colours"):
        scene_folder(split="train", root=str(root))[0]
    root = _folder(tmp_path / "badclass", boxes=[{"class": "sofa", "center": [0, 0, 0], "size": [1, 1, 1]}])
    with pytest.raises(SceneFolderError, match="class 'sofa', which is not in meta.json's box_classes \\(chair, table\\)"):
        scene_folder(split="train", root=str(root))[0]
    root = _folder(tmp_path / "badsize", boxes=[{"class": "chair", "center": [0, 0, 0], "size": [1, 0, 1]}])
    with pytest.raises(SceneFolderError, match="three positive numbers"):
        scene_folder(split="train", root=str(root))[0]
    room = rooms(split="train", num_points=100, num_views=1, width=32, height=24).find(3)
    f = room["frames"].frames[0]
    wrong = f.K.clone()
    wrong[0, 2], wrong[1, 2] = 320.0, 240.0  # the intrinsics of a 640x480 image
    root = _folder(tmp_path / "badframes", frames=[RGBDFrame(f.color, f.depth, wrong, f.cam_to_world, "f0")])
    with pytest.raises(GeosslError, match="principal point .* lies outside the 32x24 depth image"):
        scene_folder(split="train", root=str(root), views=1)[0]
    root = _folder(tmp_path / "badsplit")
    (root / "meta.json").write_text(json.dumps({"splits": {"train": ["a", "zz"]}}))
    with pytest.raises(SceneFolderError, match="names scenes that are not in .*: zz"):
        scene_folder(split="train", root=str(root))
    root = _folder(tmp_path / "badlabel", semantic=np.full(500, 7))
    with pytest.raises(SceneFolderError, match="semantic ids must be -1 .* or index meta.json's semantic_classes \\(2 names\\)"):
        scene_folder(split="train", root=str(root))[0]
    with pytest.raises(DatasetNotFoundError, match="Scene folder .*nowhere not found"):
        scene_folder(split="train", root=str(tmp_path / "nowhere"))
    with pytest.raises(SceneDatasetError, match="no scenes in its test split"):
        root = _folder(tmp_path / "empty")
        (root / "meta.json").write_text(json.dumps({"splits": {"train": ["a"], "test": []}}))
        scene_folder(split="test", root=str(root))


def test_a_scene_run_says_where_its_items_come_from_before_training(tmp_path, capsys):
    """The first line of a scene run says what its first minutes go to: rooms made anew, or read from the cache."""
    from geossl import cli

    small = ["dataset.splits.train=[0,2]", "dataset.splits.val=[1000,1001]", "dataset.splits.test=[2000,2001]",
             "dataset.num_points=2000", "dataset.batch_size=2", "transform.points=512", "encoder.centres=8", "encoder.patch=16",
             "encoder.dim=32", "encoder.depth=1", "encoder.heads=4", "encoder.tokeniser=8", "trainer.epochs=1",
             "trainer.threads=1", "eval=none"]
    assert cli.main(["pretrain", "scene=pointmae", "dataset=rooms", *small, f"run_dir={tmp_path / 'run'}"]) == 0
    out = capsys.readouterr().out
    from geossl.engine.engine import auto_workers

    assert out.startswith("data: 2 training items of rooms per epoch, 2 per batch: every room generated")
    assert f"{auto_workers()} loader worker(s)" in out  # scene runs load in workers by default (issue 40)


def test_json_nested_too_deep_is_refused_not_a_recursion_error(tmp_path):
    """A meta.json (or an encoder header) nested deeper than the JSON decoder recurses is refused with geossl's error;
    it raised RecursionError before (issue 45)."""
    from safetensors.torch import save_file

    from geossl.encoder import read_encoder_header
    from geossl.errors import CheckpointError

    deep = "[" * 100_000 + "]" * 100_000
    root = _folder(tmp_path / "deep")
    (root / "meta.json").write_text(deep)
    with pytest.raises(SceneFolderError, match="meta.json is not readable JSON: RecursionError"):
        scene_folder(split="train", root=str(root))
    save_file({"w": torch.zeros(1)}, tmp_path / "deep.safetensors", metadata={"geossl": deep})
    with pytest.raises(CheckpointError, match="corrupt header"):
        read_encoder_header(tmp_path / "deep.safetensors")
    save_file({"w": torch.zeros(1)}, tmp_path / "list.safetensors", metadata={"geossl": "[1, 2]"})
    with pytest.raises(CheckpointError, match="not an object"):
        read_encoder_header(tmp_path / "list.safetensors")


def test_values_beyond_float32_and_nan_colours_are_refused_by_field(tmp_path):
    """float64 coordinates beyond float32's range passed the finiteness check and became inf after the cast; NaN colours
    were reported as coordinates; a box size of 1e39 trained as an infinite box (issue 45)."""
    root = _folder(tmp_path / "big")
    coord = np.random.default_rng(0).random((500, 3)) * 2
    coord[7, 1] = 1e39
    np.savez(root / "a" / "points.npz", coord=coord, color=np.full((500, 3), 0.5))
    with pytest.raises(SceneFolderError, match="points.npz: coord holds NaN, inf or values beyond float32's range"):
        scene_folder(split="train", root=str(root))[0]
    color = np.full((500, 3), 0.5)
    color[3, 0] = np.nan
    np.savez(root / "a" / "points.npz", coord=coord.clip(0, 2), color=color)
    with pytest.raises(SceneFolderError, match="points.npz: color holds NaN"):
        scene_folder(split="train", root=str(root))[0]
    root = _folder(tmp_path / "bigbox", boxes=[{"class": "chair", "center": [0, 0, 0], "size": [1, 1e39, 1]}])
    with pytest.raises(SceneFolderError, match="box 0 needs a finite 3-vector center"):
        scene_folder(split="train", root=str(root))[0]


def test_a_points_npz_that_declares_more_than_it_holds_or_allows_is_refused_before_it_is_read(tmp_path):
    """An .npy header in points.npz declaring 10^12 x 3 reached NumPy's allocator (issue 45); a scene over
    dataset.max_points is refused naming the setting."""
    import io
    import zipfile

    root = _folder(tmp_path / "huge")
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (10**12, 3)})
    with zipfile.ZipFile(root / "a" / "points.npz", "w") as z:
        z.writestr("coord.npy", header.getvalue() + b"\x00" * 64)  # the header (with its magic), then 64 bytes
        z.writestr("color.npy", b"")
    with pytest.raises(SceneFolderError, match="coord.npy: its header declares \\(1000000000000, 3\\)"):
        scene_folder(split="train", root=str(root))[0]
    root = _folder(tmp_path / "many")
    with pytest.raises(SceneFolderError, match="declares 500 rows, more than the 100 allowed \\(dataset.max_points=100"):
        scene_folder(split="train", root=str(root), max_points=100)[0]
    assert len(scene_folder(split="train", root=str(root), max_points=500)[0]["coord"]) == 500


_CHAIR = {"class": "chair", "center": [1, 1, 0.5], "size": [0.5, 0.5, 1.0]}


@pytest.mark.parametrize("overrides, message", [
    ({"color": np.full((500, 3), 200.0)}, r"float colours must lie in \[0, 1\]; color holds 200..200"),
    ({"color": np.full((500, 3), 300, np.int16)}, "integer colours must be 0-255; color holds 300..300"),
    ({"semantic": np.full(500, 0.5)}, "semantic ids must be whole numbers; found 0.5"),
    ({"instance": np.full(500, np.nan)}, "instance ids must be whole numbers"),
    ({"points": {"coord": np.ones((500, 3)) + 1j}}, r"coord \(complex128\) must hold real numbers"),
    ({"normal": np.ones((500, 3), bool)}, r"normal \(bool\) must hold real numbers"),
    ({"boxes": [{**_CHAIR, "center": "123"}]}, r"box 0 needs class, center \[x, y, z\] and size"),
    ({"boxes": [{**_CHAIR, "size": [True, True, True]}]}, r"box 0 needs class, center \[x, y, z\] and size"),
    ({"boxes": [{"class": "chair", "centre": [0, 0, 0], "size": [1, 1, 1]}]}, r"found \['centre', 'class', 'size'\]"),
    ({"boxes": [{**_CHAIR, "yaw": 0.3}, _CHAIR]}, "box 1 has no yaw but box 0 has one"),
    ({"boxes": [{**_CHAIR, "yaw": "0.3"}]}, "and a yaw number"),
])
def test_the_scene_folder_refuses_values_it_would_have_guessed_at(tmp_path, overrides, message):
    """Each of these was accepted silently: float colours above 1 divided by 255, integer colours clipped, float ids
    truncated, complex coordinates' real part kept, a centre "123" read as 1, 2, 3, booleans as sizes, a box without
    yaw among yawed ones given yaw 0, and "centre" refused without naming the keys found (issues 43 and 45)."""
    arrays = overrides.pop("points", {})
    root = _folder(tmp_path, **overrides)
    if arrays:  # written as they are (write_scene casts coordinates to float32)
        np.savez(root / "a" / "points.npz", **{"color": np.zeros((500, 3), np.uint8), **arrays})
    with pytest.raises(SceneFolderError, match=message):
        scene_folder(split="train", root=str(root))[0]


def test_boxes_with_a_yaw_in_some_scenes_and_not_in_others_are_refused_when_the_folder_is_opened(tmp_path):
    """A folder mixing yawed and axis-aligned scenes failed only at the final evaluation (issue 45); whether boxes
    carry a yaw was decided from the first training scene (issue 43)."""
    root = _folder(tmp_path)
    write_scene(str(root), "c", coord=np.zeros((3, 3)), color=np.ones((3, 3)), boxes=[{**_CHAIR, "yaw": 0.2}])
    with pytest.raises(SceneFolderError, match="the boxes of scene c have a yaw and those of scene a have none"):
        scene_folder(split="train", root=str(root))


def test_a_split_whose_box_lists_are_all_empty_has_no_boxes(tmp_path):
    """Scenes whose boxes.json are all empty trained a detector and reported mAP null (issue 45): the split has no
    box classes, so fine-tuning refuses it before training as it refuses a folder without boxes.json."""
    from geossl.pipeline import configure
    from geossl.pointcloud.detection.finetune import build_detector
    from geossl.pointcloud.encoders import PointPatchTransformer

    root = _folder(tmp_path, boxes=[])
    assert scene_folder(split="train", root=str(root)).box_classes is None
    _, cfg, adapter = configure("finetune", ["detection=votenet", "dataset=scene_folder", f"dataset.root={root}"])
    with pytest.raises(ConfigError, match="has no boxes to train a detector on \\(its train split holds none\\)"):
        build_detector(cfg, adapter.load_dataset(cfg), PointPatchTransformer(centres=16, patch=32, dim=32, depth=1, heads=4))


def _frame_folder(tmp_path):
    room = rooms(split="train", num_points=100, num_views=1, width=32, height=24).find(3)
    f = room["frames"].frames[0]
    return _folder(tmp_path, frames=[RGBDFrame(f.color, f.depth, f.K, f.cam_to_world, "f0")]), f.cam_to_world.double().numpy()


@pytest.mark.parametrize("change, message", [
    (lambda T: T @ np.diag([1.0, 1.0, -1.0, 1.0]), "is a reflection"),
    (lambda T: T @ np.diag([2.0, 2.0, 2.0, 1.0]), "is not a rotation and translation"),
    (lambda T: np.vstack([T[:3], [[0.0, 0.0, 0.5, 1.0]]]), "has bottom row"),
])
def test_camera_poses_that_are_not_rigid_are_refused(tmp_path, change, message):
    """A reflection, a scale of 2 or a projective bottom row in a pose file warped the views silently (issue 45)."""
    root, pose = _frame_folder(tmp_path)
    np.savetxt(root / "a" / "frames" / "f0.pose.txt", change(pose))
    with pytest.raises(GeosslError, match=f"f0: pose {message}"):
        scene_folder(split="train", root=str(root), views=1)[0]


@pytest.mark.parametrize("depth, fmt", [(np.full((24, 32), 200, np.uint8), "PNG"),
                                        (np.full((24, 32), np.nan, np.float32), "TIFF")])
def test_depth_images_that_are_not_16_bit_millimetres_are_refused(tmp_path, depth, fmt):
    """An 8-bit depth PNG was read as millimetres, a float depth image with NaN accepted (issue 45)."""
    from PIL import Image

    root, _ = _frame_folder(tmp_path)
    Image.fromarray(depth).save(root / "a" / "frames" / "f0.depth.png", format=fmt)
    with pytest.raises(GeosslError, match="depth images must be 16-bit images of millimetres"):
        scene_folder(split="train", root=str(root), views=1)[0]
