"""spconv's algorithms, one layer at a time, on CPU and CUDA: the adjoint test <x, dL/dx> = <y, gy>
of a bias-free (so linear) submanifold and strided sparse convolution for each algorithm (Native on
CPU; Native, MaskImplicitGemm and MaskSplitImplicitGemm on CUDA), and each input gradient's
cosine and relative difference against the CPU one. Written to find which side of
benchmarks/gpu_check.py's first sparse failure was wrong (it was the check; docs/results.md).

    OMP_NUM_THREADS=1 python benchmarks/gpu_sparse_algos.py > docs/results/gpu_sparse_algos.json   # needs CUDA
"""
import json, sys, torch
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
from geossl.ops.sparse import SparseConv3d, sparse_tensor, _spconv
sp = _spconv()
torch.backends.cudnn.allow_tf32 = False
torch.backends.cuda.matmul.allow_tf32 = False
grid, C, voxels = 64, 32, 20000
g = torch.Generator().manual_seed(0)
flat = torch.randperm(grid ** 3, generator=g)[:voxels]
idx = torch.stack([torch.zeros_like(flat), flat // grid ** 2, flat // grid % grid, flat % grid], 1)
feats = torch.randn(voxels, C, generator=g)
torch.manual_seed(0)
layers = {"subm": SparseConv3d(C, C, 3, padding=1, subm=True, indice_key="s"),
          "strided": SparseConv3d(C, C, 3, stride=2, padding=1)}
res = {}
for lname, layer in layers.items():
    grads = {}
    for dev, algo in [("cpu", "Native"), ("cuda", "Native"), ("cuda", "MaskImplicitGemm"), ("cuda", "MaskSplitImplicitGemm")]:
        conv = layer.conv.to(dev)
        conv.algo = getattr(sp.ConvAlgo, algo)
        x = feats.detach().to(dev).requires_grad_()
        try:
            y = conv(sparse_tensor(x, idx.to(dev), [grid] * 3, 1))
        except Exception as e:
            res[f"{lname}/{dev}/{algo}"] = f"error {e}"[:300]; continue
        key = (y.indices.long() * torch.tensor([grid ** 3, grid ** 2, grid, 1], device=dev)).sum(1)
        gy = torch.sin(key.double()[:, None] * 0.37 + torch.arange(C, device=dev)[None].double()).float()
        loss = (y.features * gy).sum()
        loss.backward()
        adj = float(((x.detach() * x.grad).sum() - loss.detach()).abs() / loss.detach().abs().clamp_min(1e-12))
        grads[(dev, algo)] = x.grad.detach().cpu()
        res[f"{lname}/{dev}/{algo}"] = {"adjoint_rel": adj, "grad_norm": float(x.grad.norm()), "loss": float(loss),
                                        "out_sites": int(y.features.shape[0])}
        conv.weight.grad = None
    ref = grads.get(("cpu", "Native"))
    for k, v in grads.items():
        if ref is not None:
            res[f"{lname}/{k[0]}/{k[1]}"]["cos_vs_cpu"] = float(torch.nn.functional.cosine_similarity(v.flatten(), ref.flatten(), 0))
            res[f"{lname}/{k[0]}/{k[1]}"]["rel_vs_cpu"] = float((v - ref).norm() / ref.norm())
print(json.dumps(res, indent=1))
