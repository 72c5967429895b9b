"""GraphMAE: masked feature reconstruction with a scaled cosine error.

Hou, Liu, Cen, Dong, Yang, Wang, Tang. "GraphMAE: Self-Supervised Masked Graph Autoencoders",
KDD 2022. Reference code: THUDM/GraphMAE.
"""

from __future__ import annotations

import inspect
from typing import Dict

import torch
from torch import Tensor, nn

from geossl.encoder import Encoder
from geossl.method import Method
from geossl.graph.encoders.inputs import CSRRows, MaskedFeatures
from geossl.graph.losses import scaled_cosine_error
from geossl.graph.masking import sample_node_mask
from geossl.registry import ENCODERS, METHODS


@METHODS.register("graphmae")
class GraphMAE(Method):
    """GraphMAE for node- and graph-level pretraining.

    One step: mask ``int(mask_rate * N)`` nodes (a ``replace_rate`` share gets other nodes'
    features, the rest are zeroed plus a learnable [MASK] token), encode the corrupted graph, map
    the codes with a bias-free linear layer, re-mask (set the masked nodes' codes to 0), decode
    with a one-layer GNN back to the input width, and score the masked nodes with the scaled
    cosine error.

    Args:
        encoder: the graph encoder being pretrained (its ``out_dim`` is the code width).
        in_dim: node feature width (the decoder's output width).
        mask_rate: share of nodes masked per step.
        replace_rate: share of masked nodes that receive random nodes' features instead of the token.
        alpha: exponent of the scaled cosine error.
        decoder: registry name of the decoder GNN ("gat" for node tasks, "gin" for graph tasks).
        decoder_heads: attention heads of a GAT decoder.
    """

    def __init__(self, encoder: Encoder, in_dim: int, mask_rate: float = 0.5, replace_rate: float = 0.05,
                 alpha: float = 3.0, decoder: str = "gat", decoder_heads: int = 1):
        super().__init__()
        self.encoder = encoder
        self.in_dim, self.mask_rate, self.replace_rate, self.alpha = in_dim, mask_rate, replace_rate, alpha
        self.mask_token = nn.Parameter(torch.zeros(1, in_dim))
        self.encoder_to_decoder = nn.Linear(encoder.out_dim, encoder.out_dim, bias=False)
        self.decoder = self._build_decoder(decoder, decoder_heads)
        self._csr_cache: tuple = ()

    def _build_decoder(self, name: str, heads: int) -> Encoder:
        """A one-layer decoder GNN sharing the encoder's dropout/activation settings."""
        cls = ENCODERS.get(name)
        accepted = inspect.signature(cls.__init__).parameters
        cfg = {k: v for k, v in self.encoder.config().items() if k in accepted}
        cfg.update(in_dim=self.encoder.out_dim, hidden=self.in_dim, out_dim=None, layers=1, last_activation=False)
        if "heads" in accepted:
            cfg.update(heads=heads, out_heads=heads)
        return cls(**cfg)

    def _sparse_features(self, x: Tensor) -> CSRRows:
        """CSR form of ``x``, cached while ``x`` is unchanged (same storage and version)."""
        key = (x.data_ptr(), x._version, tuple(x.shape), x.device)
        if not self._csr_cache or self._csr_cache[0] != key:
            self._csr_cache = (key, CSRRows.from_dense(x))
        return self._csr_cache[1]

    def forward(self, data) -> Dict[str, Tensor]:
        """Losses for one batch: ``{"loss": total, "sce": scaled cosine error}``."""
        x = data.x
        n = x.shape[0]
        mask = sample_node_mask(n, self.mask_rate, self.replace_rate, device=x.device)
        feats = MaskedFeatures(self._sparse_features(x), mask.source(n), self.mask_token, mask.token_nodes)
        codes = self.encoder(data, feats)
        # Re-mask: masked nodes' codes are 0, so only the kept rows go through the linear map.
        keep = mask.keep_nodes(n)
        rep = codes.new_zeros(n, codes.shape[1]).index_copy(0, keep, self.encoder_to_decoder(codes[keep]))
        recon = self.decoder(data, rep, output_nodes=mask.mask_nodes)
        target = self._sparse_features(x).gather_rows(mask.mask_nodes)
        sce = scaled_cosine_error(recon, target, self.alpha)
        return {"loss": sce, "sce": sce.detach()}
