"""SelfTask's pretext tasks (Jin et al., "Self-supervised Learning on Graphs: Deep Insights and
New Direction", 2020; reference code ChandlerBang/SelfTask-GNN).

Each task has one job: build its targets from the graph once, at construction (deterministic
for a seed), then score node embeddings against them with its own small head. A task may also
hide part of the input (``corrupt``: masked edges or masked features) from the encoder.
Label-informed tasks are given the training labels only.
"""

from __future__ import annotations

import abc
import copy
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geossl.graph.encoders.inputs import TensorMemo
from geossl.graph.selftask import graph_targets as gt
from geossl.registry import Registry

#: Pretext tasks by name (``graph.task=<name>``; several joined with "+").
PRETEXT_TASKS = Registry("pretext task")


def _rng(seed: int, salt: int) -> np.random.Generator:
    return np.random.default_rng([seed, salt])


def _pair_features(h: Tensor, pairs: Tensor) -> Tensor:
    """``|h_i - h_j|`` for each pair (the reference's pair representation)."""
    return (h[pairs[0]] - h[pairs[1]]).abs()


class PretextTask(nn.Module, abc.ABC):
    """Base class: ``corrupt(data)`` gives the graph the encoder sees, ``loss(h, data)`` the error.

    Args:
        data: the PyG graph (``x``, ``edge_index``, ``y``, split masks).
        embed_dim: width of the embeddings the head reads.
        seed: seed of every random choice made while building targets.
    """

    #: Whether the head reads the embedding after the dropout that precedes the classifier (as
    #: the reference does for every task but the context-label ones: ``myforward(layer=1.5)`` in
    #: its train_ssl.py) rather than the embedding itself (``layer=1``).
    reads_dropped_embedding = True

    def __init__(self, data, embed_dim: int, seed: int = 0):
        super().__init__()
        self.num_nodes = data.num_nodes
        self.adj = gt.adjacency(data.edge_index, data.num_nodes)

    def corrupt(self, data):
        return data

    @abc.abstractmethod
    def loss(self, h: Tensor, data) -> Tensor:
        """The task's error for embeddings ``h`` of the graph ``data`` the encoder saw."""


@PRETEXT_TASKS.register("node_property")
class NodeProperty(PretextTask):
    """Classify every node's degree class (cross-entropy).

    Args:
        thresholds: degree class = how many of these the degree exceeds; the default is the
            reference's (<= 2, 3-7, > 7), not quantiles (most Cora and CiteSeer nodes have
            degree 1-3, so quantile cuts fall on ties).
    """

    def __init__(self, data, embed_dim: int, seed: int = 0, thresholds: Sequence[float] = (2, 7)):
        super().__init__(data, embed_dim, seed)
        self.register_buffer("target", gt.degree_classes(self.adj, thresholds))
        self.head = nn.Linear(embed_dim, len(thresholds) + 1)

    def loss(self, h: Tensor, data) -> Tensor:
        return F.cross_entropy(self.head(h), self.target)


@PRETEXT_TASKS.register("edge_mask")
class EdgeMask(PretextTask):
    """Hide ``rate`` of the edges from the encoder and classify them against as many sampled
    non-edges from ``|h_i - h_j|`` (cross-entropy). The hidden edges are chosen once."""

    def __init__(self, data, embed_dim: int, seed: int = 0, rate: float = 0.1):
        super().__init__(data, embed_dim, seed)
        rng = _rng(seed, 1)
        upper = np.stack(self.adj.nonzero())
        upper = upper[:, upper[0] < upper[1]]
        hidden = upper[:, rng.permutation(upper.shape[1])[: max(1, int(rate * upper.shape[1]))]]
        n, negatives = self.num_nodes, []
        while sum(x.shape[1] for x in negatives) < hidden.shape[1]:
            cand = rng.integers(0, n, size=(2, 2 * hidden.shape[1]))
            cand = cand[:, (cand[0] != cand[1]) & (np.asarray(self.adj[cand[0], cand[1]]).ravel() == 0)]
            negatives.append(cand)
        neg = np.concatenate(negatives, axis=1)[:, : hidden.shape[1]]
        self.register_buffer("pairs", torch.from_numpy(np.concatenate([hidden, neg], axis=1)).long())
        self.register_buffer("target", torch.cat([torch.ones(hidden.shape[1]), torch.zeros(neg.shape[1])]).long())
        hidden_ids = set(map(tuple, hidden.T.tolist())) | set(map(tuple, hidden[::-1].T.tolist()))
        ei = data.edge_index.cpu()
        keep = torch.tensor([(int(a), int(b)) not in hidden_ids for a, b in ei.T.tolist()], dtype=torch.bool)
        self.register_buffer("visible_edges", ei[:, keep])
        self.head = nn.Linear(embed_dim, 2)

    def corrupt(self, data):
        """``data`` without the hidden edges (a shallow copy: the features stay the same tensor)."""
        out = copy.copy(data)
        out.edge_index = self.visible_edges
        return out

    def loss(self, h: Tensor, data) -> Tensor:
        return F.cross_entropy(self.head(_pair_features(h, self.pairs)), self.target)


