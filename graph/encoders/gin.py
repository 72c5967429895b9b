"""Graph isomorphism network (Xu et al., "How Powerful are Graph Neural Networks?", ICLR 2019)
on PyG's ``GINConv``: GraphMAE's encoder and decoder for graph-level tasks."""

from __future__ import annotations

from typing import Optional

import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import GINConv

from geossl.encoder import Encoder
from geossl.graph.encoders.common import dense_node_features, make_activation, make_norm
from geossl.graph.encoders.inputs import MaskedFeatures
from geossl.registry import ENCODERS


@ENCODERS.register("gin")
class GIN(Encoder):
    """A stack of ``GINConv`` layers, each with a two-layer MLP.

    Args:
        in_dim: input feature width.
        hidden: width of every layer's output.
        layers: number of GIN layers.
        dropout: dropout on every layer's input.
        activation: activation inside the MLPs and after every layer but (unless
            ``last_activation``) the last.
        norm: None, "batchnorm" or "layernorm" inside the MLPs and after each layer.
        last_activation: apply activation and norm after the last layer too.
        out_dim: width of the last layer if different from ``hidden``.
        train_eps: learn GIN's epsilon.
    """

    def __init__(self, in_dim: int, hidden: int = 512, layers: int = 2, dropout: float = 0.2, activation: str = "prelu",
                 norm: Optional[str] = "batchnorm", last_activation: bool = True, out_dim: Optional[int] = None,
                 train_eps: bool = False):
        super().__init__()
        self.in_dim, self.out_dim, self.dropout = in_dim, out_dim or hidden, dropout
        widths = [in_dim] + [hidden] * (layers - 1) + [self.out_dim]
        self.convs, self.posts = nn.ModuleList(), nn.ModuleList()
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            mlp = nn.Sequential(nn.Linear(a, hidden), make_norm(norm, hidden), make_activation(activation), nn.Linear(hidden, b))
            self.convs.append(GINConv(mlp, train_eps=train_eps))
            last = i == layers - 1
            self.posts.append(
                nn.Sequential(make_norm(norm, b), make_activation(activation)) if (not last or last_activation) else nn.Identity()
            )

    def reset_parameters(self) -> None:
        for conv in self.convs:
            conv.reset_parameters()

    def forward(self, data, x: Optional[Tensor | MaskedFeatures] = None, output_nodes: Optional[Tensor] = None) -> Tensor:
        """Node embeddings of ``data``; ``x`` overrides ``data.x``; ``output_nodes`` selects rows."""
        h = dense_node_features(data, x)
        for conv, post in zip(self.convs, self.posts):
            h = F.dropout(h, self.dropout, training=self.training)
            h = post(conv(h, data.edge_index))
        return h if output_nodes is None else h[output_nodes]
