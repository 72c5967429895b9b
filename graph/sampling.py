"""Subgraph samplers for graphs too large for a full-batch step, written as vectorised torch on a CSR adjacency
(PyG's samplers need pyg-lib or torch-sparse, which have no wheels for this torch on the package registry).

* :func:`sample_neighbours`: GraphSAGE's neighbour sampling (Hamilton, Ying and Leskovec, "Inductive Representation
  Learning on Large Graphs", NeurIPS 2017): from the seed nodes, per layer at most ``fanout`` in-neighbours of
  every frontier node, drawn uniformly without replacement.
* :func:`local_cluster_table`: GraphMAE2's local-clustering subgraphs (Hou et al., WWW 2023, after Andersen, Chung and
  Lang, "Local Graph Partitioning using PageRank Vectors", FOCS 2006): approximate personalised PageRank from a
  seed node by the push algorithm, and the ``size`` nodes of highest score.

Both return node ids of the original graph; :func:`induced_subgraph` relabels the edges among them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence

import torch
from torch import Tensor

from geossl.errors import ConfigError


@dataclass
class CSR:
    """In-edges of every node: the sources of node ``i``'s edges are ``col[crow[i]:crow[i + 1]]``."""

    crow: Tensor
    col: Tensor

    @property
    def num_nodes(self) -> int:
        return len(self.crow) - 1

    @classmethod
    def from_edge_index(cls, edge_index: Tensor, num_nodes: int) -> "CSR":
        """From ``edge_index`` ``[2, E]`` (messages flow from ``edge_index[0]`` to ``edge_index[1]``)."""
        src, dst = edge_index
        order = torch.argsort(dst, stable=True)
        crow = torch.zeros(num_nodes + 1, dtype=torch.long)
        crow[1:] = torch.bincount(dst, minlength=num_nodes).cumsum(0)
        return cls(crow, src[order].long())

    def degree(self, nodes: Tensor) -> Tensor:
        return self.crow[nodes + 1] - self.crow[nodes]


def _edges_of(csr: CSR, nodes: Tensor):
    """For every in-edge of ``nodes``: the position of its node in ``nodes`` and its index into ``csr.col``."""
    deg = csr.degree(nodes)
    owner = torch.repeat_interleave(torch.arange(len(nodes)), deg)
    first = torch.repeat_interleave(csr.crow[nodes] - deg.cumsum(0) + deg, deg)  # crow[node] - (start of its run)
    return owner, first + torch.arange(int(deg.sum()))


def sample_neighbours(csr: CSR, seeds: Tensor, fanouts: Sequence[int], generator: torch.Generator) -> Tensor:
    """The nodes reached from ``seeds`` by neighbour sampling: seeds first (in their order), then the nodes each
    layer added, each once. ``fanouts[l]``: in-neighbours kept per node at hop ``l + 1`` (all when fewer)."""
    if any(int(f) < 1 for f in fanouts) or not len(fanouts):
        raise ConfigError(f"Neighbour-sampling fan-outs must be positive integers, one per layer; got {list(fanouts)}.")
    if len(seeds) == 0 or int(seeds.min()) < 0 or int(seeds.max()) >= csr.num_nodes:
        raise ConfigError(f"Seed nodes must be non-empty ids in [0, {csr.num_nodes}).")
    seen = torch.zeros(csr.num_nodes, dtype=torch.bool)
    seen[seeds] = True
    nodes: List[Tensor] = [seeds]
    frontier = seeds
    for fanout in fanouts:
        owner, edge = _edges_of(csr, frontier)
        if len(edge) == 0:
            break
        # a random key per edge; sorting by (owner, key) puts each node's edges in random order, keep the first fanout
        key = torch.rand(len(edge), generator=generator, dtype=torch.float64)
        order = torch.argsort(owner.double() + key)
        owner, edge = owner[order], edge[order]
        start = torch.zeros(len(frontier) + 1, dtype=torch.long)
        start[1:] = torch.bincount(owner, minlength=len(frontier)).cumsum(0)
        rank = torch.arange(len(edge)) - start[owner]
        picked = csr.col[edge[rank < int(fanout)]]
        new = torch.unique(picked)
        new = new[~seen[new]]
        seen[new] = True
        nodes.append(new)
        frontier = new
    return torch.cat(nodes)


