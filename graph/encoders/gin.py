"""Graph isomorphism network (Xu et al., "How Powerful are Graph Neural Networks?", ICLR 2019)
on PyG's ``GINConv``: GraphMAE's encoder and decoder for graph-level tasks."""

from __future__ import annotations

import warnings
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import GINConv

from geossl.encoder import Encoder
from geossl.graph.encoders.common import check_sizes, dense_node_features, make_activation, make_norm
from geossl.graph.interop import as_pyg, module_device
from geossl.graph.encoders.inputs import MaskedFeatures
from geossl.registry import ENCODERS


@ENCODERS.register("gin", domain="graph")
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
        check_sizes("GIN", in_dim, hidden, layers, dropout)
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
        """Node embeddings of ``data``; ``x`` overrides ``data.x``; ``output_nodes`` selects rows.

        Neighbour sums run as one sparse CSR product (``adj_t @ h``), which on CPU is several
        times faster than gathering a message per edge and scattering it back (the result is
        the same sum; tests/graph/test_fast_paths.py compares it with PyG's edge-list path).
        """
        data = as_pyg(data, module_device(self))  # a DGLGraph: converted once (geossl.graph.interop)
        h = dense_node_features(data, x)
        sum_dtype = torch.float64 if h.dtype == torch.float64 else torch.float32
        adj_t = neighbour_sum_matrix(data.edge_index, h.shape[0], sum_dtype)
        for conv, post in zip(self.convs, self.posts):
            h = F.dropout(h, self.dropout, training=self.training)
            h = post(gin_layer(conv, h, adj_t))
        return h if output_nodes is None else h[output_nodes]


def gin_layer(conv: GINConv, h: Tensor, adj_t: Tensor) -> Tensor:
    """``conv.nn((1 + eps) * h + adj_t @ h)``: PyG's GINConv with the neighbour sum taken in
    ``adj_t``'s precision outside autocast (CPU CSR products have no bf16/fp16 kernels); the
    MLP then runs under autocast as usual."""
    with torch.autocast(device_type=h.device.type, enabled=False):
        h32 = h.to(adj_t.dtype)
        summed = (1 + conv.eps) * h32 + _NeighbourSum.apply(h32, adj_t)
    return conv.nn(summed)


class _NeighbourSum(torch.autograd.Function):
    """``adj_t @ h`` for a sparse CSR ``adj_t``; the backward ``adj_t.T @ grad`` runs in
    ``adj_t``'s precision with autocast off."""

    @staticmethod
    def forward(ctx, h: Tensor, adj_t: Tensor) -> Tensor:
        ctx.save_for_backward(adj_t)
        return torch.sparse.mm(adj_t, h)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (adj_t,) = ctx.saved_tensors
        with torch.autocast(device_type=grad.device.type, enabled=False):
            return torch.sparse.mm(adj_t.t().to_sparse_csr(), grad.to(adj_t.dtype)), None


def neighbour_sum_matrix(edge_index: Tensor, num_nodes: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """The sparse CSR matrix ``A_t`` with ``A_t[i, j] = 1`` for each edge ``j -> i``, so that
    ``A_t @ h`` sums every node's incoming neighbours (PyG's source-to-target flow)."""
    from torch_geometric.utils import to_torch_csr_tensor

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse (CSR tensor support is in beta|invariant checks)")
        ones = torch.ones(edge_index.shape[1], dtype=dtype, device=edge_index.device)
        return to_torch_csr_tensor(edge_index.flip(0), ones, size=(num_nodes, num_nodes))
