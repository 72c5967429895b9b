"""Layer-wise full-graph inference (as in GraphSAGE's and DGL's offline inference, Hamilton et al., NeurIPS 2017):
the embeddings of every node of a graph too large for one forward pass, with memory bounded by a chunk size.

A GNN of L layers applied to one chunk of output nodes at a time would recompute their L-hop neighbourhoods over
and over. Here each layer runs over the whole graph before the next one: for every chunk of ``chunk_nodes``
output nodes, the layer reads its previous layer's rows of the chunk's in-neighbours and writes the chunk's rows.
Apart from the [N, width] tables of two consecutive layers (the result itself), memory holds one chunk's in-edges,
their attention and the projected rows of their sources, which the chunk size bounds. The output equals the
encoder's whole-graph forward pass in eval mode (tested).
"""

from __future__ import annotations

from typing import List

import torch
from torch import Tensor

from geossl.errors import ConfigError
from geossl.graph.encoders.gat import GAT
from geossl.graph.encoders.inputs import select_rows
from geossl.graph.sampling import CSR, _edges_of

#: Encoders :func:`embed_layerwise` computes layer by layer (their layers take ``(h, edge_index, output_nodes)``).
LAYERWISE_ENCODERS = {GAT: "gat"}


def supports_layerwise(encoder) -> bool:
    return type(encoder) in LAYERWISE_ENCODERS


@torch.no_grad()
def embed_layerwise(encoder, data, chunk_nodes: int = 4096) -> Tensor:
    """Eval-mode embeddings ``encoder(data)`` of every node, computed layer by layer over chunks of nodes.

    Args:
        encoder: a GAT encoder (see :data:`LAYERWISE_ENCODERS`).
        data: the graph (``x`` dense or sparse CSR, ``edge_index`` with its self-loops), on the encoder's device.
        chunk_nodes: output nodes per chunk; memory beyond the layer tables grows with it.
    """
    if not supports_layerwise(encoder):
        raise ConfigError(f"Layer-wise inference is built for the encoders {', '.join(LAYERWISE_ENCODERS.values())}; "
                          f"{type(encoder).__name__} embeds the whole graph at once.")
    if int(chunk_nodes) < 1:
        raise ConfigError(f"Layer-wise inference needs chunk_nodes >= 1; got {chunk_nodes}.")
    n = int(data.num_nodes)
    csr = CSR.from_edge_index(data.edge_index.cpu(), n)
    was = encoder.training
    encoder.eval()
    try:
        h = data.x
        for layer in encoder.layers:
            out: List[Tensor] = []
            for start in range(0, n, int(chunk_nodes)):
                chunk = torch.arange(start, min(start + int(chunk_nodes), n))
                owner, edge = _edges_of(csr, chunk)
                sources = csr.col[edge]
                nodes = torch.unique(torch.cat([chunk, sources]))  # sorted: positions by searchsorted
                edge_index = torch.stack([torch.searchsorted(nodes, sources), torch.searchsorted(nodes, chunk[owner])])
                device = h.device
                rows = layer(select_rows(h, nodes.to(device)), edge_index.to(device),
                             output_nodes=torch.searchsorted(nodes, chunk).to(device))
                out.append(rows)
            h = torch.cat(out)
        return h
    finally:
        encoder.train(was)