@PRETEXT_TASKS.register("pairwise_distance")
class PairwiseDistance(PretextTask):
    """Classify the hop distance of node pairs into {1, 2, 3, >=4} from ``|h_i - h_j|``
    (cross-entropy). Distances come from breadth-first searches cut at 3 hops from ``anchors``
    sampled nodes; each step draws ``pairs_per_class`` pairs of every class."""

    def __init__(self, data, embed_dim: int, seed: int = 0, anchors: int = 512, pairs_per_class: int = 256):
        super().__init__(data, embed_dim, seed)
        rng = _rng(seed, 2)
        src = np.sort(rng.permutation(self.num_nodes)[: min(anchors, self.num_nodes)])
        dist = gt.hop_distances(self.adj, src, limit=3)
        cls = np.where(np.isinf(dist), 3, np.clip(dist, 1, 4) - 1).astype(np.int64)
        cls[np.arange(len(src)), src] = -1  # a node and itself is no pair
        self.register_buffer("anchors", torch.from_numpy(src).long())
        self.by_class = [torch.from_numpy(np.flatnonzero(cls == c).astype(np.int64)) for c in range(4)]
        self.pairs_per_class = pairs_per_class
        self.head = nn.Linear(embed_dim, 4)

    def loss(self, h: Tensor, data) -> Tensor:
        pairs, target = [], []
        for c, flat in enumerate(self.by_class):
            if len(flat) == 0:
                continue
            pick = flat[torch.randint(len(flat), (self.pairs_per_class,))]
            pairs.append(torch.stack([self.anchors[pick // self.num_nodes], pick % self.num_nodes]))
            target.append(torch.full((self.pairs_per_class,), c))
        pairs_t, target_t = torch.cat(pairs, 1).to(h.device), torch.cat(target).to(h.device)
        return F.cross_entropy(self.head(_pair_features(h, pairs_t)), target_t)


@PRETEXT_TASKS.register("distance2clusters")
class Distance2Clusters(PretextTask):
    """Regress, for every node and each of ``clusters`` METIS clusters, ``1 / hop distance`` to
    the cluster's centre (its highest-degree node) (MSE); 0 where the centre is unreachable and
    at the centre itself, as in the reference code (``graph_targets.inverse_hops``)."""

    def __init__(self, data, embed_dim: int, seed: int = 0, clusters: int = 10):
        super().__init__(data, embed_dim, seed)
        parts = gt.metis_clusters(self.adj, clusters, seed)
        dist = gt.hop_distances(self.adj, gt.cluster_centres(self.adj, parts)).T
        self.register_buffer("clusters", parts)
        self.register_buffer("target", torch.from_numpy(gt.inverse_hops(dist)).float())
        self.head = nn.Linear(embed_dim, self.target.shape[1])

    def loss(self, h: Tensor, data) -> Tensor:
        return F.mse_loss(self.head(h), self.target)


@PRETEXT_TASKS.register("attribute_mask")
class AttributeMask(PretextTask):
    """Zero the features of ``rate`` of the unlabelled nodes (chosen once) in the encoder's input
    and regress their first ``pca_dims`` principal components (MSE)."""

    def __init__(self, data, embed_dim: int, seed: int = 0, rate: float = 0.1, pca_dims: int = 256):
        super().__init__(data, embed_dim, seed)
        unlabeled = np.flatnonzero(~data.train_mask.cpu().numpy())
        masked = _rng(seed, 3).permutation(unlabeled)[: max(1, int(rate * len(unlabeled)))]
        self.register_buffer("masked", torch.from_numpy(np.sort(masked)).long())
        self.register_buffer("target", gt.pca_features(data.x, pca_dims, seed)[self.masked])
        self.head = nn.Linear(embed_dim, self.target.shape[1])
        self._zeroed = TensorMemo()

    def corrupt(self, data):
        """``data`` (a shallow copy) with the masked nodes' features zeroed. The zeroed features are
        built once per input feature tensor and version and then reused, so every step hands the
        encoder the same tensor (and its sparse-row cache stays valid)."""
        out = copy.copy(data)
        out.x = self._zeroed.get(data.x, lambda x: x.index_fill(0, self.masked.to(x.device), 0.0))
        return out

    def loss(self, h: Tensor, data) -> Tensor:
        return F.mse_loss(self.head(h[self.masked]), self.target)


@PRETEXT_TASKS.register("pairwise_attr_sim")
class PairwiseAttrSim(PretextTask):
    """Regress the cosine similarity of node features from ``|h_i - h_j|`` (MSE), for each
    node paired with one of its ``k`` most similar, one of its ``k`` least similar and one random
    node per step."""

    def __init__(self, data, embed_dim: int, seed: int = 0, k: int = 3):
        super().__init__(data, embed_dim, seed)
        top, top_sim, bottom, bottom_sim = gt.similarity_partners(data.x.cpu(), k)
        self.register_buffer("partners", torch.stack([top, bottom]))
        self.register_buffer("partner_sim", torch.stack([top_sim, bottom_sim]))
        self.register_buffer("x_unit", F.normalize(data.x.cpu().float(), dim=1))
        self.head = nn.Linear(embed_dim, 1)

    def loss(self, h: Tensor, data) -> Tensor:
        n, k = self.num_nodes, self.partners.shape[2]
        nodes = torch.arange(n, device=h.device)
        col = torch.randint(k, (2, n), device=h.device)
        near_far = self.partners.gather(2, col[..., None]).squeeze(2)
        sims = self.partner_sim.gather(2, col[..., None]).squeeze(2)
        rand = torch.randint(n, (n,), device=h.device)
        rand_sim = (self.x_unit * self.x_unit[rand]).sum(1)
        pairs = torch.stack([nodes.repeat(3), torch.cat([near_far[0], near_far[1], rand])])
        target = torch.cat([sims[0], sims[1], rand_sim])
        return F.mse_loss(self.head(_pair_features(h, pairs)).squeeze(1), target)
