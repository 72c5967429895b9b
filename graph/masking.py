"""Corruptions of a graph: GraphMAE's node masking (Hou et al., KDD 2022, Sec. 3.2) and the feature masking and
edge dropping that make Graph Barlow Twins' views (Bielak et al., 2022)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor


@dataclass
class NodeMask:
    """Which nodes are masked and how.

    Attributes:
        mask_nodes: all masked nodes (the loss is computed on them).
        token_nodes: masked nodes whose features are zeroed and receive the [MASK] token.
        noise_nodes: masked nodes whose features are replaced by another node's.
        noise_source: for each of ``noise_nodes``, the node whose features it receives.
    """

    mask_nodes: Tensor
    token_nodes: Tensor
    noise_nodes: Tensor
    noise_source: Tensor

    def keep_nodes(self, num_nodes: int) -> Tensor:
        """The nodes that are not masked, in increasing order."""
        kept = torch.ones(num_nodes, dtype=torch.bool, device=self.mask_nodes.device)
        kept[self.mask_nodes] = False
        return kept.nonzero().view(-1)

    def source(self, num_nodes: int) -> Tensor:
        """[N] row each node reads its input features from; -1 for token nodes."""
        src = torch.arange(num_nodes, device=self.mask_nodes.device)
        src[self.token_nodes] = -1
        src[self.noise_nodes] = self.noise_source
        return src


def sample_node_mask(num_nodes: int, mask_rate: float, replace_rate: float, device=None,
                     generator: Optional[torch.Generator] = None) -> NodeMask:
    """Sample GraphMAE's node mask.

    ``int(mask_rate * N)`` random nodes are masked. Of those, ``int(replace_rate * M)`` get the
    features of random nodes (any node of the graph) and all others get the [MASK] token. Unlike
    the reference code, every masked node is either a token or a noise node (the reference's
    two separate roundings can leave one masked node uncorrupted), and 0 noise nodes select
    none (the reference's ``perm[-0:]`` selects every masked node).

    Args:
        num_nodes: N.
        mask_rate: share of nodes to mask, in [0, 1].
        replace_rate: share of masked nodes that get another node's features, in [0, 1].
        device: device of the returned indices.
        generator: optional RNG.
    """
    if not 0.0 <= mask_rate <= 1.0:
        raise ValueError(f"mask_rate must be in [0, 1], got {mask_rate}")
    if not 0.0 <= replace_rate <= 1.0:
        raise ValueError(f"replace_rate must be in [0, 1], got {replace_rate}")
    perm = torch.randperm(num_nodes, device=device, generator=generator)
    num_mask = int(mask_rate * num_nodes)
    mask_nodes = perm[:num_mask]
    num_noise = int(replace_rate * num_mask)
    inner = torch.randperm(num_mask, device=device, generator=generator)
    noise_nodes = mask_nodes[inner[:num_noise]]
    token_nodes = mask_nodes[inner[num_noise:]]
    noise_source = torch.randperm(num_nodes, device=device, generator=generator)[:num_noise]
    return NodeMask(mask_nodes, token_nodes, noise_nodes, noise_source)


def mask_feature_columns(x: Tensor, p: float, generator: Optional[torch.Generator] = None) -> Tensor:
    """``x`` with each feature column zeroed with probability ``p``, the same columns for every node (Graph Barlow
    Twins' feature masking; no rescaling of the kept columns).

    Args:
        x: node features [N, F].
        p: probability of masking a column, in [0, 1].
        generator: optional RNG (on ``x``'s device).
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"feature masking probability must be in [0, 1], got {p}")
    keep = torch.rand(1, x.shape[1], device=x.device, generator=generator) >= p
    return x * keep.to(x.dtype)


def drop_edges(edge_index: Tensor, p: float, generator: Optional[torch.Generator] = None) -> Tensor:
    """The edges of ``edge_index`` each kept with probability ``1 - p`` (every direction on its own, as Graph Barlow
    Twins drops them); self-loops are always kept, so a GCN's ``A + I`` and a GAT's attention to the node itself stay
    (the reference drops from graphs without self-loops and its GCN adds them back).

    Args:
        edge_index: [2, E] edges.
        p: probability of dropping an edge, in [0, 1].
        generator: optional RNG (on ``edge_index``'s device).
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"edge dropping probability must be in [0, 1], got {p}")
    keep = torch.rand(edge_index.shape[1], device=edge_index.device, generator=generator) >= p
    keep |= edge_index[0] == edge_index[1]
    return edge_index[:, keep]
