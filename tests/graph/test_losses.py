import math

import torch

from geossl.graph.losses import scaled_cosine_error


def test_sce_hand_computed():
    pred = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    target = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    # cosines: 1, 1/sqrt(2), 0  ->  (1 - cos)^alpha
    c = 1 / math.sqrt(2)
    assert torch.isclose(scaled_cosine_error(pred, target, alpha=1.0), torch.tensor((0 + (1 - c) + 1) / 3))
    assert torch.isclose(scaled_cosine_error(pred, target, alpha=3.0), torch.tensor((0 + (1 - c) ** 3 + 1) / 3))


def test_sce_opposite_vectors_and_scale_invariance():
    pred = torch.tensor([[-2.0, 0.0]])
    target = torch.tensor([[5.0, 0.0]])
    assert torch.isclose(scaled_cosine_error(pred, target, alpha=2.0), torch.tensor(4.0))
    assert torch.isclose(scaled_cosine_error(3 * pred, target, alpha=2.0), torch.tensor(4.0))


def test_sce_zero_row_counts_as_cosine_zero():
    pred = torch.zeros(1, 3)
    target = torch.ones(1, 3)
    assert torch.isclose(scaled_cosine_error(pred, target, alpha=2.0), torch.tensor(1.0))


def test_sce_shape_mismatch_is_an_error():
    try:
        scaled_cosine_error(torch.ones(2, 3), torch.ones(3, 3))
    except ValueError as exc:
        assert "same shape" in str(exc)
    else:
        raise AssertionError("expected ValueError")
