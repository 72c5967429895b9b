"""Layer-wise full-graph inference (as in GraphSAGE's and DGL's offline inference, Hamilton et al., NeurIPS 2017):
the embeddings of every node of a graph too large for one forward pass, with memory bounded by a chunk size.

A GNN of L layers applied to one chunk of output nodes at a time would recompute their L-hop neighbourhoods over
and over. Here each layer runs over the whole graph before the next one: for every chunk of ``chunk_nodes``
output nodes, the layer reads its previous layer's rows of the chunk's in-neighbours and writes the chunk's rows.
Apart from the [N, width] tables of two consecutive layers (the result itself), memory holds one chunk's in-edges,
their attention and the projected rows of their sources, which the chunk size bounds. The output equals the
encoder's whole-graph forward pass in eval mode (tested for GAT, GCN and GIN).
"""

from __future__ import annotations

import torch
from torch import Tensor

from geossl.errors import ConfigError
from geossl.graph.encoders.common import gcn_edge_weight
from geossl.graph.encoders.gat import GAT
from geossl.graph.encoders.gcn import GCN
from geossl.graph.encoders.gin import GIN
from geossl.graph.encoders.inputs import select_rows
from geossl.graph.sampling import CSR, _edges_of

#: Encoders :func:`embed_layerwise` computes layer by layer.
LAYERWISE_ENCODERS = {GAT: "gat", GCN: "gcn", GIN: "gin"}


def supports_layerwise(encoder) -> bool:
    return type(encoder) in LAYERWISE_ENCODERS


def _dense(rows: Tensor) -> Tensor:
    return rows.to_dense() if rows.layout == torch.sparse_csr else rows


class _GCNLayers:
    """GCN layers over chunks: PyG's ``gcn_norm`` (self-loops added where missing, symmetric degree normalisation)
    once over the whole edge list, then per chunk the normalised sum of its in-neighbours' projected rows."""

    def __init__(self, encoder: GCN, data, n: int):
        from torch_geometric.nn.conv.gcn_conv import gcn_norm

        conv = encoder.convs[0]
        edge_index, weight = gcn_norm(data.edge_index.cpu(), gcn_edge_weight(data, data.edge_index.cpu()), n, conv.improved,
                                      conv.add_self_loops, conv.flow, torch.float32)
        self.encoder, self.csr = encoder, CSR.from_edge_index(edge_index, n)
        self.weight = weight[torch.argsort(edge_index[1], stable=True)]  # in CSR order, as CSR.col

    def __len__(self) -> int:
        return len(self.encoder.convs)

    def __call__(self, i: int, h: Tensor, chunk: Tensor) -> Tensor:
        conv, norm, act = self.encoder.convs[i], self.encoder.norms[i], self.encoder.acts[i]
        owner, edge = _edges_of(self.csr, chunk)
        sources = self.csr.col[edge]
        nodes = torch.unique(sources)
        device = h.device
        projected = select_rows(h, nodes.to(device)) @ conv.lin.weight.t()  # sparse CSR rows stay sparse
        messages = projected[torch.searchsorted(nodes, sources).to(device)] * self.weight[edge].to(device, projected.dtype)[:, None]
        out = projected.new_zeros(len(chunk), projected.shape[1]).index_add_(0, owner.to(device), messages)
        if conv.bias is not None:
            out = out + conv.bias
        return act(norm(out))


class _GINLayers:
    """GIN layers over chunks: ``mlp((1 + eps) h_i + sum of h_j over in-edges j -> i)``, then the post-layer norm and
    activation, all row-wise in eval mode."""

    def __init__(self, encoder: GIN, data, n: int):
        self.encoder, self.csr = encoder, CSR.from_edge_index(data.edge_index.cpu(), n)

    def __len__(self) -> int:
        return len(self.encoder.convs)

    def __call__(self, i: int, h: Tensor, chunk: Tensor) -> Tensor:
        conv, post = self.encoder.convs[i], self.encoder.posts[i]
        owner, edge = _edges_of(self.csr, chunk)
        sources = self.csr.col[edge]
        device = h.device
        own = _dense(select_rows(h, chunk.to(device))).float()
        summed = own.new_zeros(own.shape).index_add_(0, owner.to(device), _dense(select_rows(h, sources.to(device))).float())
        return post(conv.nn((1 + conv.eps) * own + summed))


class _GATLayers:
    """GAT layers over chunks: each layer's own ``output_nodes`` path on the chunk's in-edges."""

    def __init__(self, encoder: GAT, data, n: int):
        self.encoder, self.csr = encoder, CSR.from_edge_index(data.edge_index.cpu(), n)

    def __len__(self) -> int:
        return len(self.encoder.layers)

    def __call__(self, i: int, h: Tensor, chunk: Tensor) -> Tensor:
        owner, edge = _edges_of(self.csr, chunk)
        sources = self.csr.col[edge]
        nodes = torch.unique(torch.cat([chunk, sources]))  # sorted: positions by searchsorted
        edge_index = torch.stack([torch.searchsorted(nodes, sources), torch.searchsorted(nodes, chunk[owner])])
        device = h.device
        return self.encoder.layers[i](select_rows(h, nodes.to(device)), edge_index.to(device),
                                      output_nodes=torch.searchsorted(nodes, chunk).to(device))


_LAYERS = {GAT: _GATLayers, GCN: _GCNLayers, GIN: _GINLayers}


@torch.no_grad()
def embed_layerwise(encoder, data, chunk_nodes: int = 4096) -> Tensor:
    """Eval-mode embeddings ``encoder(data)`` of every node, computed layer by layer over chunks of nodes.

    Args:
        encoder: a GAT, GCN or GIN encoder (see :data:`LAYERWISE_ENCODERS`).
        data: the graph (``x`` dense or sparse CSR, ``edge_index`` as the encoder sees it), on the encoder's device.
        chunk_nodes: output nodes per chunk; memory beyond the layer tables grows with it.
    """
    if not supports_layerwise(encoder):
        raise ConfigError(f"Layer-wise inference is built for the encoders {', '.join(LAYERWISE_ENCODERS.values())}; "
                          f"{type(encoder).__name__} embeds the whole graph at once.")
    if int(chunk_nodes) < 1:
        raise ConfigError(f"Layer-wise inference needs chunk_nodes >= 1; got {chunk_nodes}.")
    n = int(data.num_nodes)
    was = encoder.training
    encoder.eval()
    try:
        layers = _LAYERS[type(encoder)](encoder, data, n)
        h = data.x
        for i in range(len(layers)):
            h = torch.cat([layers(i, h, torch.arange(start, min(start + int(chunk_nodes), n)))
                           for start in range(0, n, int(chunk_nodes))])
        return h
    finally:
        encoder.train(was)
