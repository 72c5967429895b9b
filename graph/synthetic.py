"""Synthetic graphs for scaling measurements: a degree-corrected stochastic block model (Karrer and Newman,
"Stochastic blockmodels and community structure in networks", Phys. Rev. E 83, 2011) with class-conditioned
sparse bag-of-words features, so that accuracy on it means something (the labels are the blocks).

Generation is vectorised and takes memory in proportion to the edges and stored feature entries (a 3M-node
graph with 20 edges per node is built in one pass of sorting its 60M directed edges).
"""

from __future__ import annotations

import torch
from torch import Tensor

from geossl.errors import ConfigError
from geossl.graph.datasets import GraphDataset
from geossl.graph.encoders.inputs import csr_tensor
from geossl.registry import DATASETS


def _sample_by_weight(cumulative: Tensor, count: int, generator: torch.Generator) -> Tensor:
    """``count`` indices drawn with replacement in proportion to the weights whose running sum is ``cumulative``."""
    u = torch.rand(count, generator=generator, dtype=torch.float64) * cumulative[-1]
    return torch.searchsorted(cumulative, u, right=True).clamp_max(len(cumulative) - 1)


def synthetic_graph(num_nodes: int, num_classes: int = 10, avg_degree: float = 20.0, homophily: float = 0.7,
                    degree_exponent: float = 2.5, num_features: int = 500, words_per_node: int = 20,
                    topic_words: int = 50, topic_share: float = 0.1, seed: int = 0):
    """A PyG ``Data`` drawn from a degree-corrected stochastic block model.

    Every node gets a block (its label ``y``, uniform over ``num_classes``) and a degree propensity drawn from a
    Pareto law (exponent ``degree_exponent``: a few hubs, many low-degree nodes). ``num_nodes * avg_degree / 2``
    edges are drawn: one end in proportion to the propensities, the other, with probability ``homophily``, in
    proportion to the propensities within the first end's block, else among all nodes. Edges are made
    undirected, duplicates and self-loops dropped (``edge_index`` sorted by source, then target).

    Features are binary bags of words over ``num_features`` words: each block has its own ``topic_words`` words,
    and each node draws ``words_per_node`` words, each from its block's topic with probability ``topic_share``,
    else uniformly (repeats merge). ``x`` is a sparse CSR tensor ``[num_nodes, num_features]`` (float32 ones).

    The same arguments give the same graph on every machine (one seeded CPU generator). With the defaults the
    features alone say little and the neighbourhood much: on 20,000 nodes, nearest class centroid on a node's own
    words is right for 37% of held-out nodes (10 classes), on the mean of its neighbours' words for 87%.

    Args:
        num_nodes: nodes (at least ``num_classes``).
        num_classes: blocks, which are the class labels.
        avg_degree: expected undirected degree before duplicates are removed.
        homophily: probability that an edge's second end is drawn within the first end's block.
        degree_exponent: Pareto exponent of the degree propensities (> 1; smaller is more skewed).
        num_features: vocabulary size.
        words_per_node: words each node draws.
        topic_words: words in each block's topic.
        topic_share: probability that a drawn word comes from the node's topic.
        seed: the generator's seed.
    """
    if num_nodes < max(2, num_classes) or num_classes < 1 or avg_degree <= 0 or not 0 <= homophily <= 1 or degree_exponent <= 1 \
            or num_features < 1 or words_per_node < 1 or not 1 <= topic_words <= num_features or not 0 <= topic_share <= 1:
        raise ConfigError(
            f"Bad synthetic graph settings: num_nodes={num_nodes} >= max(2, num_classes={num_classes}), avg_degree={avg_degree} > 0, "
            f"0 <= homophily={homophily} <= 1, degree_exponent={degree_exponent} > 1, num_features={num_features} >= 1, "
            f"words_per_node={words_per_node} >= 1, 1 <= topic_words={topic_words} <= num_features, 0 <= topic_share={topic_share} <= 1.")
    from torch_geometric.data import Data

    from geossl.io import check_fits

    # at least: per node its label, propensity and cumulative sum; per drawn edge both ends twice (undirected) with
    # a sort key; per node word ids and values of its bag of words
    check_fits(40 * num_nodes + 64 * num_nodes * avg_degree / 2 + 16 * num_nodes * words_per_node,
               f"dataset.num_nodes={num_nodes} with dataset.avg_degree={avg_degree} and dataset.words_per_node={words_per_node}")
    g = torch.Generator().manual_seed(int(seed))
    n = int(num_nodes)
    y = torch.randint(0, num_classes, (n,), generator=g)
    theta = (1.0 - torch.rand(n, generator=g, dtype=torch.float64)).pow(-1.0 / (degree_exponent - 1.0))  # Pareto(x_m = 1)
    theta = theta.clamp_max(float(n) ** 0.5)  # no hub above sqrt(n) expected degree share

    # first ends over all nodes; second ends within the block (nodes ordered by block) or over all nodes
    m = int(round(n * avg_degree / 2))
    cumulative = theta.cumsum(0)
    src = _sample_by_weight(cumulative, m, g)
    order = torch.argsort(y, stable=True)
    block_cum = theta[order].cumsum(0)
    block_start = torch.searchsorted(y[order], torch.arange(num_classes), right=False)
    block_end = torch.searchsorted(y[order], torch.arange(num_classes), right=True)
    low = torch.where(block_start > 0, block_cum[(block_start - 1).clamp_min(0)], torch.zeros((), dtype=torch.float64))
    high = block_cum[(block_end - 1).clamp_min(0)]
    b = y[src]
    u = low[b] + torch.rand(m, generator=g, dtype=torch.float64) * (high[b] - low[b])
    within = order[torch.searchsorted(block_cum, u, right=True).clamp(min=block_start[b], max=block_end[b] - 1)]
    anywhere = _sample_by_weight(cumulative, m, g)
    dst = torch.where(torch.rand(m, generator=g) < homophily, within, anywhere)

    keep = src != dst
    src, dst = src[keep], dst[keep]
    key = torch.unique(torch.cat([src * n + dst, dst * n + src]))  # sorted: by source, then target
    edge_index = torch.stack([key // n, key % n])

    # class-conditioned bags of words
    topics = torch.stack([torch.randperm(num_features, generator=g)[:topic_words] for _ in range(num_classes)])
    rows = torch.arange(n).repeat_interleave(words_per_node)
    from_topic = torch.rand(n * words_per_node, generator=g) < topic_share
    topic_pick = topics[y[rows], torch.randint(0, topic_words, (n * words_per_node,), generator=g)]
    uniform_pick = torch.randint(0, num_features, (n * words_per_node,), generator=g)
    words = torch.unique(rows * num_features + torch.where(from_topic, topic_pick, uniform_pick))
    row, col = words // num_features, words % num_features
    crow = torch.zeros(n + 1, dtype=torch.long)
    crow[1:] = torch.bincount(row, minlength=n).cumsum(0)
    x = csr_tensor(crow, col, torch.ones(len(col)), (n, num_features))
    return Data(x=x, edge_index=edge_index, y=y, num_nodes=n)


@DATASETS.register("synthetic_graph", domain="graph",
                   about="generated: dataset=synthetic_graph dataset.num_nodes=<n> (docs/large_graphs.md)")
def synthetic_graph_dataset(num_nodes: int = 100_000, num_classes: int = 10, avg_degree: float = 20.0, homophily: float = 0.7,
                            degree_exponent: float = 2.5, num_features: int = 500, words_per_node: int = 20,
                            topic_words: int = 50, topic_share: float = 0.1, graph_seed: int = 0, train_fraction: float = 0.1,
                            val_fraction: float = 0.1, test_fraction: float = 0.2) -> GraphDataset:
    """``dataset=synthetic_graph``: a :func:`synthetic_graph` with one self-loop per node (as every graph geossl's
    encoders read), its binary bag-of-words features kept as a sparse CSR tensor, and random node splits.

    Args:
        num_nodes .. topic_share: as :func:`synthetic_graph`.
        graph_seed: the generator's seed (the graph; the run's ``seed`` is separate).
        train_fraction, val_fraction, test_fraction: shares of the nodes, drawn at random (by ``graph_seed``),
            in the linear probe's train, validation and test masks.
    """
    fractions = (train_fraction, val_fraction, test_fraction)
    if min(fractions) <= 0 or sum(fractions) > 1:
        raise ConfigError(f"dataset.train_fraction, val_fraction and test_fraction must be positive and sum to at most 1; "
                          f"got {fractions}.")
    data = synthetic_graph(num_nodes, num_classes, avg_degree, homophily, degree_exponent, num_features, words_per_node,
                           topic_words, topic_share, seed=graph_seed)
    n = data.num_nodes
    loops = torch.arange(n)
    data.edge_index = torch.cat([data.edge_index, torch.stack([loops, loops])], 1)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(int(graph_seed) + 1))
    bounds = [0, *torch.tensor(fractions).cumsum(0).mul(n).long().tolist()]
    for name, lo, hi in zip(("train_mask", "val_mask", "test_mask"), bounds[:-1], bounds[1:]):
        mask = torch.zeros(n, dtype=torch.bool)
        mask[order[lo:hi]] = True
        data[name] = mask
    return GraphDataset("synthetic_graph", "node", data, num_features, num_classes, f"generated (seed {graph_seed})")
