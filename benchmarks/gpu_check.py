"""The prepared GPU check: our CPU reference rasterizer against gsplat's CUDA rasterizer on the same
inputs (images, alphas, expected depths and the gradients of every input), and spconv's CUDA
algorithm against its CPU Native path (features and gradients of a submanifold and a strided
sparse convolution), with timings of each.

    python benchmarks/gpu_check.py --out docs/results/gpu_check.json     # needs a CUDA GPU and gsplat

Scenes: random Gaussians in front of a camera, and (when $GEOSSL_DATA has it) Gaussians
initialised from 7-Scenes frames as in `geossl fit-gaussians`. Tolerances are stated in the
output; a mismatch exits with status 1. gsplat compiles its CUDA kernels on first use (minutes).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from geossl.ops.rasterize import rasterize_gaussians  # noqa: E402

TOL = {"image": 2e-3, "alpha": 2e-3, "depth": 2e-3, "grad_rel": 5e-2}


def random_scene(n: int, width: int, height: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    f = 0.8 * width
    means = torch.cat([(torch.rand(n, 2, generator=g) - 0.5) * 2.0, 1.5 + 3 * torch.rand(n, 1, generator=g)], 1)
    quats = torch.randn(n, 4, generator=g)
    scales = torch.exp(math.log(0.01) + 1.5 * torch.rand(n, 3, generator=g)) * (10_000 / n) ** (1 / 3)
    opac = 0.1 + 0.85 * torch.rand(n, generator=g)
    cols = torch.rand(n, 3, generator=g)
    K = torch.tensor([[[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]]])
    return [means, quats, scales, opac, cols], torch.eye(4)[None], K


def run(params, V, K, width, height, device, backend):
    ps = [p.to(device).clone().requires_grad_() for p in params]
    img, alpha, _ = rasterize_gaussians(*ps, V.to(device), K.to(device), width, height, render_mode="RGB+ED",
                                        backend=backend)
    g = torch.Generator().manual_seed(1)
    gi = torch.randn(img.shape, generator=g).to(device)
    ga = torch.randn(alpha.shape, generator=g).to(device)
    ((img * gi).sum() + (alpha * ga).sum()).backward()
    return img.detach().cpu(), alpha.detach().cpu(), [p.grad.detach().cpu() for p in ps]


def timed(fn, repeats=3):
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / repeats


def sparse_case(voxels: int, channels: int = 32, grid: int = 128, seed: int = 0, devices=("cpu", "cuda")) -> dict:
    """One submanifold + one strided sparse conv on CPU (Native) and CUDA (MaskImplicitGemm);
    ``devices`` names the reference and the checked device."""
    from geossl.ops.sparse import SparseConv3d, sparse_tensor

    g = torch.Generator().manual_seed(seed)
    flat = torch.randperm(grid ** 3, generator=g)[:voxels]
    idx = torch.stack([torch.zeros_like(flat), flat // grid ** 2, flat // grid % grid, flat % grid], 1)
    feats = torch.randn(voxels, channels, generator=g)
    torch.manual_seed(seed)
    layers = torch.nn.ModuleList([SparseConv3d(channels, channels, 3, padding=1, subm=True, indice_key="s"),
                                  SparseConv3d(channels, channels, 3, stride=2, padding=1)])
    out = {}
    ref_dev, dev = devices
    for device, key in ((ref_dev, "cpu"), (dev, "cuda")):
        net = layers.to(device)
        f = feats.to(device).requires_grad_()

        def step():
            y = net[1](net[0](sparse_tensor(f, idx.to(device), [grid] * 3, 1)))
            return y

        y = step()
        order = torch.argsort((y.indices.long() * torch.tensor([grid ** 3, grid ** 2, grid, 1], device=device)).sum(1))
        (y.features[order] * torch.arange(y.features.numel(), device=device).view_as(y.features).float().sin()).sum().backward()
        out[key] = (y.features[order].detach().cpu(), f.grad.cpu(), [p.grad.detach().cpu().clone() for p in net.parameters()])
        for p in net.parameters():
            p.grad = None
        out[key + "_s"] = timed(lambda: step().features.sum().backward(), 3)
        for p in net.parameters():  # the timing runs accumulated gradients
            p.grad = None
    rel = lambda a, b: float((a - b).norm() / b.norm().clamp_min(1e-12))  # noqa: E731
    case = {"sparse_voxels": voxels, "channels": channels, "rel_features": rel(out["cuda"][0], out["cpu"][0]),
            "rel_grad_input": rel(out["cuda"][1], out["cpu"][1]),
            "rel_grad_weights": max(rel(a, b) for a, b in zip(out["cuda"][2], out["cpu"][2])),
            "cpu_native_fwd_bwd_s": out["cpu_s"], "cuda_fwd_bwd_s": out["cuda_s"]}
    case["pass"] = max(case["rel_features"], case["rel_grad_input"], case["rel_grad_weights"]) <= 1e-3
    return case


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="docs/results/gpu_check.json")
    ap.add_argument("--sizes", nargs="+", type=int, default=[10_000, 100_000])
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device; nothing to check.", file=sys.stderr)
        return 2
    import gsplat

    report = {"device": torch.cuda.get_device_name(), "gsplat": gsplat.__version__, "torch": torch.__version__,
              "tolerances": TOL, "cases": []}
    ok = True
    for n in args.sizes:
        for width, height in [(160, 120), (640, 480)]:
            params, V, K = random_scene(n, width, height)
            ref = run(params, V, K, width, height, "cpu", "torch")
            cuda = run(params, V, K, width, height, "cuda", "gsplat")
            case = {"gaussians": n, "size": f"{width}x{height}",
                    "max_abs_image": float((ref[0][..., :3] - cuda[0][..., :3]).abs().max()),
                    "max_abs_alpha": float((ref[1] - cuda[1]).abs().max())}
            hit = ref[1][..., 0] > 0.5
            case["max_abs_depth_where_alpha>0.5"] = float((ref[0][..., 3][hit] - cuda[0][..., 3][hit]).abs().max()) if hit.any() else 0.0
            for name, a, b in zip(["means", "quats", "scales", "opacities", "colors"], ref[2], cuda[2]):
                case[f"grad_rel_{name}"] = float((a - b).norm() / b.norm().clamp_min(1e-12))
            case["cpu_reference_fwd_bwd_s"] = timed(lambda: run(params, V, K, width, height, "cpu", "torch"), 2)
            case["gsplat_cuda_fwd_bwd_s"] = timed(lambda: run(params, V, K, width, height, "cuda", "gsplat"), 5)
            case["pass"] = (case["max_abs_image"] <= TOL["image"] and case["max_abs_alpha"] <= TOL["alpha"]
                            and case["max_abs_depth_where_alpha>0.5"] <= TOL["depth"]
                            and all(case[f"grad_rel_{k}"] <= TOL["grad_rel"] for k in ["means", "quats", "scales", "opacities", "colors"]))
            ok &= case["pass"]
            report["cases"].append(case)
            print(json.dumps(case), flush=True)
    for voxels in (50_000, 200_000):
        case = sparse_case(voxels)
        ok &= case["pass"]
        report["cases"].append(case)
        print(json.dumps(case), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"gpu_check: {'PASS' if ok else 'FAIL'} -> {args.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
