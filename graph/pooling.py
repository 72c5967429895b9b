"""Graph readout: node embeddings -> one embedding per graph (mean, max or sum pooling)."""

from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import Tensor

from geossl.errors import UnknownNameError


def _poolers():
    from torch_geometric.nn import global_add_pool, global_max_pool, global_mean_pool

    return {"mean": global_mean_pool, "max": global_max_pool, "sum": global_add_pool}


POOLINGS = ("mean", "max", "sum")


def pool_nodes(h: Tensor, batch: Tensor, how: str, num_graphs: int | None = None) -> Tensor:
    """Pool node rows ``h`` into per-graph rows by the graph index ``batch`` (PyG's ``Batch.batch``).

    Args:
        h: ``[N, d]`` node embeddings.
        batch: ``[N]`` graph index of each node (0..G-1, sorted).
        how: "mean", "max" or "sum".
        num_graphs: G (inferred from ``batch`` when None).
    """
    poolers = _poolers()
    if how not in poolers:
        raise UnknownNameError(f"Unknown pooling {how!r}. Valid choices: {', '.join(POOLINGS)}.")
    return poolers[how](h, batch, num_graphs)


@torch.no_grad()
def embed_graphs(embed_nodes: Callable, batches: Iterable, pooling: str, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """Pooled embeddings and labels of every graph in ``batches``.

    Args:
        embed_nodes: maps a PyG ``Batch`` to node embeddings (an encoder in eval mode, or a
            method's ``embed``).
        batches: an iterable of PyG ``Batch`` objects in a fixed order (a non-shuffled loader).
        pooling: "mean", "max" or "sum".
        device: where the batches are moved for embedding.
    """
    zs, ys = [], []
    for batch in batches:
        batch = batch.to(device)
        zs.append(pool_nodes(embed_nodes(batch), batch.batch, pooling, batch.num_graphs).cpu())
        ys.append(batch.y.view(-1).cpu())
    return torch.cat(zs), torch.cat(ys)
