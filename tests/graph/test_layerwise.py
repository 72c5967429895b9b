"""Layer-wise full-graph inference (geossl.graph.layerwise): equal to the whole-graph forward pass."""

import pytest
import torch

from geossl.errors import ConfigError
from geossl.graph.encoders.gat import GAT
from geossl.graph.encoders.gcn import GCN
from geossl.graph.encoders.gin import GIN
from geossl.graph.layerwise import embed_layerwise
from geossl.graph.synthetic import synthetic_graph_dataset


@pytest.fixture(scope="module")
def graph():
    return synthetic_graph_dataset(num_nodes=1500, num_classes=4, num_features=60).data


@pytest.mark.parametrize("options", [{}, {"residual": True, "norm": "batchnorm"}, {"residual": True, "norm": "layernorm", "heads": 1}])
@pytest.mark.parametrize("chunk", [1, 37, 5000])
def test_layerwise_equals_the_whole_graph_forward_pass(graph, options, chunk):
    torch.manual_seed(0)
    encoder = GAT(60, hidden=32, layers=3, **{"heads": 4, **options})
    encoder.train()  # embed_layerwise uses eval mode and restores the mode
    if chunk == 1:  # one node per chunk: a smaller graph
        graph = synthetic_graph_dataset(num_nodes=150, num_classes=4, num_features=60).data
    z = embed_layerwise(encoder, graph, chunk)
    assert encoder.training
    encoder.eval()
    with torch.no_grad():
        whole = encoder(graph)
        dense = graph.clone()
        dense.x = graph.x.to_dense()
        whole_dense = encoder(dense)
    assert z.shape == (graph.num_nodes, 32)
    assert torch.allclose(z, whole, atol=1e-5) and torch.allclose(z, whole_dense, atol=1e-5)


def _dense_graph(graph):
    dense = graph.clone()
    dense.x = graph.x.to_dense()
    return dense


@pytest.mark.parametrize("make", [lambda: GCN(60, hidden=32, layers=3, norm="batchnorm", dropout=0.2),
                                  lambda: GCN(60, hidden=32, layers=2, last_activation=False),
                                  lambda: GIN(60, hidden=32, layers=3, train_eps=True)])
@pytest.mark.parametrize("chunk", [37, 5000])
def test_layerwise_gcn_and_gin_equal_their_whole_graph_forward_pass(graph, make, chunk):
    torch.manual_seed(0)
    encoder = make()
    dense = _dense_graph(graph)
    with torch.no_grad():
        encoder(dense)  # batch-norm running statistics away from their initial values
        for conv in getattr(encoder, "convs", []):
            if getattr(conv, "eps", None) is not None and isinstance(conv.eps, torch.nn.Parameter):
                conv.eps.fill_(0.3)
    z_sparse = embed_layerwise(encoder, graph, chunk)
    z_dense = embed_layerwise(encoder, dense, chunk)
    assert encoder.training
    encoder.eval()
    with torch.no_grad():
        whole = encoder(dense)
    assert z_sparse.shape == whole.shape == (graph.num_nodes, 32)
    assert torch.allclose(z_dense, whole, atol=1e-4) and torch.allclose(z_sparse, whole, atol=1e-4)


def test_layerwise_gcn_keeps_the_raw_self_loop_weights(graph):
    """A graph with ``self_loop_weight`` (Kipf and Welling's A + I with raw loops weighing 2) normalises the same."""
    dense = _dense_graph(graph)
    dense.self_loop_weight = 1.0 + (torch.arange(graph.num_nodes) % 3 == 0).float()
    encoder = GCN(60, hidden=16, layers=2).eval()
    with torch.no_grad():
        assert torch.allclose(embed_layerwise(encoder, dense, 100), encoder(dense), atol=1e-5)


def test_layerwise_refuses_encoders_it_is_not_built_for_and_bad_chunks(graph):
    with pytest.raises(ConfigError, match="built for the encoders gat, gcn, gin"):
        embed_layerwise(torch.nn.Linear(60, 8), graph)
    with pytest.raises(ConfigError, match="chunk_nodes >= 1"):
        embed_layerwise(GAT(60, hidden=8, heads=2), graph, 0)
