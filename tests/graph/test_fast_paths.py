"""The fast CPU paths of the GAT/GraphMAE stack equal their plain dense definitions."""

import pytest
import torch
import torch.nn.functional as F
from torch_geometric.data import Data
from torch_geometric.utils import softmax

from geossl.graph.encoders import GAT, CSRRows, MaskedFeatures, project_features
from geossl.graph.encoders.aggregate import edge_aggregate
from geossl.graph.losses import scaled_cosine_error


def _graph(n=30, e=90, seed=0):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(0, n, (e,), generator=g)
    dst = torch.randint(0, n, (e,), generator=g)
    loops = torch.arange(n)
    return torch.stack([torch.cat([src, loops]), torch.cat([dst, loops])])


def _sparse_features(n=30, f=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, f, generator=g) < 0.1).double() * torch.rand(n, f, generator=g, dtype=torch.float64)
    return x


def test_edge_aggregate_matches_gather_scatter_with_gradients():
    ei = _graph()
    src, dst = ei
    for heads in (1, 3):
        alpha = torch.rand(src.numel(), heads, dtype=torch.float64, requires_grad=True)
        x = torch.randn(30, heads, 7, dtype=torch.float64, requires_grad=True)
        out = edge_aggregate(alpha, x, src, dst, 30)
        ref = torch.zeros(30, heads, 7, dtype=torch.float64).index_add(0, dst, x[src] * alpha.unsqueeze(-1))
        torch.testing.assert_close(out, ref)
        g = torch.randn_like(out)
        ga, gx = torch.autograd.grad(out, (alpha, x), g)
        ra, rx = torch.autograd.grad(ref, (alpha, x), g)
        torch.testing.assert_close(ga, ra)
        torch.testing.assert_close(gx, rx)
    assert torch.autograd.gradcheck(lambda a, v: edge_aggregate(a, v, src, dst, 30),
                                    (torch.rand(src.numel(), 2, dtype=torch.float64, requires_grad=True),
                                     torch.randn(30, 2, 3, dtype=torch.float64, requires_grad=True)))


