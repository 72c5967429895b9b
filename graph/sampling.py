"""Subgraph samplers for graphs too large for a full-batch step, written as vectorised torch on a CSR adjacency
(PyG's samplers need pyg-lib or torch-sparse, which have no wheels for this torch on the package registry).

* :func:`sample_neighbours`: GraphSAGE's neighbour sampling (Hamilton, Ying and Leskovec, "Inductive Representation
  Learning on Large Graphs", NeurIPS 2017): from the seed nodes, per layer at most ``fanout`` in-neighbours of
  every frontier node, drawn uniformly without replacement.
* :func:`local_cluster`: GraphMAE2's local-clustering subgraphs (Hou et al., WWW 2023, after Andersen, Chung and
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


def local_cluster(csr: CSR, seed: int, size: int, alpha: float = 0.15, epsilon: float = 1e-4, max_rounds: int = 1000) -> Tensor:
    """The ``size`` nodes (the seed first) of highest approximate personalised PageRank from ``seed``, as GraphMAE2's
    large-graph pretraining samples its subgraphs. The push algorithm, run in synchronous rounds: every node whose
    residual is at least ``epsilon`` times its degree keeps ``alpha`` of it as score and spreads the rest evenly over
    its neighbours, until no node qualifies (or ``max_rounds``). Fewer nodes when fewer have a score.

    Args:
        csr: the graph's in-edges (symmetric for an undirected graph).
        seed: the node the walk restarts at.
        size: nodes in the cluster.
        alpha: teleport (restart) probability.
        epsilon: residual tolerance per unit of degree; smaller is more accurate and costs about 1 / epsilon pushes.
        max_rounds: a bound on the rounds of pushes.
    """
    if size < 1 or not 0 < alpha < 1 or epsilon <= 0:
        raise ConfigError(f"Bad local clustering settings: size={size} >= 1, 0 < alpha={alpha} < 1, epsilon={epsilon} > 0.")
    if not 0 <= seed < csr.num_nodes:
        raise ConfigError(f"Seed node {seed} is not in [0, {csr.num_nodes}).")
    n = csr.num_nodes
    degree = (csr.crow[1:] - csr.crow[:-1]).double()
    threshold = epsilon * degree.clamp_min(1)
    score = torch.zeros(n, dtype=torch.float64)
    residual = torch.zeros(n, dtype=torch.float64)
    residual[seed] = 1.0
    frontier = torch.tensor([seed])
    for _ in range(max_rounds):
        if len(frontier) == 0:
            break
        r = residual[frontier]
        score[frontier] += alpha * r
        residual[frontier] = 0.0
        owner, edge = _edges_of(csr, frontier)
        if len(edge):
            share = (1 - alpha) * r / degree[frontier].clamp_min(1)
            target = csr.col[edge]
            residual.index_add_(0, target, share[owner])
            touched = torch.unique(target)
            frontier = touched[residual[touched] >= threshold[touched]]
        else:
            frontier = frontier[:0]
    others = score.clone()
    others[seed] = 0.0
    have = others.nonzero().flatten()
    ranked = have[torch.argsort(others[have], descending=True, stable=True)][: size - 1]
    return torch.cat([torch.tensor([seed]), ranked])


def induced_subgraph(csr: CSR, nodes: Tensor) -> Tensor:
    """The edges between ``nodes``, relabelled to positions in ``nodes``: the in-edges of each node in turn (in the
    order of ``nodes``) whose source is among them. Work and memory grow with the nodes' degrees, not the graph."""
    position = torch.full((csr.num_nodes,), -1, dtype=torch.long)
    position[nodes] = torch.arange(len(nodes))
    owner, edge = _edges_of(csr, nodes)
    source = position[csr.col[edge]]
    keep = source >= 0
    return torch.stack([source[keep], owner[keep]])
