"""Sampled mini-batches for node-level pretraining (``sampler=neighbour`` or ``sampler=local_cluster``): every
node of the graph is a seed once per epoch; a batch of seeds becomes the subgraph induced by the nodes that
:mod:`geossl.graph.sampling` reaches from them, and the method (masking, re-masking, loss) runs on that subgraph.

Batches are built in the data loader's worker processes (``trainer.num_workers``) from a seed per batch that the
engine's :class:`~geossl.engine.loader.SeededSampler` derives from the run's seed and the epoch, so the batches of
a run do not depend on the number of workers or on an interruption; under ``torchrun`` the seed nodes shard
across processes (``DistributedSampler``).
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
from omegaconf import ListConfig
from torch import Tensor

from geossl.errors import ConfigError
from geossl.graph.encoders.inputs import select_rows
from geossl.graph.sampling import CSR, induced_subgraph, local_cluster_table, sample_neighbours

#: Sampler names of ``sampler.name`` (``full``: one full-graph step per epoch, no sampling).
SAMPLERS = ("full", "neighbour", "local_cluster")


class SeedNodes(torch.utils.data.Dataset):
    """The seed nodes of an epoch as ``(node, seed)`` items (see :class:`SeededSampler`): every node id
    ``0 .. num_nodes - 1`` once, or, with ``per_epoch``, that many nodes drawn uniformly at random (with
    replacement) from each item's seed, a new draw every epoch (for graphs too large for an epoch over every node).
    """

    def __init__(self, num_nodes: int, per_epoch: int = 0):
        self.num_nodes, self.per_epoch = int(num_nodes), int(per_epoch)

    def __len__(self) -> int:
        return self.per_epoch or self.num_nodes

    def __getitem__(self, item) -> Tuple[int, int]:
        index, seed = item if isinstance(item, tuple) else (item, 0)
        if self.per_epoch:
            index = int(torch.randint(0, self.num_nodes, (1,), generator=torch.Generator().manual_seed(int(seed))))
        return int(index), int(seed)


class SubgraphBatch:
    """Collate function: seed nodes -> the induced subgraph (a PyG ``Data``) of the nodes sampled from them.

    Args:
        data: the full graph (``x``, ``edge_index`` with its self-loops, optionally ``self_loop_weight``).
        name: "neighbour" or "local_cluster".
        fanouts: neighbour sampling: in-neighbours kept per node at each hop.
        size: local clustering: nodes per seed's cluster (approximate personalised PageRank).
        alpha, epsilon: local clustering: teleport probability and push tolerance.
    """

    def __init__(self, data, name: str, fanouts: Sequence[int] = (10, 10), size: int = 128, alpha: float = 0.15,
                 epsilon: float = 1e-4):
        self.data, self.name = data, name
        self.fanouts, self.size, self.alpha, self.epsilon = [int(f) for f in fanouts], int(size), float(alpha), float(epsilon)
        self.csr = CSR.from_edge_index(data.edge_index.cpu(), int(data.num_nodes))
        self._clusters: Optional[Tensor] = None  # local clusters computed so far (see clusters)

    def nodes(self, seeds: Tensor, generator: torch.Generator) -> Tensor:
        if self.name == "neighbour":
            return sample_neighbours(self.csr, seeds, self.fanouts, generator)
        merged = self.clusters(seeds)
        unique, inverse = torch.unique(merged, return_inverse=True)
        first = torch.full((len(unique),), len(merged), dtype=torch.long).scatter_reduce(0, inverse, torch.arange(len(merged)), "amin")
        return unique[torch.argsort(first)]  # each node once, in order of appearance

    def clusters(self, seeds: Tensor) -> Tensor:
        """The seeds' local clusters, concatenated. A node's cluster does not change (no randomness), so each is
        computed once and kept (as GraphMAE2 precomputes them), in an [N, size] table filled as seeds come."""
        if self._clusters is None:
            self._clusters = torch.full((self.csr.num_nodes, self.size), -1, dtype=torch.int32)
        missing = torch.unique(seeds[self._clusters[seeds, 0] < 0])
        if len(missing):
            self._clusters[missing] = local_cluster_table(self.csr, missing, self.size, self.alpha, self.epsilon).int()
        rows = self._clusters[seeds]
        return rows[rows >= 0].long()

    def subgraph(self, nodes: Tensor):
        from torch_geometric.data import Data

        data = self.data
        out = Data(x=select_rows(data.x, nodes), edge_index=induced_subgraph(self.csr, nodes), num_nodes=len(nodes))
        if getattr(data, "self_loop_weight", None) is not None:
            out.self_loop_weight = data.self_loop_weight[nodes]
        out.node_ids = nodes
        return out

    def __call__(self, items: List[Tuple[int, int]]):
        seeds = torch.tensor([i for i, _ in items], dtype=torch.long)
        generator = torch.Generator().manual_seed(items[0][1])
        return self.subgraph(self.nodes(seeds, generator))


def _number(cfg, key: str, kind: type, default=None):
    """``cfg[key]`` as ``kind`` (int or float); anything else (a word, a list, true) is refused naming the key."""
    value = cfg.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int):
        raise ConfigError(f"sampler.{key}={value!r} must be {'a number' if kind is float else 'an integer'}.")
    return kind(value)


def check_sampler(cfg, task: str, num_nodes: int) -> Optional[dict]:
    """The validated ``sampler`` section (None for ``full``); a sampler on a graph-level dataset, fan-outs that are
    not positive integers, values that are not numbers, or a batch larger than the graph are refused by key."""
    name = cfg.name
    if name not in SAMPLERS:
        raise ConfigError(f"Unknown sampler {name!r}. Valid choices: {', '.join(SAMPLERS)}.")
    if name == "full":
        return None
    if task != "node":
        raise ConfigError(f"sampler={name} samples subgraphs of one large graph; this dataset is graph-level (batches of "
                          "whole graphs already): use sampler=full.")
    batch = _number(cfg, "batch_nodes", int)
    if not 1 <= batch <= num_nodes:
        raise ConfigError(f"sampler.batch_nodes={batch} must be between 1 and the graph's {num_nodes} nodes.")
    chunk = _number(cfg, "inference_chunk", int, 4096)
    if chunk < 1:
        raise ConfigError(f"sampler.inference_chunk={chunk} must be at least 1 (nodes per chunk of layer-wise inference).")
    per_epoch = _number(cfg, "seeds_per_epoch", int, 0) if cfg.get("seeds_per_epoch") is not None else 0
    if per_epoch < 0 or 0 < per_epoch < batch:
        raise ConfigError(f"sampler.seeds_per_epoch={per_epoch} must be 0 (every node once per epoch) or at least "
                          f"sampler.batch_nodes={batch}.")
    out = {"name": name, "batch_nodes": batch, "inference_chunk": chunk, "seeds_per_epoch": per_epoch}
    if name == "neighbour":
        fanouts = list(cfg.fanouts) if isinstance(cfg.fanouts, (list, tuple, ListConfig)) else [cfg.fanouts]
        if not fanouts or not all(isinstance(f, int) and not isinstance(f, bool) and f >= 1 for f in fanouts):
            raise ConfigError(f"sampler.fanouts={fanouts} must be positive integers, one per layer (e.g. [10, 10]).")
        out["fanouts"] = [int(f) for f in fanouts]
    else:
        if _number(cfg, "size", int) < 1 or not 0 < _number(cfg, "alpha", float) < 1 or _number(cfg, "epsilon", float) <= 0:
            raise ConfigError(f"Bad local clustering settings: sampler.size={cfg.size} >= 1, 0 < sampler.alpha={cfg.alpha} < 1, "
                              f"sampler.epsilon={cfg.epsilon} > 0.")
        out.update(size=int(cfg.size), alpha=float(cfg.alpha), epsilon=float(cfg.epsilon))
    return out
