"""RGB-D sequence readers on the real 7-Scenes and Redwood samples and a synthetic ScanNet export."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from geossl.errors import DatasetNotFoundError
from geossl.ops.camera import backproject_depth
from geossl.pointcloud.rgbd import RGBDError, redwood, scannet_export, sevenscenes
from tests.conftest import requires_redwood, requires_sevenscenes


@requires_sevenscenes
def test_sevenscenes_frames_sizes_units_and_split():
    seq = sevenscenes(size=(160, 120))
    assert len(seq.frames) == 200
    train, test = seq.split(10)
    assert (len(train), len(test)) == (180, 20) and test[1].name == "frame-000050"  # position 10 = frame 50
    f = seq.frames[0]
    assert f.color.shape == (120, 160, 3) and f.depth.shape == (120, 160) and 0 <= f.color.min() and f.color.max() <= 1
    assert torch.allclose(f.K, torch.tensor([[146.25, 0, 80], [0, 146.25, 60], [0, 0, 1]]))
    valid = f.depth[f.depth > 0]
    assert 0.5 < valid.min() and valid.max() < 4.0 and (f.depth > 0).float().mean() > 0.7  # metres; ~89% valid


@requires_redwood
def test_redwood_poses_are_camera_to_world():
    seq = redwood()
    assert len(seq.frames) == 5 and seq.frames[0].color.shape == (480, 640, 3)
    assert torch.allclose(seq.frames[0].K, torch.tensor([[525.0, 0, 319.5], [0, 525.0, 239.5], [0, 0, 1]]))
    a, _ = backproject_depth(seq.frames[0].depth[::4, ::4].contiguous(), seq.frames[0].K / torch.tensor([[4.0], [4.0], [1.0]]),
                             seq.frames[0].cam_to_world)
    b, _ = backproject_depth(seq.frames[4].depth[::4, ::4].contiguous(), seq.frames[4].K / torch.tensor([[4.0], [4.0], [1.0]]),
                             seq.frames[4].cam_to_world)
    nn = torch.cdist(a[::5], b).min(1).values
    assert nn.median() < 0.03  # the two views of the same room agree in world coordinates


def _scannet_folder(tmp_path, bad_pose=False):
    for sub in ("color", "depth", "pose", "intrinsic"):
        (tmp_path / sub).mkdir()
    K = np.array([[40.0, 0, 16, 0], [0, 40.0, 12, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    np.savetxt(tmp_path / "intrinsic" / "intrinsic_depth.txt", K)
    for i in range(3):
        Image.fromarray(np.full((48, 64, 3), 60 * i, np.uint8)).save(tmp_path / "color" / f"{i}.jpg")
        Image.fromarray(np.full((24, 32), 1500, np.uint16)).save(tmp_path / "depth" / f"{i}.png")
        pose = np.eye(4)
        if i == 1 and bad_pose:
            pose[:] = -np.inf  # ScanNet writes -inf poses where tracking was lost
        np.savetxt(tmp_path / "pose" / f"{i}.txt", pose)
    return tmp_path


def test_scannet_export_resizes_colour_to_depth_and_skips_lost_poses(tmp_path):
    seq = scannet_export(str(_scannet_folder(tmp_path, bad_pose=True)), stride=1)
    assert [f.name for f in seq.frames] == ["0", "2"]
    f = seq.frames[1]
    assert f.color.shape == (24, 32, 3) and torch.allclose(f.depth, torch.full((24, 32), 1.5))
    assert abs(float(f.color.mean()) - 120 / 255) < 0.02


def test_bad_rgbd_input_is_refused_with_the_reason(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="looked in .*nowhere"):
        sevenscenes(root=str(tmp_path / "nowhere"))
    (tmp_path / "scan").mkdir()
    folder = _scannet_folder(tmp_path / "scan")
    np.savetxt(folder / "intrinsic" / "intrinsic_depth.txt", np.array([[40.0, 0, 160, 0], [0, 40.0, 120, 0], [0, 0, 1, 0], [0, 0, 0, 1]]))
    with pytest.raises(RGBDError, match="principal point .* outside the 32x24 depth image"):
        scannet_export(str(folder))
    np.savetxt(folder / "intrinsic" / "intrinsic_depth.txt", np.array([[-40.0, 0, 16, 0], [0, 40.0, 12, 0], [0, 0, 1, 0], [0, 0, 0, 1]]))
    with pytest.raises(Exception, match="non-positive focal length"):
        scannet_export(str(folder))
    red = tmp_path / "red"
    (red / "color").mkdir(parents=True)
    (red / "depth").mkdir()
    Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(red / "color" / "00000.jpg")
    Image.fromarray(np.full((24, 32), 1000, np.uint16)).save(red / "depth" / "00000.png")
    (red / "trajectory.log").write_text("0 0 1\n1 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1\n")
    (red / "camera.json").write_text(json.dumps({"width": 640, "height": 480, "intrinsic_matrix": [20, 0, 0, 0, 20, 0, 16, 12, 1]}))
    with pytest.raises(RGBDError, match="describes 640x480 images but .*00000.png is 32x24"):
        redwood(str(red))
