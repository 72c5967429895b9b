"""Scene pictures: box outlines turned by their yaw, and every box inside the picture (issue 43, item 1)."""

import numpy as np
import pytest

from geossl.pointcloud.show import _view, box_outline


def test_a_yawed_box_is_outlined_by_its_turned_footprint():
    box = np.array([1.0, 2.0, 0.5, 2.0, 1.0, 1.0, np.pi / 2, 0])  # 2 m along x, 1 m along y, turned 90 degrees
    top = box_outline(box, (0, 1))
    assert top[:, 0].min() == pytest.approx(0.5) and top[:, 0].max() == pytest.approx(1.5)  # now 1 m along x
    assert top[:, 1].min() == pytest.approx(1.0) and top[:, 1].max() == pytest.approx(3.0)  # and 2 m along y
    assert box_outline(box, (0, 1))[0] == pytest.approx([1.5, 1.0])  # the corner (-1, -0.5) turned counter-clockwise
    quarter = box_outline(np.array([0, 0, 0, 2.0, 2.0, 1.0, np.pi / 4, 0]), (0, 1))
    assert np.hypot(*quarter.T) == pytest.approx([np.sqrt(2)] * 4) and quarter[:, 0].max() == pytest.approx(np.sqrt(2))
    front = box_outline(np.array([0, 0, 0.5, 2.0, 1.0, 1.0, np.pi / 2, 0]), (0, 2))
    assert front[:, 0].max() == pytest.approx(0.5) and front[:, 1].max() == pytest.approx(1.0)  # its x span turned, its height
    plain = box_outline(np.array([0, 0, 0, 2.0, 1.0, 1.0, 0]), (0, 1))  # no yaw: the axis-aligned rectangle
    assert plain[:, 0].max() == pytest.approx(1.0) and plain[:, 1].max() == pytest.approx(0.5)


def test_a_box_beyond_the_points_is_drawn_whole():
    coord = np.random.default_rng(0).uniform(0, 1, (200, 3))
    box = np.array([2.5, 0.5, 0.5, 1.0, 1.0, 1.0, 0])  # entirely right of the points
    img = np.asarray(_view(coord, np.full((200, 3), 0.5), [(box[None], (220, 0, 0))], (0, 1), 2, 200).convert("RGB"))
    red = np.argwhere((img[..., 0] == 220) & (img[..., 1] == 0))
    assert len(red) and red[:, 1].max() >= img.shape[1] - 12  # its right edge lies inside the picture's margin
    assert img.shape[1] > 2 * img.shape[0]  # the picture spans the points and the box: 3 m by 1 m (plus margins)
