"""ScanNet sample scenes: known sizes, boxes that contain their instances, refused mismatches."""

import shutil

import numpy as np
import torch
import pytest

from geossl.errors import DatasetNotFoundError
from geossl.points import collate
from geossl.pointcloud.scannet import SceneFileError, load_scannet_scene, scannet_scenes
from tests.conftest import requires_scannet


@requires_scannet
def test_scannet_samples_have_known_sizes_and_boxes_contain_their_instances():
    assert scannet_scenes() == ["scene0000_00", "scene0000_01", "scene0000_02"]
    sizes = {}
    for scene in scannet_scenes():
        s = load_scannet_scene(scene)
        sizes[scene] = (len(s["coord"]), len(s["boxes"]))
        for box, inst in zip(s["boxes"], s["box_instance"]):
            pts = s["coord"][s["instance"] == inst]
            lo, hi = box[:3] - box[3:6] / 2, box[:3] + box[3:6] / 2
            assert len(pts) > 0 and ((pts >= lo - 1e-4) & (pts <= hi + 1e-4)).all(), (scene, int(inst))
    assert sizes == {"scene0000_00": (81369, 27), "scene0000_01": (80583, 29), "scene0000_02": (86001, 28)}
    batch = collate([load_scannet_scene(s) for s in scannet_scenes()])
    assert batch.offset.tolist() == [81369, 161952, 247953] and len(batch.boxes) == 3


@requires_scannet
def test_a_box_file_that_does_not_match_its_scene_is_refused(tmp_path):
    from geossl.data import data_root
    from geossl.pointcloud.scannet import DEFAULT

    for f in (data_root() / DEFAULT).glob("scene0000_00_*.npy"):
        shutil.copy(f, tmp_path / f.name)
    np.save(tmp_path / "scene0000_00_bbox_idx.npy", np.array([9999] * 27))
    with pytest.raises(SceneFileError, match="does not match its scene"):
        load_scannet_scene("scene0000_00", str(tmp_path))
    np.save(tmp_path / "scene0000_00_bbox_idx.npy", np.arange(3))
    with pytest.raises(SceneFileError, match="do not match"):
        load_scannet_scene("scene0000_00", str(tmp_path))
    with pytest.raises(DatasetNotFoundError, match="scene0000_09_vert_all.npy"):
        load_scannet_scene("scene0000_09", str(tmp_path))


@requires_scannet
def test_posed_frames_see_the_scene_after_undoing_the_axis_align_matrix():
    from geossl.ops.camera import invert_pose, project_points, transform_points
    from geossl.pointcloud.scannet import load_scannet_posed

    posed, scene = load_scannet_posed("scene0000_00"), load_scannet_scene("scene0000_00")
    A = posed["axis_align_matrix"]
    assert torch.allclose(A[:3, :3] @ A[:3, :3].T, torch.eye(3), atol=1e-5)  # a rigid alignment
    scan = transform_points(torch.linalg.inv(A.double()).float(), scene["coord"])  # back into the original scan frame
    seen = []
    for f in posed["frames"]:
        h, w = f["color"].shape[:2]
        uv, z = project_points(scan, invert_pose(f["cam_to_world"]), f["K"])
        inside = (z > 0) & (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)
        seen.append(int(inside.sum()))
        px = uv[inside].long()
        colour_err = (f["color"][px[:, 1], px[:, 0]] - scene["feat"][inside]).abs().mean()
        assert colour_err < 0.2, colour_err  # measured 0.13-0.16 (occluded points included); unrelated pairs 0.26-0.28
    assert [f["name"] for f in posed["frames"]] == ["00000", "00011", "00102"] and posed["frames"][0]["color"].shape == (968, 1296, 3)
    assert seen == [4532, 6105, 18745]  # the counts the data README verified independently


def test_an_info_pickle_that_names_other_callables_is_refused_before_running(tmp_path):
    import os
    import pickle

    from geossl.pointcloud.scannet import read_info_pickle

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'ran'}",))

    (tmp_path / "evil.pkl").write_bytes(pickle.dumps([{"a": Evil()}]))
    with pytest.raises(SceneFileError, match="refused: it names .*system"):
        read_info_pickle(tmp_path / "evil.pkl")
    assert not (tmp_path / "ran").exists()
    (tmp_path / "ok.pkl").write_bytes(pickle.dumps([{"m": np.eye(4), "s": "x", "n": 3}], protocol=2))
    out = read_info_pickle(tmp_path / "ok.pkl")
    assert np.array_equal(out[0]["m"], np.eye(4)) and out[0]["s"] == "x"
    (tmp_path / "bad.pkl").write_bytes(b"not a pickle")
    with pytest.raises(SceneFileError, match="not a readable info pickle"):
        read_info_pickle(tmp_path / "bad.pkl")
