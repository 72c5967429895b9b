"""Subgraph samplers (geossl.graph.sampling) against the graphs they sample."""

import pytest
import torch

from geossl.errors import ConfigError
from geossl.graph.sampling import CSR, induced_subgraph, local_cluster, local_clusters, sample_neighbours
from geossl.graph.synthetic import synthetic_graph


@pytest.fixture(scope="module")
def graph():
    return synthetic_graph(3000, num_classes=4, avg_degree=12, seed=0)


def _hops(edge_index, seeds, layers, n):
    """Every node within ``layers`` in-edges of ``seeds`` (breadth-first, dense)."""
    reached = torch.zeros(n, dtype=torch.bool)
    reached[seeds] = True
    frontier = reached.clone()
    for _ in range(layers):
        nxt = torch.zeros(n, dtype=torch.bool)
        nxt[edge_index[0][frontier[edge_index[1]]]] = True
        frontier = nxt & ~reached
        reached |= nxt
    return reached


def test_all_neighbours_when_the_fanout_exceeds_every_degree(graph):
    csr = CSR.from_edge_index(graph.edge_index, graph.num_nodes)
    seeds = torch.tensor([5, 17, 2000])
    nodes = sample_neighbours(csr, seeds, [10_000, 10_000], torch.Generator().manual_seed(0))
    assert torch.equal(nodes[:3], seeds) and len(torch.unique(nodes)) == len(nodes)
    expected = _hops(graph.edge_index, seeds, 2, graph.num_nodes)
    assert torch.equal(torch.sort(nodes).values, expected.nonzero().flatten())


def test_each_node_keeps_at_most_fanout_real_neighbours_drawn_uniformly(graph):
    n = graph.num_nodes
    csr = CSR.from_edge_index(graph.edge_index, n)
    hub = int(torch.bincount(graph.edge_index[1], minlength=n).argmax())
    neighbours = set(graph.edge_index[0][graph.edge_index[1] == hub].tolist())
    counts = torch.zeros(n)
    g = torch.Generator().manual_seed(1)
    for _ in range(400):
        nodes = sample_neighbours(csr, torch.tensor([hub]), [5], g)
        assert len(nodes) == 6 and set(nodes[1:].tolist()) <= neighbours
        counts[nodes[1:]] += 1
    picked = counts[list(neighbours)]
    expected = 400 * 5 / len(neighbours)
    assert picked.min() > 0 and (picked - expected).abs().max() < 5 * expected ** 0.5  # uniform without replacement
    a = sample_neighbours(csr, torch.tensor([1, 2]), [3, 2], torch.Generator().manual_seed(7))
    b = sample_neighbours(csr, torch.tensor([1, 2]), [3, 2], torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


def test_induced_subgraph_relabels_the_edges_among_the_nodes():
    edge_index = torch.tensor([[0, 1, 2, 3, 4], [1, 2, 3, 4, 0]])
    sub = induced_subgraph(CSR.from_edge_index(edge_index, 5), torch.tensor([3, 2, 1]))
    assert sub.tolist() == [[1, 2], [0, 1]]  # 2->3 and 1->2 in the new numbering (3 is 0, 2 is 1, 1 is 2), by target


def test_local_cluster_stays_in_the_seeds_community_and_ranks_by_pagerank():
    # two 8-cliques joined by one edge: the cluster of a node in the first is the first clique
    a = [(i, j) for i in range(8) for j in range(8) if i != j]
    b = [(i + 8, j + 8) for i, j in a]
    edges = torch.tensor(a + b + [(7, 8), (8, 7)]).t()
    csr = CSR.from_edge_index(edges, 16)
    cluster = local_cluster(csr, 2, size=8, epsilon=1e-6)
    assert cluster[0] == 2 and set(cluster.tolist()) == set(range(8))
    # on a random graph the ranking equals the exact personalised PageRank's (power iteration)
    g = synthetic_graph(300, num_classes=3, avg_degree=6, seed=1)
    csr = CSR.from_edge_index(g.edge_index, 300)
    deg = torch.bincount(g.edge_index[1], minlength=300).double().clamp_min(1)
    p, e = torch.zeros(300, dtype=torch.float64), torch.zeros(300, dtype=torch.float64)
    e[0] = 1
    for _ in range(300):
        p = 0.15 * e + 0.85 * torch.zeros(300, dtype=torch.float64).index_add(0, g.edge_index[1], (p / deg)[g.edge_index[0]])
    top = torch.argsort(p, descending=True)[:10]
    cluster = local_cluster(csr, 0, size=10, epsilon=1e-5)
    assert cluster[0] == 0 and cluster.tolist() == top.tolist()


@pytest.mark.parametrize("fanouts", [[0], [5, -1], []])
def test_bad_fanouts_and_seeds_are_refused(graph, fanouts):
    csr = CSR.from_edge_index(graph.edge_index, graph.num_nodes)
    with pytest.raises(ConfigError, match="fan-outs must be positive"):
        sample_neighbours(csr, torch.tensor([0]), fanouts, torch.Generator())
    with pytest.raises(ConfigError, match="Seed nodes"):
        sample_neighbours(csr, torch.tensor([graph.num_nodes]), [2], torch.Generator())
    with pytest.raises(ConfigError, match="Bad local clustering"):
        local_cluster(csr, 0, size=0)


def _one_seed_pagerank_cluster(csr, seed, size, alpha, epsilon):
    """The definition, one seed at a time over dense [N] residual and score vectors (the oracle)."""
    n = csr.num_nodes
    degree = (csr.crow[1:] - csr.crow[:-1]).double().clamp_min(1)
    score, residual = torch.zeros(n, dtype=torch.float64), torch.zeros(n, dtype=torch.float64)
    residual[seed] = 1.0
    while True:
        frontier = (residual >= epsilon * degree).nonzero().flatten()
        if not len(frontier):
            break
        r = residual[frontier].clone()
        score[frontier] += alpha * r
        residual[frontier] = 0.0
        for node, value in zip(frontier.tolist(), r.tolist()):
            neighbours = csr.col[csr.crow[node]:csr.crow[node + 1]]
            residual.index_add_(0, neighbours, torch.full((len(neighbours),), (1 - alpha) * value / float(degree[node]), dtype=torch.float64))
    score[seed] = 0.0
    have = score.nonzero().flatten()
    return torch.cat([torch.tensor([seed]), have[torch.argsort(score[have], descending=True, stable=True)][: size - 1]])


def test_batched_local_clusters_equal_the_one_seed_definition():
    g = synthetic_graph(400, num_classes=4, avg_degree=5, seed=2)
    csr = CSR.from_edge_index(g.edge_index, 400)
    seeds = torch.tensor([5, 0, 399, 5, 123])  # a repeated seed gets its cluster twice
    got = local_clusters(csr, seeds, size=12, alpha=0.2, epsilon=1e-3)
    expected = torch.cat([_one_seed_pagerank_cluster(csr, int(s), 12, 0.2, 1e-3) for s in seeds])
    assert torch.equal(got, expected)
    assert len(local_clusters(csr, torch.tensor([7]), size=1)) == 1