def test_masked_features_projection_equals_dense_without_dropout():
    x = _sparse_features()
    token = torch.randn(1, 50, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(16, 50, dtype=torch.float64, requires_grad=True)
    source = torch.arange(30)
    token_index = torch.tensor([1, 4, 9])
    source[token_index] = -1
    source[torch.tensor([2, 3])] = torch.tensor([20, 21])  # two noise nodes
    feats = MaskedFeatures(CSRRows.from_dense(x), source, token, token_index)
    dense = feats.to_dense()
    expected = x[source.clamp(min=0)] * (source >= 0)[:, None]
    expected[token_index] += token.detach()
    torch.testing.assert_close(dense, expected)
    out = project_features(feats, weight)
    ref = dense @ weight.t()
    torch.testing.assert_close(out, ref)
    g = torch.randn_like(out)
    assert all(torch.allclose(a, b) for a, b in zip(torch.autograd.grad(out, (token, weight), g),
                                                     torch.autograd.grad(ref, (token, weight), g)))


def test_masked_features_projection_with_dropout_equals_dense_with_same_mask():
    torch.manual_seed(3)
    x = _sparse_features()
    token = torch.randn(1, 50, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(16, 50, dtype=torch.float64, requires_grad=True)
    source = torch.arange(30)
    token_index = torch.tensor([0, 5, 6, 7])
    source[token_index] = -1
    feats = MaskedFeatures(CSRRows.from_dense(x), source, token, token_index)
    # Gradient of the token-row product against autograd through the dense masked product.
    from geossl.graph.encoders.inputs import _TokenRowsLinear
    from geossl.ops import dropout_mask

    keep = dropout_mask((4, 50), 0.3, dtype=torch.float64)
    fast = _TokenRowsLinear.apply(token, weight.t(), keep)
    slow = (keep * token) @ weight.t()
    torch.testing.assert_close(fast, slow)
    g = torch.randn_like(fast)
    for a, b in zip(torch.autograd.grad(fast, (token, weight), g), torch.autograd.grad(slow, (token, weight), g)):
        torch.testing.assert_close(a, b)
    # With dropout, every row is either a dropped-out copy of its dense row or of the token.
    out = project_features(feats, weight, dropout=0.5, training=True)
    assert out.shape == (30, 16) and torch.isfinite(out).all()


def test_dropout_mask_rate_and_scale():
    from geossl.ops import dropout_mask

    torch.manual_seed(0)
    m = dropout_mask((400, 500), 0.2)
    kept = (m > 0).float().mean().item()
    assert abs(kept - 0.8) < 0.005
    assert torch.allclose(m[m > 0], torch.full_like(m[m > 0], 65536 / (65536 - round(0.2 * 65536))))
    assert abs(m.mean().item() - 1.0) < 0.01


def _reference_gat_layer(layer, x, edge_index):
    """GAT written the textbook way: project, per-edge gather, softmax, scatter."""
    n = x.shape[0]
    h = (x @ layer.fc.weight.t()).view(n, layer.heads, layer.out_dim)
    el = (h * layer.attn_l).sum(-1)
    er = (h * layer.attn_r).sum(-1)
    src, dst = edge_index
    a = softmax(F.leaky_relu(el[src] + er[dst], layer.negative_slope), dst, num_nodes=n)
    out = torch.zeros_like(h).index_add(0, dst, h[src] * a.unsqueeze(-1)).flatten(1) + layer.bias
    return layer.act(out)


def test_gat_layers_equal_textbook_gat_in_both_orders():
    torch.manual_seed(0)
    ei = _graph()
    x = torch.randn(30, 12, dtype=torch.float64)
    for in_dim, hidden, heads in ((12, 8, 2), (12, 40, 1), (12, 40, 2)):  # project-first, aggregate-first
        gat = GAT(in_dim, hidden=hidden, layers=1, heads=heads, feat_drop=0.0, attn_drop=0.0).double().eval()
        layer = gat.layers[0]
        d = Data(x=x, edge_index=ei)
        torch.testing.assert_close(gat(d), _reference_gat_layer(layer, x, ei))
        nodes = torch.tensor([3, 0, 17])
        torch.testing.assert_close(gat(d, output_nodes=nodes), _reference_gat_layer(layer, x, ei)[nodes])


def test_sce_sparse_target_equals_dense():
    torch.manual_seed(0)
    pred = torch.randn(10, 50, dtype=torch.float64, requires_grad=True)
    target = _sparse_features(10, 50)
    target[0, 0] = 1.0  # no empty row in the dense check
    dense = scaled_cosine_error(pred, target, alpha=2.0)
    sparse = scaled_cosine_error(pred, CSRRows.from_dense(target), alpha=2.0)
    torch.testing.assert_close(dense, sparse)
    torch.testing.assert_close(torch.autograd.grad(dense, pred)[0], torch.autograd.grad(sparse, pred)[0])


def test_graphmae_runs_with_every_encoder_and_decoder():
    from geossl.graph.encoders import GCN, GIN
    from geossl.graph.methods import GraphMAE

    d = Data(x=_sparse_features().float(), edge_index=_graph())
    for enc, dec in ((GAT(50, hidden=16, heads=2), "gat"), (GCN(50, hidden=16), "gcn"), (GIN(50, hidden=16), "gin"),
                     (GIN(50, hidden=16), "gat")):
        method = GraphMAE(enc, in_dim=50, mask_rate=0.5, replace_rate=0.2, alpha=2.0, decoder=dec)
        losses = method(d)
        losses["loss"].backward()
        assert torch.isfinite(losses["loss"]) and method.mask_token.grad is not None
        assert method.embed(d).shape == (30, 16)


def test_gin_sparse_neighbour_sums_equal_pyg_edge_list_messages():
    """GIN aggregates with one CSR product; PyG's gather/scatter over the edge list is the oracle."""
    from torch_geometric.nn import GINConv

    from geossl.graph.encoders.gin import gin_layer, neighbour_sum_matrix

    g = torch.Generator().manual_seed(0)
    n = 30
    edge_index = torch.randint(0, n, (2, 120), generator=g)  # duplicates and self-loops included
    x = torch.randn(n, 8, generator=g, dtype=torch.float64, requires_grad=True)
    conv = GINConv(torch.nn.Linear(8, 4).double())
    adj_t = neighbour_sum_matrix(edge_index, n, torch.float64)
    ref = conv(x, edge_index)
    out = gin_layer(conv, x, adj_t)
    assert torch.allclose(out, ref)
    (gx_ref,) = torch.autograd.grad(ref.pow(2).sum(), x)
    (gx,) = torch.autograd.grad(out.pow(2).sum(), x)
    assert torch.allclose(gx, gx_ref)
    # under bf16 autocast the sum stays float32 and the MLP runs in bf16
    conv32 = GINConv(torch.nn.Linear(8, 4))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = gin_layer(conv32, x.detach().float(), neighbour_sum_matrix(edge_index, n))
    assert low.dtype == torch.bfloat16
    assert torch.allclose(low.float(), conv32(x.detach().float(), edge_index), atol=0.1, rtol=0.05)


def test_gcn_sparse_input_layer_equals_pyg_gcnconv():
    """The first GCN layer on CSR rows equals PyG's GCNConv on the dense features (eval mode),
    with the same gradients for the weights."""
    from geossl.graph.encoders import GCN

    g = torch.Generator().manual_seed(0)
    n, f = 40, 30
    x = (torch.rand(n, f, generator=g) < 0.05).float() * torch.rand(n, f, generator=g)
    edge_index = torch.randint(0, n, (2, 150), generator=g)
    data = Data(x=x, edge_index=edge_index)
    enc = GCN(in_dim=f, hidden=8, layers=2, dropout=0.5).eval()
    conv = enc.convs[0]
    fast = enc._sparse_input_layer(conv, x, edge_index)
    ref = conv(x, edge_index)
    assert torch.allclose(fast, ref, atol=1e-6)
    (g_fast,) = torch.autograd.grad(fast.pow(2).sum(), conv.lin.weight)
    (g_ref,) = torch.autograd.grad(ref.pow(2).sum(), conv.lin.weight)
    assert torch.allclose(g_fast, g_ref, atol=1e-5)
    # the whole encoder takes the sparse path for sparse inputs and gives the dense answer
    dense_out = torch.relu(enc.convs[1](torch.relu(ref), edge_index))
    assert torch.allclose(enc(data), dense_out, atol=1e-5)


def test_graphmae_feature_cache_follows_the_tensor_not_its_address():
    """A new mini-batch can live in the storage a freed one used (same address, shape and version
    counter); the cached CSR features must still be the new batch's."""
    import numpy as np

    from geossl.graph.encoders import GIN
    from geossl.graph.methods import GraphMAE

    method = GraphMAE(GIN(4, hidden=8), in_dim=4, decoder="gin")
    buffer = np.zeros((3, 4), dtype=np.float32)
    buffer[0, 1] = 1.0
    first = torch.from_numpy(buffer)
    torch.testing.assert_close(method._sparse_features(first).gather_rows(torch.arange(3)).to_dense(), first.clone())
    buffer[:] = 0.0
    buffer[2, 3] = 5.0  # written through numpy: same storage, same version, new contents
    second = torch.from_numpy(buffer)
    assert second.data_ptr() == first.data_ptr() and second._version == first._version
    torch.testing.assert_close(method._sparse_features(second).gather_rows(torch.arange(3)).to_dense(), second.clone())


def test_gcn_row_cache_follows_the_tensor_not_its_address():
    """As for GraphMAE's cache: features written into the storage of earlier ones (same address,
    shape and version counter) must not be served the earlier features' CSR rows."""
    import numpy as np

    from geossl.graph.encoders import GCN

    enc = GCN(4, hidden=8, layers=1)
    buffer = np.zeros((3, 4), dtype=np.float32)
    buffer[0, 1] = 1.0
    first = torch.from_numpy(buffer)
    torch.testing.assert_close(enc._rows_cache(first, density=1.0).to_dense(), first.clone())
    buffer[:] = 0.0
    buffer[2, 3] = 5.0  # written through numpy: same storage, same version, new contents
    second = torch.from_numpy(buffer)
    assert second.data_ptr() == first.data_ptr() and second._version == first._version
    torch.testing.assert_close(enc._rows_cache(second, density=1.0).to_dense(), second.clone())


def test_tensor_memo_keeps_two_inputs_and_follows_in_place_writes():
    """Training and validation alternate two feature tensors (SelfTask's attribute_mask: the
    corrupted copy, then the clean one); each is built once, not once per switch."""
    from geossl.graph.encoders.inputs import TensorMemo

    memo, built = TensorMemo(), []

    def build(t):
        built.append(t)
        return t.sum().item()

    a, b, c = torch.ones(3), torch.full((3,), 2.0), torch.full((3,), 3.0)
    for _ in range(3):
        assert memo.get(a, build) == 3.0 and memo.get(b, build) == 6.0
    assert len(built) == 2
    a.add_(1.0)  # an in-place write: a new version of a, rebuilt
    assert memo.get(a, build) == 6.0 and len(built) == 3
    assert memo.get(b, build) == 6.0 and len(built) == 3  # b is still held
    assert memo.get(c, build) == 9.0 and len(built) == 4  # c evicts a, the least recently used
    assert memo.get(b, build) == 6.0 and len(built) == 4
    assert memo.get(a, build) == 6.0 and len(built) == 5
    assert memo.get(a, build, key="other") == 6.0 and len(built) == 6  # another key is another entry
    with pytest.raises(ValueError, match="at least 1"):
        TensorMemo(size=0)


def test_gcn_builds_the_rows_of_alternating_inputs_once(monkeypatch):
    """A GCN fed a corrupted copy of the features in training and the clean ones in evaluation
    converts each to CSR rows once over several epochs."""
    from geossl.graph.encoders import GCN, inputs

    calls = []
    real = inputs.CSRRows.from_dense.__func__
    monkeypatch.setattr(inputs.CSRRows, "from_dense", classmethod(lambda cls, x: calls.append(x) or real(cls, x)))
    x = (torch.rand(20, 30, generator=torch.Generator().manual_seed(0)) > 0.95).float()
    corrupted = x.index_fill(0, torch.tensor([1, 2, 3]), 0.0)
    data = Data(x=x, edge_index=torch.arange(20).repeat(2, 1))
    enc = GCN(30, hidden=8, layers=2)
    for _ in range(4):
        enc.train()
        enc(data, corrupted)
        enc.eval()
        enc(data)
    assert len(calls) == 2
