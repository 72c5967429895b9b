"""Graph convolutional network (Kipf & Welling, "Semi-Supervised Classification with Graph
Convolutional Networks", ICLR 2017) on PyG's ``GCNConv``; SelfTask's backbone (Jin et al., 2020)."""

from __future__ import annotations

from typing import Optional

import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import GCNConv

from geossl.encoder import Encoder
from geossl.graph.encoders.common import dense_node_features, make_activation, make_norm
from geossl.graph.encoders.inputs import MaskedFeatures
from geossl.registry import ENCODERS


@ENCODERS.register("gcn")
class GCN(Encoder):
    """A stack of ``GCNConv`` layers with symmetric normalisation.

    Args:
        in_dim: input feature width.
        hidden: width of every layer's output.
        layers: number of layers.
        dropout: dropout on every layer's input.
        activation: activation after every layer but, unless ``last_activation``, the last.
        norm: None, "batchnorm" or "layernorm" after each activated layer.
        last_activation: apply the activation after the last layer too.
        out_dim: width of the last layer if different from ``hidden``.
    """

    def __init__(self, in_dim: int, hidden: int = 128, layers: int = 2, dropout: float = 0.5, activation: str = "relu",
                 norm: Optional[str] = None, last_activation: bool = True, out_dim: Optional[int] = None):
        super().__init__()
        self.in_dim, self.out_dim, self.dropout = in_dim, out_dim or hidden, dropout
        widths = [in_dim] + [hidden] * (layers - 1) + [self.out_dim]
        self.convs = nn.ModuleList(GCNConv(a, b, cached=False) for a, b in zip(widths[:-1], widths[1:]))
        self.norms = nn.ModuleList(make_norm(norm, b) for b in widths[1:])
        self.acts = nn.ModuleList(
            make_activation(activation if (i < layers - 1 or last_activation) else None) for i in range(layers)
        )

    def reset_parameters(self) -> None:
        for conv in self.convs:
            conv.reset_parameters()

    def forward(self, data, x: Optional[Tensor | MaskedFeatures] = None, output_nodes: Optional[Tensor] = None) -> Tensor:
        """Node embeddings of ``data``; ``x`` overrides ``data.x``; ``output_nodes`` selects rows."""
        h = dense_node_features(data, x)
        for conv, norm, act in zip(self.convs, self.norms, self.acts):
            h = F.dropout(h, self.dropout, training=self.training)
            h = act(norm(conv(h, data.edge_index)))
        return h if output_nodes is None else h[output_nodes]
