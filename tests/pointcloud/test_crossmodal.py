"""Point-image alignment and complementary masking (geossl.pointcloud.crossmodal), on hand-placed cameras."""

import pytest
import torch

from geossl.errors import ConfigError
from geossl.pointcloud.crossmodal import complementary_masks, image_patch_of_points, patch_grid

K = torch.tensor([[100.0, 0.0, 80.0], [0.0, 100.0, 60.0], [0.0, 0.0, 1.0]])


def test_a_hand_placed_point_lands_in_the_patch_it_projects_to():
    assert patch_grid(160, 120, 16) == (10, 7)
    moved = torch.eye(4)
    moved[0, 3] = 1.0  # the second camera sits one metre along +x, looking down +z like the first
    points = torch.tensor([[0.0, 0.0, 2.0],    # view 0: pixel (80, 60), column 5, row 3 -> 35; view 1: pixel (30, 60) -> 31
                           [-0.8, -0.6, 2.0],  # view 0: pixel (40, 30), column 2, row 1 -> 12; view 1: pixel (-10, 30), outside
                           [0.0, 0.0, -1.0],   # behind both cameras
                           [2.0, 0.0, 1.0],    # view 0: pixel (280, 60), right of the image
                           [1.0, 0.0, 2.0]])   # view 0: pixel (130, 60) -> 38; view 1: the image centre -> 35
    index = image_patch_of_points(points, torch.stack([K, K]), torch.stack([torch.eye(4), moved]), 160, 120, 16)
    assert index.tolist() == [[35, 12, -1, -1, 38], [31, -1, -1, -1, 35]]
    with pytest.raises(ConfigError, match="at least 16x16"):
        patch_grid(8, 120, 16)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("ratio", [0.3, 0.6, 0.9])
def test_no_region_is_visible_in_both_modalities_and_ratios_hold(seed, ratio):
    g = torch.Generator().manual_seed(seed)
    views, centres, patches = 3, 64, 70
    landed = torch.randint(-1, patches, (views, centres), generator=g)  # -1: the centre is not in that view
    point_hidden, image_hidden = complementary_masks(landed, patches, ratio, g)
    assert int(point_hidden.sum()) == int(ratio * centres)
    for v in range(views):
        visible_points = landed[v][(landed[v] >= 0) & ~point_hidden]
        assert image_hidden[v, visible_points].all()  # a visible point patch's image patch is hidden
        forced = len(torch.unique(visible_points))
        assert int(image_hidden[v].sum()) == max(int(ratio * patches), forced)
        of_hidden = torch.zeros(patches, dtype=torch.bool)
        of_hidden[landed[v][(landed[v] >= 0) & point_hidden]] = True
        of_hidden[visible_points] = False
        others = patches - forced - int(of_hidden.sum())  # patches no point patch pins either way
        if others >= int(ratio * patches) - forced:  # the ratio can be met without them: hidden points' patches stay visible
            assert not image_hidden[v, of_hidden].any()


def test_masks_are_drawn_from_the_generator_and_bad_ratios_are_refused():
    landed = torch.randint(0, 20, (2, 16), generator=torch.Generator().manual_seed(0))
    a = complementary_masks(landed, 20, 0.5, torch.Generator().manual_seed(3))
    b = complementary_masks(landed, 20, 0.5, torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    for ratio in (0.0, 1.0):
        with pytest.raises(ConfigError, match=r"mask ratio must be in \(0, 1\)"):
            complementary_masks(landed, 20, ratio)
