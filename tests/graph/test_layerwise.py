"""Layer-wise full-graph inference (geossl.graph.layerwise): equal to the whole-graph forward pass."""

import pytest
import torch

from geossl.errors import ConfigError
from geossl.graph.encoders.gat import GAT
from geossl.graph.encoders.gcn import GCN
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


def test_layerwise_refuses_encoders_it_is_not_built_for_and_bad_chunks(graph):
    with pytest.raises(ConfigError, match="built for the encoders gat"):
        embed_layerwise(GCN(60), graph)
    with pytest.raises(ConfigError, match="chunk_nodes >= 1"):
        embed_layerwise(GAT(60, hidden=8, heads=2), graph, 0)
