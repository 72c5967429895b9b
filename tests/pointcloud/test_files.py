"""Point files: the Redwood binary PCD sample, PLY and NPZ round trips, refused files."""

import numpy as np
import pytest
import torch

from geossl.data import data_root
from geossl.pointcloud.files import PointFileError, load_point_file
from tests.conftest import requires_redwood


@requires_redwood
def test_binary_pcd_sample_reads_with_colours():
    s = load_point_file(str(data_root() / "3d/redwood_livingroom1_open3d/fragment.pcd"))
    assert s["coord"].shape == (113662, 3) and s["feat"].shape == (113662, 3)
    assert 0 <= s["feat"].min() and s["feat"].max() <= 1 and s["feat"].std() > 0.05  # real colours unpacked from rgb
    assert (s["coord"].max(0).values - s["coord"].min(0).values).max() < 10  # a room, in metres


def test_ply_npz_and_ascii_pcd_round_trips(tmp_path):
    from plyfile import PlyData, PlyElement

    xyz = np.random.default_rng(0).random((50, 3)).astype(np.float32)
    rgb = (np.random.default_rng(1).random((50, 3)) * 255).astype(np.uint8)
    v = np.empty(50, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    for i, k in enumerate("xyz"):
        v[k] = xyz[:, i]
    for i, k in enumerate(("red", "green", "blue")):
        v[k] = rgb[:, i]
    PlyData([PlyElement.describe(v, "vertex")]).write(str(tmp_path / "a.ply"))
    np.savez(tmp_path / "a.npz", coord=xyz, color=rgb / 255.0)
    packed = ((rgb[:, 0].astype(np.uint32) << 16) | (rgb[:, 1].astype(np.uint32) << 8) | rgb[:, 2]).view(np.float32)
    lines = ["VERSION 0.7", "FIELDS x y z rgb", "SIZE 4 4 4 4", "TYPE F F F F", "COUNT 1 1 1 1", "WIDTH 50", "HEIGHT 1",
             "POINTS 50", "DATA ascii"] + [f"{a:.9g} {b:.9g} {c:.9g} {d:.9e}" for (a, b, c), d in zip(xyz, packed)]
    (tmp_path / "a.pcd").write_text("\n".join(lines) + "\n")
    for name in ("a.ply", "a.npz", "a.pcd"):
        s = load_point_file(str(tmp_path / name))
        assert torch.allclose(s["coord"], torch.from_numpy(xyz)), name
        assert torch.allclose(s["feat"], torch.from_numpy(rgb / 255.0).float(), atol=1e-6), name


def test_bad_point_files_are_refused(tmp_path):
    (tmp_path / "c.pcd").write_text("FIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nPOINTS 3\nDATA binary_compressed\n")
    with pytest.raises(PointFileError, match="binary_compressed"):
        load_point_file(str(tmp_path / "c.pcd"))
    (tmp_path / "d.xyz").write_text("0 0 0\n")
    with pytest.raises(PointFileError, match="Valid formats: .ply, .pcd, .npz"):
        load_point_file(str(tmp_path / "d.xyz"))
    np.savez(tmp_path / "e.npz", points=np.zeros((3, 3)))
    with pytest.raises(PointFileError, match="no 'coord' array"):
        load_point_file(str(tmp_path / "e.npz"))
    np.savez(tmp_path / "f.npz", coord=np.zeros((0, 3)))
    with pytest.raises(PointFileError, match="no points"):
        load_point_file(str(tmp_path / "f.npz"))
