"""Graph convolutional network (Kipf & Welling, "Semi-Supervised Classification with Graph
Convolutional Networks", ICLR 2017) on PyG's ``GCNConv``; SelfTask's backbone (Jin et al., 2020)."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import GCNConv

from geossl.encoder import Encoder
from geossl.graph.encoders.common import check_sizes, gcn_edge_weight, make_activation, make_norm
from geossl.graph.interop import as_pyg, module_device
from geossl.graph.encoders.inputs import CSRRows, MaskedFeatures, TensorMemo, project_features
from geossl.registry import ENCODERS


@ENCODERS.register("gcn", domain="graph")
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
        check_sizes("GCN", in_dim, hidden, layers, dropout)
        self.in_dim, self.out_dim, self.dropout = in_dim, out_dim or hidden, dropout
        widths = [in_dim] + [hidden] * (layers - 1) + [self.out_dim]
        self.convs = nn.ModuleList(GCNConv(a, b, cached=False) for a, b in zip(widths[:-1], widths[1:]))
        self.norms = nn.ModuleList(make_norm(norm if (i < layers - 1 or last_activation) else None, b) for i, b in enumerate(widths[1:]))
        self.acts = nn.ModuleList(
            make_activation(activation if (i < layers - 1 or last_activation) else None) for i in range(layers)
        )
        self._rows = TensorMemo()

    def reset_parameters(self) -> None:
        for conv in self.convs:
            conv.reset_parameters()

    def forward(self, data, x: Optional[Tensor | MaskedFeatures] = None, output_nodes: Optional[Tensor] = None) -> Tensor:
        """Node embeddings of ``data``; ``x`` overrides ``data.x``; ``output_nodes`` selects rows.

        Sparse inputs (bag-of-words features, or GraphMAE's masked features) enter the first
        layer as CSR rows: its dropout and linear map then cost per non-zero instead of per
        entry (the same values in distribution and result; tests/graph/test_fast_paths.py).
        """
        data = as_pyg(data, module_device(self))  # a DGLGraph: converted once (geossl.graph.interop)
        h = data.x if x is None else x
        weight = gcn_edge_weight(data, data.edge_index)
        for i, (conv, norm, act) in enumerate(zip(self.convs, self.norms, self.acts)):
            rows = h if isinstance(h, MaskedFeatures) else self._rows_cache(h) if i == 0 and not h.requires_grad else None
            if rows is not None:
                h = act(norm(self._sparse_input_layer(conv, rows, data.edge_index, weight)))
            else:
                h = F.dropout(h, self.dropout, training=self.training)
                h = act(norm(conv(h, data.edge_index, weight)))
        return h if output_nodes is None else h[output_nodes]

    def _sparse_input_layer(self, conv: GCNConv, x: Tensor | MaskedFeatures, edge_index: Tensor,
                            edge_weight: Optional[Tensor] = None) -> Tensor:
        """``conv(dropout(x), edge_index, edge_weight)`` with ``x`` taken as CSR rows (PyG's GCNConv
        steps: linear map, symmetric normalisation with self-loops, propagation, bias)."""
        from torch_geometric.nn.conv.gcn_conv import gcn_norm

        feats = x if isinstance(x, MaskedFeatures) else self._rows_cache(x, density=1.0)
        h = project_features(feats, conv.lin.weight, self.dropout, self.training)
        ei, w = gcn_norm(edge_index, edge_weight, h.shape[0], conv.improved, conv.add_self_loops, conv.flow, h.dtype)
        out = conv.propagate(ei, x=h, edge_weight=w)
        return out if conv.bias is None else out + conv.bias

    def _rows_cache(self, x: Tensor, density: float = 0.1) -> Optional[MaskedFeatures]:
        """``x`` as CSR rows if at most ``density`` of it is non-zero, else None; remembered for
        the last inputs by a :class:`TensorMemo`."""
        return self._rows.get(x, lambda t: _sparse_rows(t, density), key=density)


def _sparse_rows(x: Tensor, density: float) -> Optional[MaskedFeatures]:
    """``x`` as CSR rows (a :class:`MaskedFeatures` with nothing masked) if at most ``density``
    of it is non-zero, else None."""
    if not is_sparse_enough(x, density):
        return None
    n = x.shape[0]
    return MaskedFeatures(CSRRows.from_dense(x), torch.arange(n, device=x.device), x.new_zeros(1, x.shape[1]),
                          torch.empty(0, dtype=torch.long, device=x.device))


def is_sparse_enough(x: Tensor, density: float = 0.1) -> bool:
    """Whether a dense float matrix has at most ``density`` non-zeros (then CSR products win)."""
    return x.dim() == 2 and x.is_floating_point() and x.numel() > 0 and int(torch.count_nonzero(x)) <= density * x.numel()
