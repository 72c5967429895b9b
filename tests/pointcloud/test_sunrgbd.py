"""SUN RGB-D (geossl.pointcloud.sunrgbd, dataset=sunrgbd) on generated files in both layouts users have: boxes as
mmdetection3d's converter builds them (a label line with a known answer), the splits, the refusals, the VoteNet preset,
every reader property-tested, and a fine-tune on the generated frames evaluated again from the saved file alone."""

import io
import json
import math
import pickle
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given

from geossl.errors import DatasetNotFoundError, GeosslError
from tests.property import one_file_mutated, read_or_refuse, write_folder

BED = "bed 328 152 346 320 1.047307 4.168696 -0.246859 0.943792 1.151035 0.984807 -0.124529 -0.992216"
LAMP = "lamp 614.2 200.3 54.9 93.9 2.566667 4.800000 0.118333 0.321404 0.216742 0.441667 -0.148340 -0.988936"


def _frame_points(seed: int, n: int = 600) -> np.ndarray:
    g = np.random.default_rng(seed)
    xyz = g.uniform([-2, 1, -1.2], [2, 5, 1.5], (n, 3))
    return np.concatenate([xyz, g.random((n, 3))], 1)


def _mat(points: np.ndarray) -> bytes:
    from scipy import io as sio

    buf = io.BytesIO()
    sio.savemat(buf, {"instance": points})
    return buf.getvalue()


def export_files(frames=(1, 2, 3)) -> dict:
    files = {"sunrgbd_trainval/train_data_idx.txt": b"1\n2\n", "sunrgbd_trainval/val_data_idx.txt": b"3\n"}
    for i in frames:
        files[f"sunrgbd_trainval/depth/{i:06d}.mat"] = _mat(_frame_points(i))
        files[f"sunrgbd_trainval/label/{i:06d}.txt"] = f"{BED}\n{LAMP}\n".encode()
    return files


def prepared_files() -> dict:
    def info(name, label):
        return {"sample_idx": np.int64(1), "lidar_points": {"num_pts_feats": 6, "lidar_path": name},
                "instances": [{"bbox_3d": [np.float64(0.5), 3.0, -0.2, 2.0, 1.5, 1.0, np.float64(0.3)], "bbox_label_3d": label},
                              {"bbox_3d": [1.0, 2.0, 0.0, 0.5, 0.5, 0.5, 0.0], "bbox_label_3d": -1}]}

    files = {"points/000001.bin": _frame_points(1).astype("<f4").tobytes(),
             "points/000002.bin": _frame_points(2).astype("<f4").tobytes()}
    for split, frames in (("train", [info("000001.bin", 0)]), ("val", [info("000002.bin", 3)])):
        files[f"sunrgbd_infos_{split}.pkl"] = pickle.dumps({"metainfo": {"DATASET": "SUNRGBD"}, "data_list": frames}, protocol=2)
    return files


def _write(folder: Path, files: dict) -> Path:
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    return folder


def test_a_label_line_becomes_mmdet3ds_box():
    from geossl.pointcloud.sunrgbd import parse_label_line

    box = parse_label_line(BED, "test")
    # centroid; size = 2 x (length, width, height) with length the 10th field; yaw = atan2(o_y, o_x); class bed = 0
    assert box == pytest.approx([1.047307, 4.168696, -0.246859, 2 * 1.151035, 2 * 0.943792, 2 * 0.984807,
                                 math.atan2(-0.992216, -0.124529), 0.0])
    assert math.degrees(box[6]) == pytest.approx(-97.15, abs=0.01)
    assert parse_label_line(LAMP, "test") is None  # not one of the 10 classes


