"""The degree-corrected stochastic block model generator (geossl.graph.synthetic)."""

import pytest
import torch

from geossl.errors import ConfigError
from geossl.graph.synthetic import synthetic_graph


@pytest.fixture(scope="module")
def graph():
    return synthetic_graph(5000, num_classes=5, avg_degree=20, homophily=0.7, seed=3)


def test_sizes_labels_and_undirected_simple_edges(graph):
    n = 5000
    assert graph.num_nodes == n and graph.x.shape == (n, 500) and graph.y.shape == (n,)
    assert torch.bincount(graph.y, minlength=5).min() > 0.8 * n / 5  # uniform blocks
    src, dst = graph.edge_index
    assert (src != dst).all()  # no self-loops
    key = src * n + dst
    assert torch.equal(key, torch.unique(key))  # sorted, no duplicates
    assert torch.equal(torch.sort(dst * n + src).values, key)  # every edge has its reverse
    # about avg_degree per node (duplicates and self-loops removed) and a heavy tail
    degree = torch.bincount(src, minlength=n).float()
    assert 17 < degree.mean() < 20 and degree.max() > 8 * degree.mean()


def test_homophily_and_class_conditioned_features(graph):
    src, dst = graph.edge_index
    same = (graph.y[src] == graph.y[dst]).float().mean()
    assert abs(float(same) - (0.7 + 0.3 / 5)) < 0.03  # within-block draws plus the random ones that land in the block
    x = graph.x.to_dense()
    assert set(x.unique().tolist()) == {0.0, 1.0} and (x.sum(1) <= 20).all() and (x.sum(1) >= 1).all()
    centroids = torch.stack([x[graph.y == c].mean(0) for c in range(5)])
    assert ((x @ centroids.t()).argmax(1) == graph.y).float().mean() > 0.3  # words carry the class, above chance (0.2)


def test_the_same_seed_gives_the_same_graph():
    a, b, c = synthetic_graph(2000, seed=1), synthetic_graph(2000, seed=1), synthetic_graph(2000, seed=2)
    assert torch.equal(a.edge_index, b.edge_index) and torch.equal(a.x.col_indices(), b.x.col_indices()) and torch.equal(a.y, b.y)
    assert not torch.equal(a.y, c.y)


@pytest.mark.parametrize("kwargs", [{"num_nodes": 1}, {"num_nodes": 100, "homophily": 1.5}, {"num_nodes": 100, "degree_exponent": 1.0},
                                    {"num_nodes": 100, "topic_words": 600}, {"num_nodes": 100, "avg_degree": 0}])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ConfigError, match="Bad synthetic graph settings"):
        synthetic_graph(**kwargs)


def test_the_dataset_has_self_loops_sparse_features_and_disjoint_random_splits():
    from geossl.graph.synthetic import synthetic_graph_dataset

    ds = synthetic_graph_dataset(num_nodes=2000, num_classes=4, num_features=80, train_fraction=0.1, val_fraction=0.2,
                                 test_fraction=0.3, graph_seed=5)
    data = ds.data
    assert ds.task == "node" and ds.num_classes == 4 and ds.in_dim == 80 and data.x.layout == torch.sparse_csr
    assert torch.equal(data.x.to_dense(), synthetic_graph(2000, num_classes=4, num_features=80, seed=5).x.to_dense())
    loops = data.edge_index[0] == data.edge_index[1]
    assert torch.equal(torch.sort(data.edge_index[0, loops]).values, torch.arange(2000))  # one self-loop per node
    masks = torch.stack([data.train_mask, data.val_mask, data.test_mask]).long()
    assert masks.sum(1).tolist() == [200, 400, 600] and int(masks.sum(0).max()) == 1
    with pytest.raises(ConfigError, match="sum to at most 1"):
        synthetic_graph_dataset(num_nodes=100, train_fraction=0.6, val_fraction=0.3, test_fraction=0.3)


def test_a_graph_that_cannot_fit_is_refused_before_anything_is_allocated():
    """dataset.num_nodes=1e12 allocated before it was refused (issue 45); now the estimate names the keys."""
    import tracemalloc

    from geossl.errors import ConfigError

    tracemalloc.start()
    with pytest.raises(ConfigError, match="dataset.num_nodes=1000000000000 .* would take at least"):
        synthetic_graph(10**12)
    assert tracemalloc.get_traced_memory()[1] < 50 * 2**20
    tracemalloc.stop()
