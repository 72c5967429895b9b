"""Sparse 3D convolution on spconv (Yan et al., "SECOND", 2018; spconv 2.x), one layer type for
CPU and CUDA.

On CPU spconv is only correct with ``ConvAlgo.Native`` (ANCHORS: checked against a dense
``conv3d``) and its fused bias fails in eval mode, so every layer here has no bias (follow it with
a norm layer) and picks its algorithm from the input's device at each call: ``Native`` on CPU,
``MaskImplicitGemm`` on CUDA. Callers never branch on the device.

Indices are ``[M, 4]`` rows ``(batch, z, y, x)``. spconv silently misreads index tensors that are
not contiguous int32 (``nonzero().int()`` gives such a tensor); ``sparse_tensor`` always hands it
a contiguous int32 copy and checks the coordinates against the grid.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from geossl.errors import GeosslError


class SparseInputError(GeosslError, ValueError):
    """A sparse tensor that cannot be built: NaN features, coordinates outside the grid, bad shapes."""


class _NoFxTracingNote:
    """Drops torch.fx's note that ``is_fx_tracing`` also answers for torch.export, which spconv's layers ask
    about on every call: harmless to a user of geossl, and printed to their terminal otherwise."""

    def filter(self, record) -> bool:
        return "is_fx_tracing will return true" not in record.getMessage()


def _spconv():
    import logging
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # spconv 2.3.x uses torch.cuda.amp decorators
        import spconv.pytorch as spconv
    fx_log = logging.getLogger("torch.fx._symbolic_trace")
    if not any(isinstance(f, _NoFxTracingNote) for f in fx_log.filters):
        fx_log.addFilter(_NoFxTracingNote())
    return spconv


def sparse_tensor(features: Tensor, indices: Tensor, spatial_shape: Sequence[int], batch_size: int):
    """An ``spconv.SparseConvTensor`` from ``features`` ``[M, C]`` at ``indices`` ``[M, 4]``
    (batch, z, y, x) in a grid of ``spatial_shape`` (z, y, x), after checking the inputs."""
    if indices.dim() != 2 or indices.shape[1] != 4 or features.dim() != 2 or features.shape[0] != indices.shape[0]:
        raise SparseInputError(f"features must be [M, C] and indices [M, 4] (batch, z, y, x); got {list(features.shape)} "
                               f"and {list(indices.shape)}.")
    if not torch.isfinite(features).all():
        raise SparseInputError("features contain NaN or inf.")
    if len(indices):
        lo, hi = indices[:, 1:].min(0).values, indices[:, 1:].max(0).values
        shape = torch.as_tensor(list(spatial_shape), device=indices.device)
        if (lo < 0).any() or (hi >= shape).any():
            raise SparseInputError(f"voxel coordinates span {lo.tolist()}..{hi.tolist()}, outside the grid "
                                   f"{list(spatial_shape)}: the scene is larger than the configured grid.")
        if indices[:, 0].min() < 0 or indices[:, 0].max() >= batch_size:
            raise SparseInputError(f"batch indices must lie in [0, {batch_size}).")
    return _spconv().SparseConvTensor(features.contiguous(), indices.to(torch.int32).contiguous(),
                                      [int(s) for s in spatial_shape], int(batch_size))


class SparseConv3d(nn.Module):
    """A sparse 3D convolution without bias.

    Args:
        in_channels, out_channels: feature widths.
        kernel_size, stride, padding: as for ``nn.Conv3d``.
        subm: submanifold convolution (outputs only at the input sites; stride 1).
        inverse: the inverse of the strided convolution registered under ``indice_key``
            (restores its input sites).
        indice_key: name under which the layer's site pairs are cached in the sparse tensor, so
            that layers sharing it (or an inverse) reuse them.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, padding: int = 0,
                 subm: bool = False, inverse: bool = False, indice_key: Optional[str] = None):
        super().__init__()
        sp = _spconv()
        if inverse:
            self.conv = sp.SparseInverseConv3d(in_channels, out_channels, kernel_size, bias=False, indice_key=indice_key,
                                               algo=sp.ConvAlgo.Native)
        elif subm:
            self.conv = sp.SubMConv3d(in_channels, out_channels, kernel_size, stride=1, padding=padding, bias=False,
                                      indice_key=indice_key, algo=sp.ConvAlgo.Native)
        else:
            self.conv = sp.SparseConv3d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False,
                                        indice_key=indice_key, algo=sp.ConvAlgo.Native)

    @property
    def weight(self) -> Tensor:
        """``[out, kz, ky, kx, in]`` (spconv's KRSC layout)."""
        return self.conv.weight

    def forward(self, x):
        sp = _spconv()
        self.conv.algo = sp.ConvAlgo.MaskImplicitGemm if x.features.is_cuda else sp.ConvAlgo.Native
        return self.conv(x)
