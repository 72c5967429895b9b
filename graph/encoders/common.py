"""Name resolvers shared by the graph encoders (errors list the valid choices)."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from geossl.errors import ConfigError
from geossl.graph.encoders.inputs import MaskedFeatures

ACTIVATIONS = {"prelu": nn.PReLU, "relu": nn.ReLU, "elu": nn.ELU, "gelu": nn.GELU, "identity": nn.Identity}
NORMS = {"batchnorm": nn.BatchNorm1d, "layernorm": nn.LayerNorm}


def check_sizes(name: str, in_dim: int, hidden: int, layers: int, dropout: float) -> None:
    """Refuse widths, depths and dropout rates no layer can be built with (a clear message, not a torch error)."""
    if in_dim < 1 or hidden < 1 or layers < 1 or not 0.0 <= dropout < 1.0:
        raise ConfigError(f"{name} needs in_dim, encoder.hidden and encoder.layers >= 1 and 0 <= encoder.dropout < 1; got "
                          f"{in_dim}, {hidden}, {layers} and {dropout}.")


def make_activation(name: Optional[str]) -> nn.Module:
    """A fresh activation module by name ("prelu", "relu", "elu", "gelu", or None/"identity")."""
    key = "identity" if name in (None, "none") else str(name).lower()
    if key not in ACTIVATIONS:
        raise ConfigError(f"Unknown activation {name!r}. Valid activations: {', '.join(sorted(ACTIVATIONS))}.")
    return ACTIVATIONS[key]()


def make_norm(name: Optional[str], dim: int) -> nn.Module:
    """A normalisation layer by name ("batchnorm", "layernorm", or None for none)."""
    if name in (None, "none"):
        return nn.Identity()
    key = str(name).lower()
    if key not in NORMS:
        raise ConfigError(f"Unknown norm {name!r}. Valid norms: none, {', '.join(sorted(NORMS))}.")
    return NORMS[key](dim)


def dense_node_features(data, x: Optional[Tensor | MaskedFeatures] = None) -> Tensor:
    """``x`` if given, else ``data.x``, as a dense tensor (for encoders without a sparse fast path)."""
    h = data.x if x is None else x
    return h.to_dense() if isinstance(h, MaskedFeatures) else h


def gcn_edge_weight(data, edge_index: Tensor) -> Optional[Tensor]:
    """Per-edge weights for a GCN layer's ``A + I`` over ``edge_index``, or None (all ones).

    A graph loaded with its raw self-loops kept (``keep_raw_self_loops``: Kipf and Welling's
    preprocessing, which SelfTask's reference uses) carries ``data.self_loop_weight``, the weight
    of every node's self-loop in ``A + I`` (2 where the raw graph has a loop, else 1); the edges
    of ``edge_index`` then weigh 1 and its self-loops weigh their node's value. PyG's ``gcn_norm``
    keeps an existing self-loop's weight, so the layer normalises exactly ``A + I``.
    """
    loop_weight = getattr(data, "self_loop_weight", None)
    if loop_weight is None:
        return None
    weight = torch.ones(edge_index.shape[1], dtype=loop_weight.dtype, device=edge_index.device)
    loops = edge_index[0] == edge_index[1]
    weight[loops] = loop_weight[edge_index[0, loops]]
    return weight
