import pytest
import torch

from geossl.graph.masking import sample_node_mask


def _check_partition(m, n):
    masked = set(m.mask_nodes.tolist())
    assert len(masked) == m.mask_nodes.numel()
    assert set(m.token_nodes.tolist()) | set(m.noise_nodes.tolist()) == masked
    assert not set(m.token_nodes.tolist()) & set(m.noise_nodes.tolist())
    assert m.noise_source.numel() == m.noise_nodes.numel()
    src = m.source(n)
    assert (src[m.token_nodes] == -1).all()
    keep = m.keep_nodes(n)
    assert set(keep.tolist()) == set(range(n)) - masked
    assert (src[keep] == keep).all()


def test_mask_rate_zero_masks_nothing():
    m = sample_node_mask(100, 0.0, 0.1)
    assert m.mask_nodes.numel() == 0 and m.token_nodes.numel() == 0 and m.noise_nodes.numel() == 0
    assert (m.source(100) == torch.arange(100)).all()
    _check_partition(m, 100)


def test_replace_rate_zero_gives_only_tokens():
    m = sample_node_mask(100, 0.5, 0.0)
    assert m.mask_nodes.numel() == 50 and m.token_nodes.numel() == 50 and m.noise_nodes.numel() == 0
    _check_partition(m, 100)


def test_replace_rounding_to_zero_nodes_selects_none():
    # 0.05 * int(0.5 * 30) = 0.75 -> 0 noise nodes; the reference's perm[-0:] would pick all 15.
    m = sample_node_mask(30, 0.5, 0.05)
    assert m.mask_nodes.numel() == 15
    assert m.noise_nodes.numel() == 0
    assert m.token_nodes.numel() == 15
    _check_partition(m, 30)


def test_every_masked_node_is_token_or_noise():
    # int(0.95 * 1354) + int(0.05 * 1354) = 1353: the reference leaves one masked node untouched.
    m = sample_node_mask(2708, 0.5, 0.05)
    assert m.mask_nodes.numel() == 1354
    assert m.noise_nodes.numel() == 67 and m.token_nodes.numel() == 1287
    _check_partition(m, 2708)


def test_full_mask_and_full_replace():
    m = sample_node_mask(10, 1.0, 1.0)
    assert m.mask_nodes.numel() == 10 and m.noise_nodes.numel() == 10 and m.token_nodes.numel() == 0
    _check_partition(m, 10)


@pytest.mark.parametrize("mask_rate,replace_rate", [(-0.1, 0.0), (1.5, 0.0), (0.5, -1.0), (0.5, 2.0)])
def test_rates_out_of_range_are_errors(mask_rate, replace_rate):
    with pytest.raises(ValueError):
        sample_node_mask(10, mask_rate, replace_rate)