def local_cluster_table(csr: CSR, seeds: Tensor, size: int, alpha: float = 0.15, epsilon: float = 1e-4,
                        max_rounds: int = 1000) -> Tensor:
    """A [len(seeds), size] table: for every seed, the seed and then the ``size - 1`` other nodes of highest approximate personalised
    PageRank from it, as GraphMAE2's large-graph pretraining samples its subgraphs (-1 pads a row when fewer nodes
    have a score). The push algorithm, run in synchronous rounds for all seeds at once: every (seed, node) whose
    residual is at least ``epsilon`` times the node's degree keeps ``alpha`` of it as score and spreads the rest
    evenly over the node's neighbours, until none qualifies (or ``max_rounds``). Residuals and scores are kept only
    for the (seed, node) pairs reached, so work and memory grow with the pushes (about 1 / epsilon per seed), not
    with the graph. Ties in score go to the lower node id.

    Args:
        csr: the graph's in-edges (symmetric for an undirected graph).
        seeds: the nodes the walks restart at.
        size: nodes per cluster, its seed included.
        alpha: teleport (restart) probability.
        epsilon: residual tolerance per unit of degree; smaller is more accurate and costs about 1 / epsilon pushes.
        max_rounds: a bound on the rounds of pushes.
    """
    if size < 1 or not 0 < alpha < 1 or epsilon <= 0:
        raise ConfigError(f"Bad local clustering settings: size={size} >= 1, 0 < alpha={alpha} < 1, epsilon={epsilon} > 0.")
    seeds = torch.as_tensor(seeds, dtype=torch.long).view(-1)
    n = csr.num_nodes
    if len(seeds) and (int(seeds.min()) < 0 or int(seeds.max()) >= n):
        raise ConfigError(f"Seed nodes must be in [0, {n}).")
    which = torch.arange(len(seeds))
    keys, residual = which * n + seeds, torch.ones(len(seeds), dtype=torch.float64)  # (seed index, node), sorted
    score_keys, score_vals = [], []
    for _ in range(max_rounds):
        node = keys % n
        degree = csr.degree(node).double().clamp_min(1)
        active = residual >= epsilon * degree
        if not bool(active.any()):
            break
        pushed_keys, pushed, degree = keys[active], residual[active], degree[active]
        score_keys.append(pushed_keys)
        score_vals.append(alpha * pushed)
        owner, edge = _edges_of(csr, node[active])
        spread_keys = (pushed_keys // n)[owner] * n + csr.col[edge]
        spread = ((1 - alpha) * pushed / degree)[owner]
        keys, inverse = torch.unique(torch.cat([keys[~active], spread_keys]), return_inverse=True)
        residual = torch.zeros(len(keys), dtype=torch.float64).index_add_(0, inverse, torch.cat([residual[~active], spread]))
    if score_keys:
        keys, inverse = torch.unique(torch.cat(score_keys), return_inverse=True)
        score = torch.zeros(len(keys), dtype=torch.float64).index_add_(0, inverse, torch.cat(score_vals))
    else:
        keys, score = torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.float64)
    owner = keys // n
    others = (keys % n != seeds[owner]) & (score > 0)
    keys, score, owner = keys[others], score[others], owner[others]
    order = torch.argsort(score, descending=True, stable=True)  # keys ascend, so equal scores keep node order
    order = order[torch.argsort(owner[order], stable=True)]  # grouped by seed, best first
    keys, owner = keys[order], owner[order]
    start = torch.zeros(len(seeds) + 1, dtype=torch.long)
    start[1:] = torch.bincount(owner, minlength=len(seeds)).cumsum(0)
    rank = torch.arange(len(keys)) - start[owner]
    keep = rank < size - 1
    table = torch.full((len(seeds), size), -1, dtype=torch.long)
    table[:, 0] = seeds
    table[owner[keep], 1 + rank[keep]] = keys[keep] % n
    return table


def local_clusters(csr: CSR, seeds: Tensor, size: int, alpha: float = 0.15, epsilon: float = 1e-4,
                   max_rounds: int = 1000) -> Tensor:
    """The clusters of :func:`local_cluster_table`, concatenated in the order of ``seeds``."""
    table = local_cluster_table(csr, seeds, size, alpha, epsilon, max_rounds)
    return table[table >= 0]


def local_cluster(csr: CSR, seed: int, size: int, alpha: float = 0.15, epsilon: float = 1e-4, max_rounds: int = 1000) -> Tensor:
    """The cluster of one seed (the seed first): :func:`local_clusters` of ``[seed]``."""
    if not 0 <= seed < csr.num_nodes:
        raise ConfigError(f"Seed node {seed} is not in [0, {csr.num_nodes}).")
    return local_clusters(csr, torch.tensor([seed]), size, alpha, epsilon, max_rounds)


def induced_subgraph(csr: CSR, nodes: Tensor) -> Tensor:
    """The edges between ``nodes``, relabelled to positions in ``nodes``: the in-edges of each node in turn (in the
    order of ``nodes``) whose source is among them. Work and memory grow with the nodes' degrees, not the graph."""
    position = torch.full((csr.num_nodes,), -1, dtype=torch.long)
    position[nodes] = torch.arange(len(nodes))
    owner, edge = _edges_of(csr, nodes)
    source = position[csr.col[edge]]
    keep = source >= 0
    return torch.stack([source[keep], owner[keep]])
