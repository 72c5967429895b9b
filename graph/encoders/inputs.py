"""The first linear map of every graph encoder, aware of sparse and masked node features.

Bag-of-words node features (Cora: 98.7% zeros) make ``x @ W`` the most expensive product of a
GraphMAE epoch when done densely. :func:`project_features` computes ``dropout(x) @ W.T`` for

* a dense tensor (plain matmul),
* a :class:`MaskedFeatures`: the GraphMAE corruption ``x' = x[source] (zero where source<0)
  + 1[token rows] * token``. The row-gathered part is multiplied as a sparse CSR matrix; the
  token rows are ``dropout(token) @ W.T`` with a hand-written backward that shares one product
  between the weight and the token gradients. The result equals the dense computation
  (tested against it), with the same dropout distribution.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import Tensor

from geossl.ops import dropout as apply_dropout
from geossl.ops import dropout_mask


def csr_tensor(crow: Tensor, col: Tensor, val: Tensor, shape) -> Tensor:
    """``torch.sparse_csr_tensor`` without invariant checks (the callers build valid indices) and without
    torch's "Sparse CSR tensor support is in beta state" warning, which these uses need not show a user."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, col, val, shape, check_invariants=False)


@dataclass
class CSRRows:
    """A sparse matrix in CSR form built for fast row gathers and ``A @ W`` / ``A.T @ G``.

    Attributes:
        crow: row pointers, shape [N+1].
        col: column of each stored value, shape [nnz].
        val: stored values, shape [nnz].
        shape: (rows, cols).
    """

    crow: Tensor
    col: Tensor
    val: Tensor
    shape: tuple

    @classmethod
    def from_dense(cls, x: Tensor) -> "CSRRows":
        """From a dense tensor, or a torch sparse CSR tensor (taken as it is)."""
        if x.layout == torch.sparse_csr:
            return cls(x.crow_indices(), x.col_indices(), x.values().detach(), tuple(x.shape))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            csr = x.detach().to_sparse_csr()
        return cls(csr.crow_indices(), csr.col_indices(), csr.values(), tuple(x.shape))

    def gather_rows(self, source: Tensor) -> "CSRRows":
        """Rows ``source[i]`` of this matrix (an all-zero row where ``source[i] < 0``)."""
        lengths = self.crow[1:] - self.crow[:-1]
        valid = source >= 0
        safe = source.clamp(min=0)
        new_len = torch.where(valid, lengths[safe], torch.zeros_like(safe))
        crow = torch.zeros(source.numel() + 1, dtype=self.crow.dtype, device=source.device)
        torch.cumsum(new_len, 0, out=crow[1:])
        total = int(crow[-1])
        starts = torch.repeat_interleave(self.crow[:-1][safe], new_len, output_size=total)
        offsets = torch.arange(total, device=source.device) - torch.repeat_interleave(crow[:-1], new_len, output_size=total)
        idx = starts + offsets
        return CSRRows(crow, self.col[idx], self.val[idx], (source.numel(), self.shape[1]))

    def with_values(self, val: Tensor) -> "CSRRows":
        return CSRRows(self.crow, self.col, val, self.shape)

    def torch_csr(self) -> Tensor:
        return csr_tensor(self.crow, self.col, self.val, self.shape)

    def transpose_csr(self) -> Tensor:
        """``A.T`` as a torch CSR tensor (columns become rows)."""
        rows = torch.repeat_interleave(
            torch.arange(self.shape[0], device=self.col.device), self.crow[1:] - self.crow[:-1], output_size=self.col.numel()
        )
        order = torch.argsort(self.col, stable=True)
        crow = torch.zeros(self.shape[1] + 1, dtype=self.crow.dtype, device=self.col.device)
        torch.cumsum(torch.bincount(self.col, minlength=self.shape[1]), 0, out=crow[1:])
        return csr_tensor(crow, rows[order], self.val[order], (self.shape[1], self.shape[0]))

    def to_dense(self) -> Tensor:
        return self.torch_csr().to_dense()


def select_rows(x: Tensor, nodes: Tensor) -> Tensor:
    """``x[nodes]`` for dense node features or a torch sparse CSR tensor (which stays sparse)."""
    if x.layout == torch.sparse_csr:
        return CSRRows.from_dense(x).gather_rows(nodes).torch_csr()
    return x[nodes]


def float32_only(device_type: str):
    """Turn autocast off inside a custom autograd function: sparse CSR kernels (MKL's addmm, SDDMM)
    have no bfloat16/half versions, so these functions compute in float32 under mixed precision."""
    return torch.autocast(device_type=device_type, enabled=False)


class _SparseLinear(torch.autograd.Function):
    """``A @ Wt`` for a constant CSR matrix ``A``; gradient only to ``Wt`` (= ``A.T @ G``)."""

    @staticmethod
    def forward(ctx, weight_t: Tensor, a: CSRRows) -> Tensor:
        ctx.a, ctx.dtype = a, weight_t.dtype
        with float32_only(weight_t.device.type):
            return a.torch_csr() @ weight_t

    @staticmethod
    def backward(ctx, grad: Tensor):
        with float32_only(grad.device.type):
            return ctx.a.transpose_csr() @ grad.to(ctx.dtype), None


