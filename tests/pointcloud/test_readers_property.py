"""Property tests of the scene readers that take a folder of files (ScanNet samples, RGB-D sequences, the
scene-folder format): one file of a valid folder is replaced by a mutation, and the folder is read correctly
or refused with geossl's error."""

import io
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st

from geossl.data import data_root
from tests.conftest import requires_redwood, requires_scannet, requires_sevenscenes
from tests.property import read_or_refuse, variants


def _npy(a) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def _scannet_folder():
    g = np.random.default_rng(0)
    vert = np.concatenate([g.random((40, 3)) * 3, g.integers(0, 255, (40, 3))], 1).astype(np.float32)
    ins = np.repeat(np.arange(4), 10)
    return {"vert_all": _npy(vert), "sem_label_all": _npy(np.repeat([1, 3, 5, 7], 10)), "ins_label_all": _npy(ins),
            "bbox": _npy(np.array([[1, 1, 1, 0.5, 0.5, 0.5, 3], [2, 2, 1, 1, 1, 1, 5]], np.float32)),
            "bbox_idx": _npy(np.array([1, 2]))}


SCANNET = _scannet_folder()


def _scene_ok(s):
    assert s["coord"].shape[1] == 3 and len(s["coord"]) == len(s["feat"]) == len(s["labels"]) and s["boxes"].shape[1] == 7


@given(st.sampled_from(sorted(SCANNET)).flatmap(lambda k: st.tuples(st.just(k), variants(SCANNET[k]))))
def test_scannet_scene_files(change):
    from geossl.pointcloud.datasets import scannet

    part, data = change
    with tempfile.TemporaryDirectory() as d:
        for k, v in SCANNET.items():
            (Path(d) / f"s0_{k}.npy").write_bytes(data if k == part else v)
        read_or_refuse(lambda _: scannet(split="train", root=d, splits={"train": ["s0"]}).scene("s0", frames=False), b"", "unused",
                       _scene_ok)


@requires_scannet
@given(variants((data_root() / "3d/scannet_scene0000_mmdet3d/scannet_infos_posed_pr748.pkl").read_bytes()
                if (data_root() / "3d/scannet_scene0000_mmdet3d").is_dir() else b"x"))
def test_scannet_info_pickles(data):
    from geossl.pointcloud.scannet import read_info_pickle

    read_or_refuse(read_info_pickle, data, "scannet_infos_x.pkl", lambda r: None)


def _sequence_ok(seq):
    for f in seq.frames:
        assert f.color.shape[:2] == f.depth.shape and f.K.shape == (3, 3) and torch.isfinite(f.cam_to_world).all()


def _copy_sample(src: Path, dst: Path, keep: int):
    files = sorted(p for p in src.iterdir() if p.is_file())
    for p in files:
        shutil.copy(p, dst / p.name)
    return files


@requires_sevenscenes
@given(st.sampled_from(["camera-intrinsics.txt", "frame-000005.pose.txt", "frame-000005.depth.png", "frame-000005.color.jpg"]).flatmap(
    lambda name: st.tuples(st.just(name), variants((data_root() / "3d/7scenes_tsdf_fusion_every5th" / name).read_bytes()
                                                   if (data_root() / "3d/7scenes_tsdf_fusion_every5th").is_dir() else b"x"))))
def test_sevenscenes_folders(change):
    from geossl.pointcloud.rgbd import sevenscenes

    name, data = change
    src = data_root() / "3d/7scenes_tsdf_fusion_every5th"
    with tempfile.TemporaryDirectory() as d:
        for stem in ("frame-000000", "frame-000005"):
            for ext in (".color.jpg", ".depth.png", ".pose.txt"):
                shutil.copy(src / f"{stem}{ext}", Path(d) / f"{stem}{ext}")
        shutil.copy(src / "camera-intrinsics.txt", Path(d) / "camera-intrinsics.txt")
        (Path(d) / name).write_bytes(data)
        read_or_refuse(lambda _: sevenscenes(root=d, size=(40, 30)), b"", "unused", _sequence_ok)


@requires_redwood
@given(st.sampled_from(["trajectory.log", "camera_primesense.json", "depth/00000.png"]).flatmap(
    lambda name: st.tuples(st.just(name), variants((data_root() / "3d/redwood_livingroom1_open3d" / name).read_bytes()
                                                   if (data_root() / "3d/redwood_livingroom1_open3d").is_dir() else b"x"))))
def test_redwood_folders(change):
    from geossl.pointcloud.rgbd import redwood

    name, data = change
    src = data_root() / "3d/redwood_livingroom1_open3d"
    with tempfile.TemporaryDirectory() as d:
        for sub in ("color", "depth"):
            shutil.copytree(src / sub, Path(d) / sub)
        for f in ("trajectory.log", "camera_primesense.json"):
            shutil.copy(src / f, Path(d) / f)
        (Path(d) / name).write_bytes(data)
        read_or_refuse(lambda _: redwood(root=d, size=(40, 30)), b"", "unused", _sequence_ok)


def _scene_folder_files():
    from geossl.pointcloud.scene_folder import write_meta, write_scene

    with tempfile.TemporaryDirectory() as d:
        g = np.random.default_rng(0)
        write_scene(d, "a", coord=g.random((30, 3)), color=g.integers(0, 255, (30, 3)).astype(np.uint8),
                    semantic=g.integers(-1, 2, 30), boxes=[{"class": "chair", "center": [1, 1, 1], "size": [1, 1, 1]}])
        write_meta(d, semantic_classes=["a", "b"], box_classes=["chair"], splits={"train": ["a"]})
        return {"meta.json": (Path(d) / "meta.json").read_bytes(), "a/points.npz": (Path(d) / "a/points.npz").read_bytes(),
                "a/boxes.json": (Path(d) / "a/boxes.json").read_bytes()}


SCENE_FOLDER = _scene_folder_files()


@given(st.sampled_from(sorted(SCENE_FOLDER)).flatmap(lambda k: st.tuples(st.just(k), variants(SCENE_FOLDER[k]))))
def test_scene_folders(change):
    from geossl.pointcloud.datasets import scene_folder

    part, data = change
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "a").mkdir()
        for k, v in SCENE_FOLDER.items():
            (Path(d) / k).write_bytes(data if k == part else v)

        def check(item):
            assert item["coord"].shape[1] == 3 and torch.isfinite(item["coord"]).all() and item["feat"].max() <= 1

        read_or_refuse(lambda _: scene_folder(split="train", root=d)[0], b"", "unused", check)