def test_both_layouts_read_frames_boxes_and_splits(tmp_path):
    from geossl.pointcloud.datasets import sunrgbd

    export = _write(tmp_path / "export", export_files())
    train, val, test = (sunrgbd(split=s, root=str(export)) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (2, 1, 1) and train.box_yaw and train.box_classes[0] == "bed"
    scene = train[0]
    assert scene["coord"].shape == (600, 3) and scene["feat"].max() <= 1 and scene["boxes"].shape == (1, 8)
    assert torch.allclose(scene["coord"], torch.from_numpy(_frame_points(1)[:, :3]).float())
    assert train.find("000002")["name"] == "000002" and train.find(2)["name"] == "000002"  # dataset.scene=000002 reads as 2

    prepared = _write(tmp_path / "prepared", prepared_files())
    train, val = sunrgbd(split="train", root=str(prepared)), sunrgbd(split="val", root=str(prepared))
    s = train[0]
    assert s["name"] == "000001" and s["boxes"].tolist() == [pytest.approx([0.5, 3.0, -0.2, 2.0, 1.5, 1.0, 0.3, 0.0])]
    assert val[0]["boxes"][:, 7].tolist() == [3.0] and torch.allclose(s["coord"], torch.from_numpy(_frame_points(1)[:, :3]).float())


def test_refusals_name_what_is_wrong(tmp_path):
    from geossl.pointcloud.datasets import sunrgbd

    with pytest.raises(DatasetNotFoundError, match="sunrgbd_infos_train.pkl.*sunrgbd_trainval"):
        sunrgbd(split="train", root=str(tmp_path))
    files = prepared_files()
    old = _write(tmp_path / "old", {**files, "sunrgbd_infos_train.pkl": pickle.dumps([{"point_cloud": {}}], protocol=2)})
    with pytest.raises(GeosslError, match="mmdetection3d < 1.0"):
        sunrgbd(split="train", root=str(old))
    info = pickle.loads(files["sunrgbd_infos_train.pkl"])
    info["data_list"][0]["lidar_points"]["lidar_path"] = "../../etc/passwd"
    escape = _write(tmp_path / "escape", {**files, "sunrgbd_infos_train.pkl": pickle.dumps(info, protocol=2)})
    with pytest.raises(GeosslError, match="not a file name in points/"):
        sunrgbd(split="train", root=str(escape))

    class Evil:
        def __reduce__(self):
            return (print, ("ran",))

    evil = _write(tmp_path / "evil", {**files, "sunrgbd_infos_train.pkl": pickle.dumps({"data_list": [Evil()]}, protocol=2)})
    with pytest.raises(GeosslError, match="refused: it names (__builtin__|builtins).print"):
        sunrgbd(split="train", root=str(evil))
    short = _write(tmp_path / "short", {**files, "points/000001.bin": b"\0" * 10})
    with pytest.raises(GeosslError, match="not a whole number of 6-float32 points"):
        sunrgbd(split="train", root=str(short))[0]


def test_detection_votenet_sunrgbd_is_mmdet3ds_protocol():
    from geossl.config import compose

    cfg = compose("finetune_scene", ["detection=votenet_sunrgbd", "dataset=sunrgbd", "dataset.root=/x"])
    assert cfg.detection.name == "votenet" and cfg.detection.group == 16  # the votenet head, its other keys kept
    assert (cfg.detection.num_seeds, cfg.detection.num_proposals, cfg.detection.heading_bins) == (1024, 256, 12)
    assert (cfg.transform.points, cfg.transform.rotate, list(cfg.transform.scale), cfg.transform.voxel) == (20000, 30.0, [0.85, 1.15], 0.0)
    rooms = compose("finetune_scene", ["detection=votenet", "dataset=rooms"])
    assert rooms.detection.num_proposals == 64 and rooms.transform.points == 4096  # detection=votenet is unchanged
    assert compose("finetune_scene", ["detection=votenet_sunrgbd", "dataset=sunrgbd", "dataset.root=/x",
                                      "transform.points=100"]).transform.points == 100  # the command line wins


EXPORT = export_files(frames=(1, 3))
PREPARED = prepared_files()


def _frames_ok(scenes):
    for s in scenes:
        assert s["coord"].shape[1] == 3 and len(s["coord"]) == len(s["feat"]) and s["boxes"].shape[1] == 8
        assert torch.isfinite(s["coord"]).all() and torch.isfinite(s["boxes"]).all()


def _read_all(root: str, split: str):
    from geossl.pointcloud.datasets import sunrgbd

    ds = sunrgbd(split=split, root=root)
    return [ds.scene(k, False) for k in ds.keys]


@given(one_file_mutated({k: v for k, v in EXPORT.items() if "000003" not in k}))
def test_export_files(change):
    with tempfile.TemporaryDirectory() as d:
        write_folder(d, EXPORT, change)
        read_or_refuse(lambda _: _read_all(d, "train"), b"", "unused", _frames_ok)


@given(one_file_mutated({k: v for k, v in PREPARED.items() if "val" not in k and "000002" not in k}))
def test_prepared_files(change):
    with tempfile.TemporaryDirectory() as d:
        write_folder(d, PREPARED, change)
        read_or_refuse(lambda _: _read_all(d, "train"), b"", "unused", _frames_ok)


def test_finetune_on_sunrgbd_then_evaluate_from_the_file_alone(tmp_path):
    from tests.cli.test_cli import geossl

    root = _write(tmp_path / "sun", export_files(frames=(1, 2, 3)))
    tiny = ["transform.points=512", "encoder.centres=16", "encoder.dim=32", "encoder.depth=1", "encoder.tokeniser=8",
            "detection.num_seeds=128", "detection.num_proposals=32", "detection.group=8", "detection.width=32", "trainer.steps=3",
            "trainer.monitor_every=3", "trainer.warmup=1", "trainer.progress=false", "trainer.threads=1", "dataset.batch_size=2"]
    res = geossl("finetune", "detection=votenet", "dataset=sunrgbd", f"dataset.root={root}", "encoder=point_patch_transformer",
                 f"run_dir={tmp_path / 'det'}", *tiny, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    summary = json.loads((tmp_path / "det" / "summary.json").read_text())
    assert summary["train_scenes"] == 2 and summary["test_scenes"] == 1 and "mAP@0.25" in summary
    res = geossl("evaluate", f"model={tmp_path / 'det' / 'detector.safetensors'}", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert (out["mAP@0.25"], out["mAP@0.5"], out["test_scenes"]) == (summary["mAP@0.25"], summary["mAP@0.5"], 1)