class _TokenRowsLinear(torch.autograd.Function):
    """``(keep * token) @ Wt`` for a [T, F] scaled dropout mask ``keep`` (values 0 or 1/(1-p)).

    Backward: with ``P = keep.T @ G`` ([F, out]), ``dWt = token[:, None] * P`` and
    ``dtoken = (P * Wt).sum(1)``: one [F, T] x [T, out] product serves both gradients.
    """

    @staticmethod
    def forward(ctx, token: Tensor, weight_t: Tensor, keep: Tensor) -> Tensor:
        ctx.save_for_backward(token, weight_t, keep)
        with float32_only(weight_t.device.type):
            return (keep * token) @ weight_t

    @staticmethod
    def backward(ctx, grad: Tensor):
        token, weight_t, keep = ctx.saved_tensors
        with float32_only(grad.device.type):
            p = keep.t() @ grad.to(keep.dtype)
        grad_token = (p * weight_t).sum(1).view_as(token) if ctx.needs_input_grad[0] else None
        grad_weight = token.reshape(-1, 1) * p if ctx.needs_input_grad[1] else None
        return grad_token, grad_weight, None


@dataclass
class MaskedFeatures:
    """Node features corrupted the GraphMAE way, kept in factored form.

    The dense equivalent (:meth:`to_dense`) is ``x[source]`` (zero rows where ``source < 0``)
    plus ``token`` added to the rows ``token_index``.

    Attributes:
        x: the clean features [N, F] (dense), or a :class:`CSRRows` of them.
        source: [N] row of ``x`` each node reads; -1 for a zeroed (token) row.
        token: the learnable [1, F] mask token.
        token_index: [T] nodes that receive the token (their ``source`` is -1).
    """

    x: Tensor | CSRRows
    source: Tensor
    token: Tensor
    token_index: Tensor

    @property
    def num_nodes(self) -> int:
        return self.source.numel()

    def to_dense(self) -> Tensor:
        x = self.x.to_dense() if isinstance(self.x, CSRRows) else self.x
        out = torch.where((self.source >= 0)[:, None], x[self.source.clamp(min=0)], torch.zeros((), dtype=x.dtype, device=x.device))
        return out.index_add(0, self.token_index, self.token.expand(self.token_index.numel(), -1))


def project_features(x: Tensor | MaskedFeatures, weight: Tensor, dropout: float = 0.0, training: bool = False) -> Tensor:
    """``dropout(x) @ weight.T`` for dense, sparse CSR or :class:`MaskedFeatures` node features.

    Args:
        x: node features (a dense or torch sparse CSR tensor, or :class:`MaskedFeatures`).
        weight: [out, F] weight of a bias-free linear map.
        dropout: input dropout probability (applied only when ``training``).
        training: whether dropout is active.
    """
    p = dropout if training else 0.0
    if isinstance(x, Tensor) and x.layout != torch.sparse_csr:
        return apply_dropout(x, p, training=p > 0) @ weight.t()
    if isinstance(x, Tensor):  # sparse CSR features: every row as it is, no token
        rows = CSRRows.from_dense(x)
        if p > 0:
            rows = rows.with_values(apply_dropout(rows.val, p))
        return _SparseLinear.apply(weight.t(), rows)
    csr = x.x if isinstance(x.x, CSRRows) else CSRRows.from_dense(x.x)
    rows = csr.gather_rows(x.source)
    if p > 0:
        rows = rows.with_values(apply_dropout(rows.val, p))
    weight_t = weight.t()
    out = _SparseLinear.apply(weight_t, rows)
    if x.token_index.numel() == 0:
        return out
    if p > 0:
        keep = dropout_mask((x.token_index.numel(), x.token.shape[1]), p, weight.device, weight.dtype)
        token_rows = _TokenRowsLinear.apply(x.token, weight_t, keep)
    else:
        token_rows = (x.token @ weight_t).expand(x.token_index.numel(), -1)
    return out.index_add(0, x.token_index, token_rows)


class TensorMemo:
    """``build(x)`` remembered for the last ``size`` tensors ``x`` asked about, each while it is
    the same object at the same version (and ``key`` is the same).

    Two entries by default because training alternates two inputs: a corrupted copy of the
    features for the training step and the clean features for the validation pass (SelfTask's
    attribute_mask); a one-entry memo rebuilt both every epoch.

    The memo holds ``x`` itself: keyed on the storage address instead, a new tensor allocated
    where a freed one lived would be served the freed one's result.
    """

    def __init__(self, size: int = 2):
        if size < 1:
            raise ValueError(f"TensorMemo size must be at least 1, got {size}")
        self.size = size
        self._entries: list[tuple] = []  # most recently used last

    def get(self, x: Tensor, build, key=None):
        for i, entry in enumerate(self._entries):
            if entry[0] is x and entry[1] == x._version and entry[2] == key:
                self._entries.append(self._entries.pop(i))
                return entry[3]
        # entries for an older version of this tensor (it was written in place) can never match again
        self._entries = [e for e in self._entries if e[0] is not x or e[1] == x._version]
        entry = (x, x._version, key, build(x))
        self._entries = (self._entries + [entry])[-self.size:]
        return entry[3]
