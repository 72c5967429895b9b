"""Property tests of the point-file readers (PLY, PCD, NPZ): read correctly or refused with geossl's error."""

import io

import numpy as np
import torch
from hypothesis import given

from geossl.pointcloud.files import load_point_file
from tests.property import read_or_refuse, variants


def _valid_scene(scene):
    assert scene["coord"].ndim == 2 and scene["coord"].shape[1] == 3 and len(scene["coord"]) > 0
    assert scene["coord"].dtype == torch.float32 and scene["feat"].shape == scene["coord"].shape
    assert torch.isfinite(scene["coord"]).all() and (scene["feat"] >= 0).all() and (scene["feat"] <= 1).all()


XYZ = np.random.default_rng(0).random((6, 3)).astype(np.float32)
RGB = (np.random.default_rng(1).random((6, 3)) * 255).astype(np.uint8)


def _ply(text: bool) -> bytes:
    from plyfile import PlyData, PlyElement

    v = np.empty(6, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    for i, k in enumerate("xyz"):
        v[k] = XYZ[:, i]
    for i, k in enumerate(("red", "green", "blue")):
        v[k] = RGB[:, i]
    buf = io.BytesIO()
    PlyData([PlyElement.describe(v, "vertex")], text=text).write(buf)
    return buf.getvalue()


def _pcd(kind: str) -> bytes:
    packed = ((RGB[:, 0].astype(np.uint32) << 16) | (RGB[:, 1].astype(np.uint32) << 8) | RGB[:, 2]).view(np.float32)
    head = ("VERSION 0.7\nFIELDS x y z rgb\nSIZE 4 4 4 4\nTYPE F F F F\nCOUNT 1 1 1 1\nWIDTH 6\nHEIGHT 1\n"
            f"VIEWPOINT 0 0 0 1 0 0 0\nPOINTS 6\nDATA {kind}\n").encode()
    if kind == "ascii":
        return head + "".join(f"{a:.9g} {b:.9g} {c:.9g} {d:.9e}\n" for (a, b, c), d in zip(XYZ, packed)).encode()
    return head + np.concatenate([XYZ, packed[:, None]], 1).astype(np.float32).tobytes()


def _npz() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, coord=XYZ, color=RGB)
    return buf.getvalue()


def test_the_valid_files_read_back_what_was_written():
    for data, name in ((_ply(False), "a.ply"), (_ply(True), "a.ply"), (_pcd("ascii"), "a.pcd"), (_pcd("binary"), "a.pcd"), (_npz(), "a.npz")):
        def check(scene):
            _valid_scene(scene)
            assert torch.allclose(scene["coord"], torch.from_numpy(XYZ)) and torch.allclose(scene["feat"], torch.from_numpy(RGB / 255.0).float())
        read_or_refuse(lambda p: load_point_file(str(p)), data, name, check)


@given(variants(_ply(False)))
def test_binary_ply(data):
    read_or_refuse(lambda p: load_point_file(str(p)), data, "a.ply", _valid_scene)


@given(variants(_ply(True)))
def test_ascii_ply(data):
    read_or_refuse(lambda p: load_point_file(str(p)), data, "a.ply", _valid_scene)


@given(variants(_pcd("ascii")))
def test_ascii_pcd(data):
    read_or_refuse(lambda p: load_point_file(str(p)), data, "a.pcd", _valid_scene)


@given(variants(_pcd("binary")))
def test_binary_pcd(data):
    read_or_refuse(lambda p: load_point_file(str(p)), data, "a.pcd", _valid_scene)


@given(variants(_npz()))
def test_npz(data):
    read_or_refuse(lambda p: load_point_file(str(p)), data, "a.npz", _valid_scene)


def test_a_pcd_with_counts_reads_every_field_where_it_is():
    """COUNT 3 for a normal field: the ascii columns shift (read silently wrong before), x/y/z stay where they are."""
    rows = "".join(f"{a} {b} {c} 0 0 1\n" for a, b, c in XYZ.tolist())
    text = ("VERSION 0.7\nFIELDS x y z normal\nSIZE 4 4 4 4\nTYPE F F F F\nCOUNT 1 1 1 3\nWIDTH 6\nHEIGHT 1\nPOINTS 6\nDATA ascii\n" + rows)

    def check(scene):
        assert torch.allclose(scene["coord"], torch.from_numpy(XYZ))

    read_or_refuse(lambda p: load_point_file(str(p)), text.encode(), "a.pcd", check)
    mismatched = text.replace("COUNT 1 1 1 3", "COUNT 1 1 3").encode()  # zip() used to drop the fourth field silently
    read_or_refuse(lambda p: load_point_file(str(p)), mismatched, "a.pcd", lambda s: (_ for _ in ()).throw(AssertionError("read")))
