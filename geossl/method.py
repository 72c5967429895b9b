"""The Method interface: an encoder plus its pretext heads, returning named losses."""

from __future__ import annotations

from typing import Dict

import torch
from torch import Tensor, nn

from geossl.encoder import Encoder


class Method(nn.Module):
    """Base class of pretraining methods.

    A method owns ``self.encoder`` (an :class:`~geossl.encoder.Encoder`) and whatever heads its
    pretext task needs. ``forward(batch)`` returns a dict of named losses whose total is under
    ``"loss"``; it knows nothing of devices, optimisers or loops (that is the engine's job).
    """

    encoder: Encoder

    def forward(self, batch) -> Dict[str, Tensor]:  # pragma: no cover - interface
        raise NotImplementedError(f"{type(self).__name__} must implement forward(batch) -> dict of losses")

    @torch.no_grad()
    def embed(self, batch) -> Tensor:
        """The encoder's features of a clean batch, computed in eval mode."""
        was = self.encoder.training
        self.encoder.eval()
        try:
            return self.encoder(batch)
        finally:
            self.encoder.train(was)
