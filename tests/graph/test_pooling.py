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


def test_training_loader_shards_graphs_across_processes_and_reshuffles_per_epoch():
    from torch_geometric.data import Data

    from geossl.graph.datasets import GraphDataset
    from geossl.graph.adapter import graph_loader

    graphs = [Data(x=torch.full((2, 1), float(i)), edge_index=torch.tensor([[0, 1], [1, 0]]), y=torch.tensor([i % 2])) for i in range(10)]
    ds = GraphDataset("toy", "graph", graphs, 1, 2, "memory")

    def seen(loader):
        return [int(v) for b in loader for v in b.x[::2, 0]]

    ranks = [graph_loader(ds, 3, True, world_size=2, rank=r, seed=0) for r in (0, 1)]
    for loader in ranks:
        loader.sampler.set_epoch(0)
    shards = [seen(loader) for loader in ranks]
    assert sorted(shards[0] + shards[1]) == list(range(10)) and len(shards[0]) == 5  # disjoint halves
    single = graph_loader(ds, 3, True, seed=0)
    single.sampler.set_epoch(0)
    first = seen(single)
    single.sampler.set_epoch(1)
    assert sorted(first) == list(range(10)) and seen(single) != first  # a new order every epoch ...
    single.sampler.set_epoch(0)
    assert seen(single) == first  # ... that a resumed run repeats
