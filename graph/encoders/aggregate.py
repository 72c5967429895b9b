"""Attention-weighted neighbourhood sums as sparse matrix products.

``out[i, h] = sum_{e: dst_e = i} alpha[e, h] * x[src_e, h]``. Gathering ``x[src]`` per edge
and scattering it back (the textbook way) makes the backward pass an accumulating index-put,
which dominated a GraphMAE epoch on CPU. Here all heads form one block sparse matrix over
(node, head) rows, so the forward pass and the input gradient are each a single CSR
sparse-dense product on the contiguous ``[N * H, D]`` view, and the attention gradient is a
sampled dense-dense product (SDDMM) at the edges only.
"""

from __future__ import annotations

import torch
from torch import Tensor

from geossl.graph.encoders.inputs import csr_tensor


def _head_csr(rows: Tensor, cols: Tensor, values: Tensor, num_rows: int, num_cols: int, heads: int):
    """CSR matrix with entries ``[rows_e * H + h, cols_e * H + h] = values[e, h]``.

    Returns the matrix and the permutation that sorts the flattened ``[E, H]`` entries by row.
    """
    head = torch.arange(heads, device=rows.device)
    row_keys = (rows.unsqueeze(1) * heads + head).reshape(-1)
    col_keys = (cols.unsqueeze(1) * heads + head).reshape(-1)
    order = torch.argsort(row_keys, stable=True)
    crow = torch.zeros(num_rows * heads + 1, dtype=torch.long, device=rows.device)
    torch.cumsum(torch.bincount(row_keys, minlength=num_rows * heads), 0, out=crow[1:])
    matrix = csr_tensor(crow, col_keys[order], values.reshape(-1)[order], (num_rows * heads, num_cols * heads))
    return matrix, order


class _EdgeAggregate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, alpha: Tensor, x: Tensor, src: Tensor, dst: Tensor, num_out: int) -> Tensor:
        # Sparse CSR kernels have no half-precision versions: compute in float32 (or float64).
        ctx.dtypes = (alpha.dtype, x.dtype)
        dtype = torch.promote_types(torch.promote_types(alpha.dtype, x.dtype), torch.float32)
        alpha, x = alpha.to(dtype), x.to(dtype)
        n, heads, width = x.shape
        with torch.autocast(device_type=x.device.type, enabled=False):
            matrix, order = _head_csr(dst, src, alpha, num_out, n, heads)
            flat = x.reshape(n * heads, width) if heads > 1 else x[:, 0]
            out = (matrix @ flat).view(num_out, heads, width)
        ctx.save_for_backward(alpha, x, src, dst)
        ctx.matrix, ctx.order = matrix, order
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        alpha, x, src, dst = ctx.saved_tensors
        n, heads, width = x.shape
        grad_flat = grad.to(x.dtype).reshape(-1, width)
        with torch.autocast(device_type=x.device.type, enabled=False):
            grad_alpha, grad_x = _EdgeAggregate._grads(ctx, alpha, x, src, dst, grad_flat, grad.shape[0])
        return (None if grad_alpha is None else grad_alpha.to(ctx.dtypes[0]),
                None if grad_x is None else grad_x.to(ctx.dtypes[1]), None, None, None)

    @staticmethod
    def _grads(ctx, alpha, x, src, dst, grad_flat, num_out):
        n, heads, width = x.shape
        grad_alpha = grad_x = None
        if ctx.needs_input_grad[0]:
            # SDDMM: grad_alpha[e, h] = <grad[dst_e, h], x[src_e, h]>, sampled at the edges only.
            flat = x.reshape(n * heads, width) if heads > 1 else x[:, 0]
            dots = torch.sparse.sampled_addmm(ctx.matrix, grad_flat, flat.t(), beta=0.0).values()
            grad_alpha = torch.empty_like(dots).index_copy_(0, ctx.order, dots).view_as(alpha)
        if ctx.needs_input_grad[1]:
            matrix_t, _ = _head_csr(src, dst, alpha, n, num_out, heads)
            grad_x = (matrix_t @ grad_flat).view(n, heads, width)
        return grad_alpha, grad_x


def edge_aggregate(alpha: Tensor, x: Tensor, src: Tensor, dst: Tensor, num_out: int) -> Tensor:
    """Weighted sum of source features over in-edges, per head.

    Args:
        alpha: [E, H] edge weights.
        x: [N_src, H, D] source features (with H = 1 it may be an expanded view).
        src: [E] source node of each edge.
        dst: [E] destination row of each edge, in ``[0, num_out)``.
        num_out: number of output rows.

    Returns:
        [num_out, H, D] with ``out[i, h] = sum_{e: dst_e = i} alpha[e, h] * x[src_e, h]``.
    """
    return _EdgeAggregate.apply(alpha, x, src, dst, num_out)
