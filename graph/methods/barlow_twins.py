"""Graph Barlow Twins: two corrupted views of a graph whose embeddings' cross-correlation is pulled to the identity.

Bielak, Kajdanowicz, Chawla. "Graph Barlow Twins: A self-supervised representation learning framework for graphs",
Knowledge-Based Systems 256, 2022. Reference code: pbielak/graph-barlow-twins. The loss is Barlow Twins' (Zbontar,
Jing, Misra, LeCun, Deny, ICML 2021).
"""

from __future__ import annotations

import copy
from typing import Dict, Optional

from torch import Tensor

from geossl.encoder import Encoder
from geossl.errors import ConfigError
from geossl.method import Method
from geossl.graph.interop import as_pyg, module_device
from geossl.graph.losses import barlow_twins_loss
from geossl.graph.masking import drop_edges, mask_feature_columns
from geossl.registry import METHODS


@METHODS.register("barlow_twins", domain="graph", subgraphs=True)  # the views are made of whatever graph a step gets
class GraphBarlowTwins(Method):
    """Graph Barlow Twins for node- and graph-level pretraining.

    One step makes two views of the batch's graph, each with its own random feature columns zeroed
    (``feature_drop``, the same columns for every node) and its own random edges dropped (``edge_drop``; self-loops
    stay), embeds both with the shared encoder (no projector: the paper feeds the encoder's output to the loss), and
    scores the Barlow Twins loss over the nodes of the batch: a node is one sample of the cross-correlation. The
    reference trains full-batch on one graph; here the same loss also serves sampled subgraphs (the subgraph's nodes)
    and mini-batches of graphs (all their nodes; a graph-level evaluation pools them afterwards).

    The paper's encoder for transductive graphs is a two-layer GCN, ``GCNConv(F, 2D) -> BatchNorm -> PReLU ->
    GCNConv(2D, D)`` without dropout: ``encoder=gcn encoder.hidden=2D encoder.out_dim=D encoder.norm=batchnorm
    encoder.activation=prelu encoder.last_activation=false encoder.dropout=0`` (``preset/barlow_twins_<dataset>``).

    Args:
        encoder: the graph encoder being pretrained.
        in_dim: node feature width (unused beyond the encoder; kept for the common interface).
        feature_drop: probability of zeroing each feature column in a view (the paper's ``p_x``).
        edge_drop: probability of dropping each edge in a view (the paper's ``p_e``).
        lam: weight of the loss's off-diagonal term; None (null) uses the paper's ``1 / D`` for D-wide embeddings.
    """

    def __init__(self, encoder: Encoder, in_dim: int, feature_drop: float = 0.1, edge_drop: float = 0.5,
                 lam: Optional[float] = None):
        super().__init__()
        if not 0.0 <= feature_drop <= 1.0 or not 0.0 <= edge_drop <= 1.0:
            raise ConfigError(f"Graph Barlow Twins needs 0 <= graph.feature_drop <= 1 and 0 <= graph.edge_drop <= 1; got "
                              f"{feature_drop} and {edge_drop}.")
        if lam is not None and not lam >= 0:
            raise ConfigError(f"graph.lam={lam} must be >= 0 (or null for 1 / embedding width).")
        self.encoder = encoder
        self.feature_drop, self.edge_drop, self.lam = float(feature_drop), float(edge_drop), lam

    def view(self, data):
        """One corrupted view of ``data``: a shallow copy with masked feature columns and dropped edges."""
        out = copy.copy(data)
        out.x = mask_feature_columns(data.x, self.feature_drop)
        out.edge_index = drop_edges(data.edge_index, self.edge_drop)
        return out

    def forward(self, data) -> Dict[str, Tensor]:
        """Losses for one batch (a PyG ``Data``/``Batch`` or a ``DGLGraph``): ``{"loss": Barlow Twins loss}``."""
        data = as_pyg(data, module_device(self))
        a, b = self.view(data), self.view(data)
        z_a = self.encoder(a, a.x)
        z_b = self.encoder(b, b.x)
        return {"loss": barlow_twins_loss(z_a, z_b, self.lam)}
