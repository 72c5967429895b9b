"""ScanNet sample scenes: known sizes, boxes that contain their instances, refused mismatches."""

import shutil

import numpy as np
import pytest

from geossl.errors import DatasetNotFoundError
from geossl.pointcloud.batch import collate
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
