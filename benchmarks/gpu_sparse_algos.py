"""spconv's algorithms, one layer at a time, on CPU and CUDA: the adjoint test <x, dL/dx> = <y, gy>
of a bias-free (so linear) submanifold and strided sparse convolution for each algorithm (Native on
CPU; Native, MaskImplicitGemm and MaskSplitImplicitGemm on CUDA), and each input gradient's
cosine and relative difference against the CPU one. Written to find which side of
benchmarks/gpu_check.py's first sparse failure was wrong (it was the check; docs/results.md).

    OMP_NUM_THREADS=1 python benchmarks/gpu_sparse_algos.py > docs/results/gpu_sparse_algos.json   # needs CUDA
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import spconv
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from geossl.ops.sparse import SparseConv3d, _spconv, sparse_tensor  # noqa: E402

ALGORITHMS = [("cpu", "Native"), ("cuda", "Native"), ("cuda", "MaskImplicitGemm"), ("cuda", "MaskSplitImplicitGemm")]


def check_layer(conv, feats: torch.Tensor, idx: torch.Tensor, grid: int) -> dict:
    """Per algorithm: the adjoint residual, gradient norm, loss and output sites of ``conv``, and
    its input gradient's cosine / relative difference against the CPU Native one."""
    sp = _spconv()
    res, grads = {}, {}
    for dev, algo in ALGORITHMS:
        conv.to(dev).algo = getattr(sp.ConvAlgo, algo)
        x = feats.detach().to(dev).requires_grad_()
        y = conv(sparse_tensor(x, idx.to(dev), [grid] * 3, 1))
        key = (y.indices.long() * torch.tensor([grid ** 3, grid ** 2, grid, 1], device=dev)).sum(1)
        gy = torch.sin(key.double()[:, None] * 0.37 + torch.arange(feats.shape[1], device=dev)[None].double()).float()
        loss = (y.features * gy).sum()
        loss.backward()
        grads[(dev, algo)] = x.grad.detach().cpu()
        res[f"{dev}/{algo}"] = {"adjoint_rel": float(((x.detach() * x.grad).sum() - loss.detach()).abs() / loss.detach().abs()),
                                "grad_norm": float(x.grad.norm()), "loss": float(loss.detach()), "out_sites": int(y.features.shape[0])}
        conv.weight.grad = None
    ref = grads[ALGORITHMS[0]]
    for (dev, algo), g in grads.items():
        res[f"{dev}/{algo}"]["cos_vs_cpu"] = float(torch.nn.functional.cosine_similarity(g.flatten(), ref.flatten(), 0))
        res[f"{dev}/{algo}"]["rel_vs_cpu"] = float((g - ref).norm() / ref.norm())
    return res


def main() -> None:
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    grid, channels, voxels = 64, 32, 20000
    g = torch.Generator().manual_seed(0)
    flat = torch.randperm(grid ** 3, generator=g)[:voxels]
    idx = torch.stack([torch.zeros_like(flat), flat // grid ** 2, flat // grid % grid, flat % grid], 1)
    feats = torch.randn(voxels, channels, generator=g)
    torch.manual_seed(0)
    layers = {"subm": SparseConv3d(channels, channels, 3, padding=1, subm=True, indice_key="s"),
              "strided": SparseConv3d(channels, channels, 3, stride=2, padding=1)}
    results = {f"{name}/{k}": v for name, layer in layers.items() for k, v in check_layer(layer.conv, feats, idx, grid).items()}
    print(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__, "spconv": spconv.__version__,
                      "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "voxels": voxels, "channels": channels,
                      "grid": grid, "results": results}, indent=1))


if __name__ == "__main__":
    main()
