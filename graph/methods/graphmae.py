"""GraphMAE: masked feature reconstruction with a scaled cosine error, and its GraphMAE2 options.

Hou, Liu, Cen, Dong, Yang, Wang, Tang. "GraphMAE: Self-Supervised Masked Graph Autoencoders",
KDD 2022. Reference code: THUDM/GraphMAE.
Hou, He, Cen, Liu, Dong, Kharlamov, Tang. "GraphMAE2: A Decoding-Enhanced Masked Self-Supervised
Graph Learner", WWW 2023. Reference code: THUDM/GraphMAE2.
"""

from __future__ import annotations

import copy
import inspect
from typing import Dict

import torch
from torch import Tensor, nn

from geossl.encoder import Encoder
from geossl.errors import ConfigError
from geossl.method import Method
from geossl.graph.interop import as_pyg, module_device
from geossl.graph.encoders.inputs import CSRRows, MaskedFeatures, TensorMemo
from geossl.graph.losses import scaled_cosine_error
from geossl.graph.masking import sample_node_mask
from geossl.registry import ENCODERS, METHODS


@METHODS.register("graphmae", domain="graph", subgraphs=True)  # trains on sampled subgraphs (sampler=...)
class GraphMAE(Method):
    """GraphMAE for node- and graph-level pretraining.

    One step: mask ``int(mask_rate * N)`` nodes (a ``replace_rate`` share gets other nodes'
    features, the rest are zeroed plus a learnable [MASK] token), encode the corrupted graph, map
    the codes with a bias-free linear layer, re-mask (set the masked nodes' codes to 0), decode
    with a one-layer GNN back to the input width, and score the masked nodes with the scaled
    cosine error.

    GraphMAE2 options (``graph=graphmae2`` selects their defaults):

    * ``remask="random"`` with ``num_remask`` views: instead of zeroing the masked nodes' codes,
      each view replaces a random ``remask_rate`` share of all nodes' codes by a learnable
      decoder [MASK] token and is decoded separately; the views' errors are summed.
    * ``lam > 0``: latent prediction. A target encoder, an exponential moving average
      (``momentum``) of the encoder, embeds the clean graph; a projector + predictor on the
      student's codes of the visible nodes must match the target's projected codes (scaled
      cosine error with exponent 1); the total is ``reconstruction + lam * latent``. The
      target moves towards the student in :meth:`after_step`, which the engine calls after every
      optimiser step. The reference (THUDM/GraphMAE2 ``ema_update``) averages in the student's
      weights as they were in the forward pass, before the optimiser step; so does this method,
      from a copy taken in :meth:`forward`, which keeps the reference's numbers exactly.

    Args:
        encoder: the graph encoder being pretrained (its ``out_dim`` is the code width).
        in_dim: node feature width (the decoder's output width).
        mask_rate: share of nodes masked per step.
        replace_rate: share of masked nodes that receive random nodes' features instead of the token.
        alpha: exponent of the scaled cosine error.
        decoder: registry name of the decoder GNN ("gat" for node tasks, "gin" for graph tasks).
        decoder_heads: attention heads of a GAT decoder.
        remask: "fixed" (GraphMAE: masked nodes' codes set to 0) or "random" (GraphMAE2 views).
        num_remask: number of random re-mask views (``remask="random"`` only).
        remask_rate: share of nodes re-masked in each random view.
        lam: weight of the latent-prediction loss (0 turns it and its target encoder off).
        momentum: EMA momentum of the target encoder and projector (0 copies the student).
        projector_dim: hidden width of the latent projector.
    """

    def __init__(self, encoder: Encoder, in_dim: int, mask_rate: float = 0.5, replace_rate: float = 0.05,
                 alpha: float = 3.0, decoder: str = "gat", decoder_heads: int = 1, remask: str = "fixed",
                 num_remask: int = 1, remask_rate: float = 0.5, lam: float = 0.0, momentum: float = 0.996,
                 projector_dim: int = 256):
        super().__init__()
        if remask not in ("fixed", "random"):
            raise ConfigError(f"Unknown graph.remask {remask!r}. Valid choices: fixed, random.")
        if num_remask < 1 or not 0.0 <= remask_rate <= 1.0 or lam < 0 or not 0.0 <= momentum <= 1.0:
            raise ConfigError(f"GraphMAE needs graph.num_remask >= 1, 0 <= graph.remask_rate <= 1, graph.lam >= 0 and "
                              f"0 <= graph.momentum <= 1; got {num_remask}, {remask_rate}, {lam} and {momentum}.")
        if not 0.0 <= mask_rate <= 1.0 or not 0.0 <= replace_rate <= 1.0:
            raise ConfigError(f"GraphMAE needs 0 <= graph.mask_rate <= 1 and 0 <= graph.replace_rate <= 1; got {mask_rate} "
                              f"and {replace_rate}.")
        self.encoder = encoder
        self.in_dim, self.mask_rate, self.replace_rate, self.alpha = in_dim, mask_rate, replace_rate, alpha
        self.remask, self.num_remask, self.remask_rate = remask, num_remask, remask_rate
        self.lam, self.momentum = lam, momentum
        self.mask_token = nn.Parameter(torch.zeros(1, in_dim))
        self.encoder_to_decoder = nn.Linear(encoder.out_dim, encoder.out_dim, bias=False)
        self.decoder = self._build_decoder(decoder, decoder_heads)
        if remask == "random":
            self.decoder_mask_token = nn.Parameter(torch.zeros(1, encoder.out_dim))
        if lam > 0:
            d = encoder.out_dim
            self.projector = nn.Sequential(nn.Linear(d, projector_dim), nn.PReLU(), nn.Linear(projector_dim, d))
            self.predictor = nn.Sequential(nn.PReLU(), nn.Linear(d, d))
            self.target_encoder = copy.deepcopy(encoder).requires_grad_(False)
            self.target_projector = copy.deepcopy(self.projector).requires_grad_(False)
        self._csr_cache = TensorMemo()

    def _build_decoder(self, name: str, heads: int) -> Encoder:
        """A one-layer decoder GNN from codes to ``in_dim`` features, sharing the encoder's width
        (a GIN decoder's MLP is ``code -> hidden -> in_dim``), dropout, norm and activation."""
        cls = ENCODERS.get(name)
        accepted = inspect.signature(cls.__init__).parameters
        cfg = {k: v for k, v in self.encoder.config().items() if k in accepted}
        cfg.update(in_dim=self.encoder.out_dim, out_dim=self.in_dim, layers=1, last_activation=False)
        if "heads" in accepted:
            cfg.update(heads=heads, out_heads=heads)
        return cls(**cfg)

    def _sparse_features(self, x: Tensor) -> CSRRows:
        """CSR form of ``x``, remembered for the last inputs by a :class:`TensorMemo` (node-level runs pass one graph every step)."""
        return self._csr_cache.get(x, CSRRows.from_dense)

    def forward(self, data) -> Dict[str, Tensor]:
        """Losses for one batch (a PyG ``Data``/``Batch`` or a ``DGLGraph``):
        ``{"loss": total, "sce": reconstruction error[, "latent": latent error]}``."""
        data = as_pyg(data, module_device(self))
        x = data.x
        n = x.shape[0]
        mask = sample_node_mask(n, self.mask_rate, self.replace_rate, device=x.device)
        feats = MaskedFeatures(self._sparse_features(x), mask.source(n), self.mask_token, mask.token_nodes)
        codes = self.encoder(data, feats)
        keep = mask.keep_nodes(n)
        target = self._sparse_features(x).gather_rows(mask.mask_nodes)
        if self.remask == "fixed":
            # Masked nodes' codes are 0, so only the kept rows go through the linear map.
            rep = codes.new_zeros(n, codes.shape[1]).index_copy(0, keep, self.encoder_to_decoder(codes[keep]))
            recon = self.decoder(data, rep, output_nodes=mask.mask_nodes)
            sce = scaled_cosine_error(recon, target, self.alpha)
        else:
            rep = self.encoder_to_decoder(codes)
            sce = codes.new_zeros(())
            for _ in range(self.num_remask):
                remasked = torch.randperm(n, device=x.device)[: int(self.remask_rate * n)]
                view = rep.index_copy(0, remasked, self.decoder_mask_token.expand(len(remasked), -1))
                recon = self.decoder(data, view, output_nodes=mask.mask_nodes)
                sce = sce + scaled_cosine_error(recon, target, self.alpha)
        losses = {"sce": sce.detach()}
        loss = sce
        if self.lam > 0:
            latent = self._latent_loss(data, codes, keep)
            losses["latent"] = latent.detach()
            loss = sce + self.lam * latent
        losses["loss"] = loss
        return losses

    def _latent_loss(self, data, codes: Tensor, keep: Tensor) -> Tensor:
        """GraphMAE2's latent prediction on the visible nodes against the EMA target, then the EMA step."""
        with torch.no_grad():
            self.target_encoder.train(self.encoder.training)  # as the reference: dropout on in training
            n = data.x.shape[0]
            clean = MaskedFeatures(self._sparse_features(data.x), torch.arange(n, device=data.x.device), self.mask_token,
                                   torch.empty(0, dtype=torch.long, device=data.x.device))
            target = self.target_projector(self.target_encoder(data, clean)[keep])
        pred = self.predictor(self.projector(codes[keep]))
        if self.training:  # the student's weights of this step, for after_step's EMA
            self._ema_source = [p.detach().clone() for m in (self.encoder, self.projector) for p in m.parameters()]
        return scaled_cosine_error(pred, target, 1.0)

    @torch.no_grad()
    def after_step(self) -> None:
        """GraphMAE2's EMA: ``target = momentum * target + (1 - momentum) * student`` for the encoder and
        the projector, with the student's weights of the forward pass (see the class docstring)."""
        source = self.__dict__.pop("_ema_source", None)
        if source is None:
            return
        targets = [t for m in (self.target_encoder, self.target_projector) for t in m.parameters()]
        for t, p in zip(targets, source):
            t.mul_(self.momentum).add_(p, alpha=1.0 - self.momentum)


METHODS.alias("graphmae2", "graphmae")
