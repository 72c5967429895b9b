"""Sparse convolution on spconv (CPU: Native algorithm) against dense conv3d."""

import pytest
import torch
import torch.nn.functional as F

from geossl.ops.sparse import SparseConv3d, SparseInputError, sparse_tensor


def _grid(batch=2, size=7, channels=3, density=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    occ = torch.rand(batch, size, size, size, generator=g) < density
    idx = occ.nonzero().int()  # not contiguous: the trap sparse_tensor guards against
    assert not idx.is_contiguous()
    feats = torch.randn(len(idx), channels, generator=g)
    return idx, feats


def _dense(idx, feats, batch, size):
    d = torch.zeros(batch, feats.shape[1], size, size, size)
    i = idx.long()
    d[i[:, 0], :, i[:, 1], i[:, 2], i[:, 3]] = feats
    return d


def _at(dense, idx):
    i = idx.long()
    return dense[i[:, 0], :, i[:, 1], i[:, 2], i[:, 3]]


@pytest.mark.parametrize("subm,stride", [(True, 1), (False, 2)])
def test_sparse_conv_equals_dense_conv3d_in_values_and_gradients(subm, stride):
    torch.manual_seed(0)
    idx, feats = _grid()
    feats.requires_grad_()
    conv = SparseConv3d(3, 5, 3, stride=stride, padding=1, subm=subm)
    out = conv(sparse_tensor(feats, idx, [7, 7, 7], 2))
    dense_feats = feats.detach().clone().requires_grad_()
    w = conv.weight.detach().clone().requires_grad_()
    ref = F.conv3d(_dense(idx, dense_feats, 2, 7), w.permute(0, 4, 1, 2, 3), stride=stride, padding=1)
    ref_at = _at(ref, out.indices)
    assert torch.allclose(out.features, ref_at, atol=1e-5)
    if not subm:  # a strided conv outputs exactly where the dense output can be non-zero
        occupied = F.max_pool3d(_dense(idx, torch.ones(len(idx), 1), 2, 7), 3, stride, 1)[:, 0] > 0
        assert len(out.indices) == int(occupied.sum())
    g = torch.randn_like(out.features)
    (out.features * g).sum().backward()
    (ref_at * g).sum().backward()
    assert torch.allclose(feats.grad, dense_feats.grad, atol=1e-5)
    assert torch.allclose(conv.weight.grad, w.grad, atol=1e-4)


def test_inverse_conv_restores_the_input_sites():
    idx, feats = _grid(batch=1, size=8)
    x = sparse_tensor(feats, idx, [8, 8, 8], 1)
    down = SparseConv3d(3, 4, 3, stride=2, padding=1, indice_key="down1")(x)
    up = SparseConv3d(4, 3, 3, inverse=True, indice_key="down1")(down)
    assert torch.equal(up.indices, x.indices) and up.features.shape == feats.shape


def test_bad_sparse_input_is_refused():
    idx, feats = _grid()
    with pytest.raises(SparseInputError, match="NaN"):
        sparse_tensor(feats * float("nan"), idx, [7, 7, 7], 2)
    with pytest.raises(SparseInputError, match="larger than the configured grid"):
        sparse_tensor(feats, idx, [5, 7, 7], 2)
    with pytest.raises(SparseInputError, match="batch indices"):
        sparse_tensor(feats, idx, [7, 7, 7], 1)
    with pytest.raises(SparseInputError, match=r"indices \[M, 4\]"):
        sparse_tensor(feats, idx[:, :3], [7, 7, 7], 2)
