"""Property tests of the scene readers that take a folder of files (ScanNet samples, RGB-D sequences, the
scene-folder format): one file of a valid folder is replaced by a mutation, and the folder is read correctly
or refused with geossl's error."""

import io
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from geossl.data import data_root
from tests.conftest import requires_redwood, requires_scannet, requires_sevenscenes
from tests.property import (float64_arrays, nested_json, npy_headers, npz_bytes, one_file_mutated, read_or_refuse, variants,
                            write_folder)


def _npy(a) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def _scannet_folder():
    g = np.random.default_rng(0)
    vert = np.concatenate([g.random((40, 3)) * 3, g.integers(0, 255, (40, 3))], 1).astype(np.float32)
    ins = np.repeat(np.arange(4), 10)
    arrays = {"vert_all": vert, "sem_label_all": np.repeat([1, 3, 5, 7], 10), "ins_label_all": ins,
              "bbox": np.array([[1, 1, 1, 0.5, 0.5, 0.5, 3], [2, 2, 1, 1, 1, 1, 5]], np.float32), "bbox_idx": np.array([1, 2])}
    return {f"s0_{k}.npy": _npy(v) for k, v in arrays.items()}


SCANNET = _scannet_folder()


def _scene_ok(s):
    assert s["coord"].shape[1] == 3 and len(s["coord"]) == len(s["feat"]) == len(s["labels"]) and s["boxes"].shape[1] == 7


@given(one_file_mutated(SCANNET))
def test_scannet_scene_files(change):
    from geossl.pointcloud.datasets import scannet

    with tempfile.TemporaryDirectory() as d:
        write_folder(d, SCANNET, change)
        read_or_refuse(lambda _: scannet(split="train", root=d, splits={"train": ["s0"]}).scene("s0", frames=False), b"", "unused",
                       _scene_ok)


@given(npy_headers(), st.sampled_from(sorted(SCANNET)))
def test_scannet_npy_files_whose_headers_declare_any_shape(member, name):
    from geossl.pointcloud.datasets import scannet

    with tempfile.TemporaryDirectory() as d:
        write_folder(d, SCANNET, (name, member))
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


def _sample(folder: str, names) -> dict:
    """The bytes of files of a sample under the data root (placeholders when the sample is absent: the test is skipped)."""
    root = data_root() / "3d" / folder
    return {n: (root / n).read_bytes() if root.is_dir() else b"x" for n in names}


SEVENSCENES = _sample("7scenes_tsdf_fusion_every5th", ["camera-intrinsics.txt"] + [
    f"frame-{i:06d}.{kind}" for i in (0, 5) for kind in ("color.jpg", "depth.png", "pose.txt")])
REDWOOD = _sample("redwood_livingroom1_open3d", ["trajectory.log", "camera_primesense.json"] + [
    f"{kind}/{i:05d}.{ext}" for i in range(5) for kind, ext in (("color", "jpg"), ("depth", "png"))])
MUTATED_SEVENSCENES = {k: v for k, v in SEVENSCENES.items() if k.startswith(("camera", "frame-000005"))}
MUTATED_REDWOOD = {k: v for k, v in REDWOOD.items() if k in ("trajectory.log", "camera_primesense.json", "depth/00000.png")}


@pytest.mark.parametrize("reader, files, mutated", [
    pytest.param("sevenscenes", SEVENSCENES, MUTATED_SEVENSCENES, marks=requires_sevenscenes),
    pytest.param("redwood", REDWOOD, MUTATED_REDWOOD, marks=requires_redwood)])
@given(data=st.data())
def test_rgbd_sequence_folders(reader, files, mutated, data):
    from geossl.pointcloud.rgbd import RGBD_DATASETS

    change = data.draw(one_file_mutated(mutated))
    with tempfile.TemporaryDirectory() as d:
        write_folder(d, files, change)
        read_or_refuse(lambda _: RGBD_DATASETS[reader](root=d, size=(40, 30)), b"", "unused", _sequence_ok)


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


@given(one_file_mutated(SCENE_FOLDER))
def test_scene_folders(change):
    from geossl.pointcloud.datasets import scene_folder

    with tempfile.TemporaryDirectory() as d:
        write_folder(d, SCENE_FOLDER, change)

        def check(item):
            assert item["coord"].shape[1] == 3 and torch.isfinite(item["coord"]).all() and item["feat"].max() <= 1

        read_or_refuse(lambda _: scene_folder(split="train", root=d)[0], b"", "unused", check)


def _read_scene_folder(d):
    from geossl.pointcloud.datasets import scene_folder

    return lambda _: scene_folder(split="train", root=d)[0]


def _item_ok(item):
    assert item["coord"].shape[1] == 3 and torch.isfinite(item["coord"]).all() and torch.isfinite(item["feat"]).all()
    assert 0 <= item["feat"].min() and item["feat"].max() <= 1
    if "boxes" in item:
        assert torch.isfinite(item["boxes"]).all()


@given(npy_headers(), st.sampled_from(["coord", "color", "semantic"]), st.booleans())
def test_scene_folder_npz_members_whose_headers_declare_any_shape(member, key, compressed):
    """A points.npz member declaring 10^12 rows reached numpy's allocator (issue 45): declared shapes are checked
    against the archive before anything is read."""
    g = np.random.default_rng(0)
    valid = {"coord": g.random((30, 3)), "color": g.integers(0, 255, (30, 3)).astype(np.uint8), "semantic": g.integers(-1, 2, 30)}
    members = {k: _npy(v) for k, v in valid.items()}
    members[key] = member
    files = dict(SCENE_FOLDER, **{"a/points.npz": npz_bytes(members, compressed)})
    with tempfile.TemporaryDirectory() as d:
        write_folder(d, files, ("a/points.npz", files["a/points.npz"]))
        read_or_refuse(_read_scene_folder(d), b"", "unused", _item_ok)


@given(nested_json(), st.sampled_from(["meta.json", "a/boxes.json"]))
def test_scene_folder_json_nested_any_depth(data, name):
    """A deeply nested meta.json raised RecursionError from the JSON decoder (issue 45)."""
    with tempfile.TemporaryDirectory() as d:
        write_folder(d, SCENE_FOLDER, (name, data))
        read_or_refuse(_read_scene_folder(d), b"", "unused", _item_ok)


@given(float64_arrays(30, 3), st.sampled_from(["coord", "color", "normal"]),
       st.one_of(st.just(np.array([[1.0, 1, 1, 1, 1, 1, 0]])), float64_arrays(1, 7)))
def test_scene_folder_float64_values_beyond_float32(values, key, box):
    """float64 values beyond float32's range passed the finiteness check and became inf after the cast (issue 45)."""
    import json

    g = np.random.default_rng(0)
    arrays = {"coord": g.random((30, 3)), "color": g.random((30, 3)), "semantic": g.integers(-1, 2, 30)}
    arrays[key] = values
    centre, size, yaw = box[0, :3].tolist(), np.abs(box[0, 3:6]).tolist(), float(box[0, 6])
    files = dict(SCENE_FOLDER, **{"a/points.npz": npz_bytes({k: _npy(v) for k, v in arrays.items()}, False),
                                  "a/boxes.json": json.dumps([{"class": "chair", "center": centre, "size": size,
                                                               "yaw": yaw}]).encode()})
    with tempfile.TemporaryDirectory() as d:
        write_folder(d, files, ("a/points.npz", files["a/points.npz"]))
        read_or_refuse(_read_scene_folder(d), b"", "unused", _item_ok)
