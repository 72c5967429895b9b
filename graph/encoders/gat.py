"""Graph attention network (Veličković et al., "Graph Attention Networks", ICLR 2018), in the
variant GraphMAE uses as encoder and decoder (Hou et al., KDD 2022): input dropout before every
layer, multi-head attention with concatenated heads, optional residual and norm, and an
activation after every layer but (for decoders) the last.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.utils import softmax

from geossl.encoder import Encoder
from geossl.errors import ConfigError
from geossl.ops import dropout
from geossl.graph.encoders.common import make_activation, make_norm
from geossl.graph.encoders.aggregate import edge_aggregate
from geossl.graph.interop import as_pyg, module_device
from geossl.graph.encoders.inputs import MaskedFeatures, project_features, select_rows
from geossl.registry import ENCODERS


class GATLayer(nn.Module):
    """One multi-head graph attention layer.

    ``out_i = act(norm(sum_j a_ij W x_j + residual + bias))`` with
    ``a_ij = softmax_j(leaky_relu(a_l . W x_j + a_r . W x_i))`` over the in-edges of ``i``.
    The graph's ``edge_index`` must already contain the self-loops it should use.

    Args:
        in_dim: input width.
        out_dim: width per head.
        heads: number of attention heads; outputs are concatenated to ``heads * out_dim``.
        feat_drop: dropout on the layer input.
        attn_drop: dropout on the attention coefficients.
        negative_slope: LeakyReLU slope in the attention logits.
        residual: add a (linear, if widths differ) skip connection.
        norm: None, "batchnorm" or "layernorm" on the concatenated output.
        activation: activation name, or None for none.
    """

    def __init__(self, in_dim: int, out_dim: int, heads: int, feat_drop: float = 0.0, attn_drop: float = 0.0,
                 negative_slope: float = 0.2, residual: bool = False, norm: Optional[str] = None,
                 activation: Optional[str] = None):
        super().__init__()
        self.in_dim, self.out_dim, self.heads = in_dim, out_dim, heads
        self.feat_drop, self.attn_drop, self.negative_slope = feat_drop, attn_drop, negative_slope
        self.fc = nn.Linear(in_dim, heads * out_dim, bias=False)
        self.attn_l = nn.Parameter(torch.empty(1, heads, out_dim))
        self.attn_r = nn.Parameter(torch.empty(1, heads, out_dim))
        self.bias = nn.Parameter(torch.empty(heads * out_dim))
        self.res_fc = None
        if residual:
            self.res_fc = nn.Identity() if in_dim == heads * out_dim else nn.Linear(in_dim, heads * out_dim, bias=False)
        self.norm = make_norm(norm, heads * out_dim)
        self.act = make_activation(activation)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        gain = nn.init.calculate_gain("relu")
        nn.init.xavier_normal_(self.fc.weight, gain=gain)
        nn.init.xavier_normal_(self.attn_l, gain=gain)
        nn.init.xavier_normal_(self.attn_r, gain=gain)
        nn.init.zeros_(self.bias)
        if isinstance(self.res_fc, nn.Linear):
            nn.init.xavier_normal_(self.res_fc.weight, gain=gain)

    def forward(self, x: Tensor | MaskedFeatures, edge_index: Tensor, output_nodes: Optional[Tensor] = None) -> Tensor:
        """Layer output for every node, or only for ``output_nodes`` (rows in that order).

        The neighbourhood sum is taken in the narrower of the input and output spaces: when
        ``in_dim < out_dim`` (a decoder mapping codes back to wide features) inputs are
        aggregated per head and projected afterwards, since ``sum_j a_ij W x_j = W sum_j a_ij x_j``
        and ``a_l . W x_j = (W^T a_l) . x_j``; otherwise inputs are projected first.
        """
        n = x.num_nodes if isinstance(x, MaskedFeatures) else x.shape[0]
        src, dst = edge_index[0], edge_index[1]
        num_out = n
        if output_nodes is not None:
            position = torch.full((n,), -1, dtype=torch.long, device=dst.device)
            position[output_nodes] = torch.arange(output_nodes.numel(), device=dst.device)
            keep = position[dst] >= 0
            src, dst, num_out = src[keep], position[dst[keep]], output_nodes.numel()
        heads, width = self.heads, self.out_dim
        if isinstance(x, Tensor) and self.in_dim < self.out_dim:
            x = dropout(x, self.feat_drop, self.training)
            weight = self.fc.weight.view(heads, width, self.in_dim)
            attn_in = torch.cat([torch.bmm(self.attn_l.transpose(0, 1), weight), torch.bmm(self.attn_r.transpose(0, 1), weight)])
            scores = x @ attn_in.view(2 * heads, self.in_dim).t()  # [n, 2H]: a_l.Wx and a_r.Wx per head
            el, er = scores[:, :heads], scores[:, heads:]
            er = er if output_nodes is None else er[output_nodes]
            alpha = self._attention(el[src] + er[dst], dst, num_out)
            agg = edge_aggregate(alpha, x.unsqueeze(1).expand(n, heads, self.in_dim), src, dst, num_out)
            if heads == 1 and self.res_fc is None:  # bias fused into the product
                return self.act(self.norm(torch.addmm(self.bias, agg.view(num_out, self.in_dim), self.fc.weight.t())))
            if heads == 1:
                out = agg.view(num_out, self.in_dim) @ self.fc.weight.t()
            else:
                out = torch.bmm(agg.transpose(0, 1), weight.transpose(1, 2)).transpose(0, 1).reshape(num_out, heads * width)
        else:
            h = project_features(x, self.fc.weight, self.feat_drop, self.training)
            # a_l . h and a_r . h for every head at once: one product with a block-diagonal [H*D, 2H] matrix
            attn = torch.block_diag(*torch.cat([self.attn_l, self.attn_r], 0).permute(1, 2, 0).unbind(0))
            scores = h @ attn  # columns ordered (head, l/r)
            el, er = scores[:, 0::2], scores[:, 1::2]
            h = h.view(n, heads, width)
            er = er if output_nodes is None else er[output_nodes]
            alpha = self._attention(el[src] + er[dst], dst, num_out)
            out = edge_aggregate(alpha, h, src, dst, num_out).flatten(1)
        if self.res_fc is not None:
            out = out + self._residual(x, output_nodes)
        out = out + self.bias
        return self.act(self.norm(out))

    def _residual(self, x: Tensor | MaskedFeatures, output_nodes: Optional[Tensor]) -> Tensor:
        """The skip connection's rows (of ``output_nodes``); sparse CSR inputs stay sparse through its linear map."""
        if isinstance(x, Tensor) and x.layout == torch.sparse_csr:
            rows = x if output_nodes is None else select_rows(x, output_nodes)
            return rows.to_dense() if isinstance(self.res_fc, nn.Identity) else project_features(rows, self.res_fc.weight)
        dense = x.to_dense() if isinstance(x, MaskedFeatures) else x
        return self.res_fc(dense if output_nodes is None else dense[output_nodes])

    def _attention(self, logits: Tensor, dst: Tensor, num_out: int) -> Tensor:
        alpha = softmax(F.leaky_relu(logits, self.negative_slope), dst, num_nodes=num_out)
        return dropout(alpha, self.attn_drop, self.training)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.in_dim}, {self.out_dim}, heads={self.heads})"


