import pytest
import torch

from geossl.errors import UnknownNameError
from geossl.graph.pooling import pool_nodes


def test_pooling_by_graph_index_on_known_rows():
    h = torch.tensor([[1.0, 2.0], [3.0, -4.0], [5.0, 6.0]])
    batch = torch.tensor([0, 0, 1])
    assert pool_nodes(h, batch, "sum").tolist() == [[4.0, -2.0], [5.0, 6.0]]
    assert pool_nodes(h, batch, "mean").tolist() == [[2.0, -1.0], [5.0, 6.0]]
    assert pool_nodes(h, batch, "max").tolist() == [[3.0, 2.0], [5.0, 6.0]]
    with pytest.raises(UnknownNameError, match="Valid choices: mean, max, sum"):
        pool_nodes(h, batch, "avg")