@ENCODERS.register("gat", domain="graph")
class GAT(Encoder):
    """A stack of :class:`GATLayer` (GraphMAE's GAT encoder/decoder).

    Args:
        in_dim: input feature width.
        hidden: output width of every layer (``heads`` heads of ``hidden // heads`` each).
        layers: number of layers.
        heads: attention heads in every layer but the last.
        out_heads: attention heads in the last layer (defaults to ``heads``).
        feat_drop: input dropout before every layer ("in_drop" in GraphMAE).
        attn_drop: attention dropout.
        negative_slope: LeakyReLU slope of the attention logits.
        residual: residual connections.
        norm: None, "batchnorm" or "layernorm".
        activation: activation after every hidden layer ("prelu" in GraphMAE).
        last_activation: also apply the activation after the last layer (True for encoders,
            False for decoders).
        out_dim: width of the last layer if different from ``hidden`` (decoders map back to the
            input width).
    """

    def __init__(self, in_dim: int, hidden: int = 512, layers: int = 2, heads: int = 4, out_heads: Optional[int] = None,
                 feat_drop: float = 0.2, attn_drop: float = 0.1, negative_slope: float = 0.2, residual: bool = False,
                 norm: Optional[str] = None, activation: str = "prelu", last_activation: bool = True,
                 out_dim: Optional[int] = None):
        super().__init__()
        out_heads = out_heads or heads
        final = out_dim or hidden
        if hidden % heads or final % out_heads:
            raise ConfigError(f"GAT: encoder.hidden={hidden} and out_dim={final} must be divisible by encoder.heads={heads} and "
                              f"out_heads={out_heads} (each head gets an equal share of the width).")
        if in_dim < 1 or hidden < 1 or layers < 1 or heads < 1:
            raise ConfigError(f"GAT needs in_dim, encoder.hidden, encoder.layers and encoder.heads >= 1; got {in_dim}, {hidden}, "
                              f"{layers} and {heads}.")
        self.in_dim, self.out_dim = in_dim, final
        self.layers = nn.ModuleList()
        width = in_dim
        for i in range(layers):
            last = i == layers - 1
            h, w = (out_heads, final) if last else (heads, hidden)
            act = activation if (not last or last_activation) else None
            self.layers.append(GATLayer(width, w // h, h, feat_drop, attn_drop, negative_slope, residual,
                                        norm if (not last or last_activation) else None, act))
            width = w

    def reset_parameters(self) -> None:
        for layer in self.layers:
            layer.reset_parameters()

    def forward(self, data, x: Optional[Tensor | MaskedFeatures] = None, output_nodes: Optional[Tensor] = None) -> Tensor:
        """Node embeddings of ``data`` (a PyG ``Data``).

        Args:
            data: graph with ``x`` and ``edge_index`` (self-loops included).
            x: node features overriding ``data.x`` (e.g. :class:`MaskedFeatures`).
            output_nodes: compute the last layer only for these nodes (rows in this order).
        """
        data = as_pyg(data, module_device(self))  # a DGLGraph: converted once (geossl.graph.interop)
        h = data.x if x is None else x
        for i, layer in enumerate(self.layers):
            h = layer(h, data.edge_index, output_nodes if i == len(self.layers) - 1 else None)
        return h
