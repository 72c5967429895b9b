"""The prepared GPU check: our CPU reference rasterizer against gsplat's CUDA rasterizer on the same
inputs (images, alphas, expected depths and the gradients of every input), spconv's CUDA
algorithm against its CPU Native path (features and gradients of a submanifold and a strided
sparse convolution), and the scene paths on CUDA (Gaussian fitting to a room's views, a Point-MAE
step, 300 Gaussian2Scene stage-2 steps, 100 more on view crops: ``--parts scene``, not yet run on a
GPU), with timings of each.

    python benchmarks/gpu_check.py --parts sparse --out docs/results/gpu_check_sparse.json
    python benchmarks/gpu_check.py --parts rasterize --out docs/results/gpu_check_rasterize.json
    python benchmarks/gpu_check.py --render docs/results/gpu_check_*.json     # the docs/results.md section

Both need a CUDA GPU; ``rasterize`` also needs gsplat, which compiles its CUDA kernels on first
use (minutes). The recorded sparse run used ``OMP_NUM_THREADS=1`` for spconv's CPU side (the
CPU-only spconv wheel is wrong with several threads, ANCHORS.md). Scenes are random Gaussians in front of one or two cameras. Tolerances are stated
in the output; the report is rewritten after every case, so a run cut short keeps what it
measured. A mismatch exits with status 1.
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

# Per pixel, both compositors skip a Gaussian whose alpha is below 1/255, so a Gaussian at that cut-off
# can be composited by one and skipped by the other (float32, gsplat's fast-math exp): one such flip moves
# a colour or alpha by up to 1/255 and an expected depth (here 1.5-4.5 m, alpha > 0.5) by a few cm. The
# first run on a GPU used 2e-3 for all three and missed it on one case by 0.26e-3 (image) and 0.9e-3
# (depth), with no pixel off by more than 1/255 (docs/rendering.md).
TOL = {"image": 1 / 255, "alpha": 1 / 255, "depth": 1e-2, "grad_rel": 5e-2}
#: The rasterizer inputs whose gradients are compared, in ``run``'s order.
GRAD_NAMES = ["means", "quats", "scales", "opacities", "colors"]


def random_scene(n: int, width: int, height: int, seed: int = 0, sh_degree=None, cameras: int = 1):
    """``n`` random Gaussians 1.5-4.5 m in front of ``cameras`` pinhole cameras (the first at the
    origin looking down +z, each next one 0.3 m to the side and turned 0.1 rad about y); colours are
    RGB in [0, 1], or SH coefficients ``[n, (sh_degree + 1)^2, 3]`` when ``sh_degree`` is given."""
    g = torch.Generator().manual_seed(seed)
    f = 0.8 * width
    means = torch.cat([(torch.rand(n, 2, generator=g) - 0.5) * 2.0, 1.5 + 3 * torch.rand(n, 1, generator=g)], 1)
    quats = torch.randn(n, 4, generator=g)
    scales = torch.exp(math.log(0.01) + 1.5 * torch.rand(n, 3, generator=g)) * (10_000 / n) ** (1 / 3)
    opac = 0.1 + 0.85 * torch.rand(n, generator=g)
    if sh_degree is None:
        cols = torch.rand(n, 3, generator=g)
    else:
        cols = 0.3 * torch.randn(n, (sh_degree + 1) ** 2, 3, generator=g)
    K = torch.tensor([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]]).expand(cameras, 3, 3).clone()
    V = torch.eye(4).repeat(cameras, 1, 1)
    for c in range(1, cameras):
        a = 0.1 * c
        V[c, :3, :3] = torch.tensor([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
        V[c, 0, 3] = -0.3 * c
    return [means, quats, scales, opac, cols], V, K


def run(params, V, K, width, height, device, backend, sh_degree=None, backgrounds=None):
    ps = [p.to(device).clone().requires_grad_() for p in params]
    bg = backgrounds.to(device) if backgrounds is not None else None
    img, alpha, _ = rasterize_gaussians(*ps, V.to(device), K.to(device), width, height, render_mode="RGB+ED",
                                        backend=backend, sh_degree=sh_degree, backgrounds=bg)
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
        f = feats.detach().to(device).requires_grad_()  # a fresh leaf on each device

        def step():
            y = net[1](net[0](sparse_tensor(f, idx.to(device), [grid] * 3, 1)))
            return y

        y = step()
        order = torch.argsort((y.indices.long() * torch.tensor([grid ** 3, grid ** 2, grid, 1], device=device)).sum(1))
        loss = (y.features[order] * torch.arange(y.features.numel(), device=device).view_as(y.features).float().sin()).sum()
        loss.backward()
        # the layers are linear (no bias), so <f, dloss/df> = loss: a check of each device's input gradient on its own
        out[key + "_adjoint"] = float(((f.detach() * f.grad).sum() - loss.detach()).abs() / loss.detach().abs())
        # clone: on CPU .cpu() is the same tensor, and the timing runs below accumulate into f.grad in place
        out[key] = (y.features[order].detach().cpu().clone(), f.grad.detach().cpu().clone(),
                    [p.grad.detach().cpu().clone() for p in net.parameters()])
        for p in net.parameters():
            p.grad = None
        out[key + "_s"] = timed(lambda: step().features.sum().backward(), 3)
        for p in net.parameters():  # the timing runs accumulated gradients
            p.grad = None
    rel = lambda a, b: float((a - b).norm() / b.norm().clamp_min(1e-12))  # noqa: E731
    case = {"sparse_voxels": voxels, "channels": channels, "rel_features": rel(out["cuda"][0], out["cpu"][0]),
            "rel_grad_input": rel(out["cuda"][1], out["cpu"][1]),
            "rel_grad_weights": max(rel(a, b) for a, b in zip(out["cuda"][2], out["cpu"][2])),
            "adjoint_rel_cpu": out["cpu_adjoint"], "adjoint_rel_cuda": out["cuda_adjoint"],
            "cpu_native_fwd_bwd_s": out["cpu_s"], "cuda_fwd_bwd_s": out["cuda_s"]}
    case["pass"] = max(case["rel_features"], case["rel_grad_input"], case["rel_grad_weights"], case["adjoint_rel_cpu"],
                       case["adjoint_rel_cuda"]) <= 1e-3
    return case


def rasterize_case(n: int, width: int, height: int, sh_degree=None, backgrounds=None, cameras: int = 1, scenes: int = 1) -> dict:
    """One scene (or a batch of ``scenes`` scenes, ``[scenes, n, ...]`` in one call) rendered by our CPU reference
    and by gsplat on CUDA: colours, alphas, expected depths and every input's gradient compared, then both timed."""
    params, V, K = random_scene(n, width, height, sh_degree=sh_degree, cameras=cameras)
    if scenes > 1:
        batch = [random_scene(n, width, height, seed=s, sh_degree=sh_degree, cameras=cameras) for s in range(scenes)]
        params = [torch.stack([b[0][i] for b in batch]) for i in range(len(params))]
        V, K = torch.stack([b[1] for b in batch]), torch.stack([b[2] for b in batch])
    kw = {"sh_degree": sh_degree, "backgrounds": backgrounds}
    ref = run(params, V, K, width, height, "cpu", "torch", **kw)
    new = run(params, V, K, width, height, "cuda", "gsplat", **kw)
    colour = (ref[0][..., :3] - new[0][..., :3]).abs()
    features = ("RGB" if sh_degree is None else f"SH degree {sh_degree}") + f", {cameras} camera{'s' if cameras > 1 else ''}" \
        + (f" x {scenes} scenes in one call" if scenes > 1 else "")
    case = {"gaussians": n, "size": f"{width}x{height}", "features": features + (", backgrounds" if backgrounds is not None else ""),
            "max_abs_image": float(colour.max()), "mean_abs_image": float(colour.mean()),
            "pixels_image_diff_over_1/255": int((colour > 1 / 255).sum()), "max_abs_alpha": float((ref[1] - new[1]).abs().max())}
    hit = ref[1][..., 0] > 0.5
    case["max_abs_depth_where_alpha>0.5"] = float((ref[0][..., 3][hit] - new[0][..., 3][hit]).abs().max()) if hit.any() else 0.0
    for name, a, b in zip(GRAD_NAMES, ref[2], new[2]):
        case[f"grad_rel_{name}"] = float((a - b).norm() / b.norm().clamp_min(1e-12))
    case["cpu_reference_fwd_bwd_s"] = timed(lambda: run(params, V, K, width, height, "cpu", "torch", **kw), 2)
    case["gsplat_cuda_fwd_bwd_s"] = timed(lambda: run(params, V, K, width, height, "cuda", "gsplat", **kw), 5)
    case["pass"] = (case["max_abs_image"] <= TOL["image"] and case["max_abs_alpha"] <= TOL["alpha"]
                    and case["max_abs_depth_where_alpha>0.5"] <= TOL["depth"]
                    and all(case[f"grad_rel_{k}"] <= TOL["grad_rel"] for k in GRAD_NAMES))
    return case


def rasterize_cases(sizes):
    """gsplat (CUDA) against our CPU reference: plain RGB from one camera per scene size and image
    size, then SH colours (degree 3) seen by two cameras over two backgrounds, then a batch of 8 scenes with 3
    cameras each rendered in one call."""
    for n in sizes:
        for width, height in [(160, 120), (640, 480)]:
            yield rasterize_case(n, width, height)
    yield rasterize_case(sizes[0], 320, 240, sh_degree=3, cameras=2, backgrounds=torch.tensor([[0.2, 0.4, 0.6], [1.0, 1.0, 1.0]]))
    yield rasterize_case(8192, 160, 120, cameras=3, scenes=8)  # a Gaussian2Scene stage-2 batch (CPU preset's size)


def scene_fit_case(steps: int = 200, seed: int = 2) -> dict:
    """``fit_gaussians`` on a procedural room's ray-cast views, the same seed on CPU (compiled compositor)
    and on CUDA (gsplat): the initial render of the held-out view must agree (same Gaussians, two rasterizers),
    and both fits must improve it. Records seconds per step of each."""
    from geossl.gaussians.fit import FitConfig, fit_gaussians
    from geossl.pointcloud.rooms import make_room

    frames = make_room(seed, num_views=8, width=160, height=120)["frames"].frames
    cfg = FitConfig(iterations=steps, eval_every=steps, voxel=0.05)
    out = {"case": "scene_fit", "steps": steps, "frames": len(frames)}
    for device in ("cpu", "cuda"):
        t0 = time.perf_counter()
        r = fit_gaussians(frames[1:], frames[:1], cfg, device=device)
        out[device] = {"psnr_init": r.history[0]["psnr"], "psnr_final": r.history[-1]["psnr"], "gaussians": len(r.gaussians),
                       "s_per_step": (time.perf_counter() - t0) / steps}
    out["init_psnr_diff"] = abs(out["cpu"]["psnr_init"] - out["cuda"]["psnr_init"])
    out["pass"] = out["init_psnr_diff"] < 0.05 and all(out[d]["psnr_final"] > out[d]["psnr_init"] for d in ("cpu", "cuda"))
    return out


def scene_pretrain_case(steps: int = 50, overrides=(), name: str = "scene_pretrain", tolerance: float = 1e-3) -> dict:
    """A scene method's step (Point-MAE by default; CPU preset) on one fixed batch of 8 rooms: the loss on CPU and
    on CUDA with the same weights and masks, then the CUDA step time through the same method. With
    ``scene=gaussian2scene scene.stage1_epochs=0`` every step is a stage-2 step, rendered by gsplat on CUDA and by
    the compiled compositor on CPU."""
    from geossl.pipeline import build_method, configure
    from geossl.points import collate

    overrides = list(overrides)
    if not any(o.startswith("scene=") for o in overrides):
        overrides.insert(0, "scene=pointmae")
    _, cfg, adapter = configure("pretrain", ["dataset=rooms", *overrides])
    data = adapter.load_dataset(cfg)
    batch = collate([data.split("train")[(i, i)] for i in range(8)])
    torch.manual_seed(0)
    method = build_method(cfg, adapter, data).eval()
    losses = {}
    for device in ("cpu", "cuda"):
        torch.manual_seed(1)
        with torch.no_grad():
            losses[device] = float(method.to(device)(batch.to(device))["loss"])
    method.train()
    opt = torch.optim.AdamW(method.parameters(), lr=1e-3)

    def step():
        loss = method(batch.to("cuda"))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    rel = abs(losses["cpu"] - losses["cuda"]) / abs(losses["cpu"])
    seconds = (time.perf_counter() - t0) / steps
    return {"case": name, "loss_cpu": losses["cpu"], "loss_cuda": losses["cuda"], "rel_diff": rel, "cuda_s_per_step": seconds,
            "cuda_steps_per_s": 1.0 / seconds, "steps": steps, "pass": rel < tolerance}


def _e(key):
    return lambda c: f"{c[key]:.1e}"


def _ratio(slow, fast):
    return lambda c: f"{c[slow] / c[fast]:.0f}x"


#: (heading, cell of a case) for the tables of rasterize and sparse cases
RASTER_COLUMNS = [("Gaussians", lambda c: f"{c['gaussians']:,}"), ("image", lambda c: c["size"]),
                  ("colours, cameras", lambda c: c.get("features", "RGB, 1 camera")),  # the first run had only these
                  ("max abs Δ colour", _e("max_abs_image")), ("mean abs Δ colour", _e("mean_abs_image")),
                  ("max abs Δ alpha", _e("max_abs_alpha")), ("max abs Δ ED (alpha > 0.5)", _e("max_abs_depth_where_alpha>0.5")),
                  ("max rel Δ grad", lambda c: f"{max(v for k, v in c.items() if k.startswith('grad_rel_')):.1e}"),
                  ("CPU reference s", lambda c: f"{c['cpu_reference_fwd_bwd_s']:.3f}"),
                  ("gsplat s", lambda c: f"{c['gsplat_cuda_fwd_bwd_s']:.4f}"),
                  ("ratio", _ratio("cpu_reference_fwd_bwd_s", "gsplat_cuda_fwd_bwd_s")),
                  ("pass", lambda c: "yes" if c["pass"] else "NO")]
SPARSE_COLUMNS = [("voxels", lambda c: f"{c['sparse_voxels']:,}"), ("channels", lambda c: str(c["channels"])),
                  ("rel Δ features", _e("rel_features")), ("rel Δ input grad", _e("rel_grad_input")),
                  ("rel Δ weight grads", _e("rel_grad_weights")), ("adjoint CPU", _e("adjoint_rel_cpu")),
                  ("adjoint CUDA", _e("adjoint_rel_cuda")), ("CPU Native s", lambda c: f"{c['cpu_native_fwd_bwd_s']:.3f}"),
                  ("CUDA s", lambda c: f"{c['cuda_fwd_bwd_s']:.4f}"), ("ratio", _ratio("cpu_native_fwd_bwd_s", "cuda_fwd_bwd_s")),
                  ("pass", lambda c: "yes" if c["pass"] else "NO")]


RUN_COLUMNS = [*[(k, lambda c, k=k: str(c[k])) for k in ("method", "dataset", "seed", "device", "torch", "epochs")],
               ("test acc (%)", lambda c: f"{100 * c['test_acc']:.1f}"), ("val acc (%)", lambda c: f"{100 * c['val_acc']:.1f}"),
               ("s/epoch", lambda c: f"{c['seconds_per_epoch']:.4f}"), ("pretrain s", lambda c: f"{c['pretrain_seconds']:.0f}")]


def _table(columns, cases) -> list:
    """A markdown table of ``cases`` (none: no lines)."""
    if not cases:
        return []
    return (["| " + " | ".join(h for h, _ in columns) + " |", "|" + "---|" * len(columns)]
            + ["| " + " | ".join(cell(c) for _, cell in columns) + " |" for c in cases] + [""])


def render(paths, note: str = "") -> str:
    """The ``gpu_check`` section of docs/results.md from the reports this script wrote (no GPU needed)."""
    from _report import write_section

    lines = ["## GPU runs: gsplat and spconv against the CPU paths; GraphMAE training on CUDA", ""]
    for path in paths:
        r = json.loads(Path(path).read_text())
        if "runs" in r:  # summaries of `geossl pretrain` runs made on the GPU
            lines += [f"`{path}`: `{r['command']}` on {r['device']}" + (f" ({r['note']})" if r.get("note") else "") + ".", ""]
            lines += _table(RUN_COLUMNS, r["runs"])
            continue
        lines.append(f"`{path}`: {r['device']}, torch {r['torch']} (CUDA {r['cuda']}), {r['torch_threads']} CPU "
                     f"thread(s) for the CPU side" + (f", OMP_NUM_THREADS={r['OMP_NUM_THREADS']}" if r.get("OMP_NUM_THREADS") else "")
                     + (f", spconv {r['spconv']}" if "spconv" in r else "")
                     + (f", gsplat {r['gsplat']} (its JIT build took {r['gsplat_load_s']:.0f} s), CPU compositor "
                        f"{r['cpu_compositor']}" if "gsplat" in r else "") + ".")
        lines.append("")
        lines += _table(RASTER_COLUMNS, [c for c in r["cases"] if "gaussians" in c])
        lines += _table(SPARSE_COLUMNS, [c for c in r["cases"] if "sparse_voxels" in c])
    lines.append(f"Tolerances: {json.dumps({k: round(v, 5) for k, v in TOL.items()})}; sparse: every relative "
                 "difference and adjoint residual <= 1e-3. Times are forward + backward, the mean of repeats after a warm-up.")
    if note:
        lines += ["", note]
    body = "\n".join(lines)
    write_section("gpu_check", body)
    return body


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="docs/results/gpu_check.json")
    ap.add_argument("--render", nargs="+", metavar="REPORT", help="write the docs/results.md section from these reports and stop")
    ap.add_argument("--note", default="", help="with --render: a paragraph under the tables")
    ap.add_argument("--parts", nargs="+", choices=["sparse", "rasterize", "scene"], default=["sparse", "rasterize", "scene"])
    ap.add_argument("--sizes", nargs="+", type=int, default=[10_000, 100_000], help="Gaussians per rasterize case")
    ap.add_argument("--voxels", nargs="+", type=int, default=[50_000, 200_000], help="active voxels per sparse case")
    args = ap.parse_args()
    if args.render:
        print(render(args.render, args.note))
        return 0
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device; nothing to check.", file=sys.stderr)
        return 2
    import os

    report = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "cuda": torch.version.cuda,
              "torch_threads": torch.get_num_threads(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
              "tolerances": TOL, "parts": args.parts, "cases": []}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    ok = True

    def record(case):
        nonlocal ok
        ok &= case["pass"]
        report["cases"].append(case)
        print(json.dumps(case), flush=True)
        out.write_text(json.dumps(report, indent=2))

    if "sparse" in args.parts:
        import spconv

        report["spconv"] = spconv.__version__
        for voxels in args.voxels:
            record(sparse_case(voxels))
    if "rasterize" in args.parts:
        import gsplat

        from geossl.ops.composite_cpu import load_extension

        report["cpu_compositor"] = "cpp" if load_extension() is not None else "torch"  # what the reference ran
        report["gsplat"] = gsplat.__version__
        t0 = time.perf_counter()
        try:
            from gsplat.cuda._backend import _C  # compiles gsplat's kernels on first use
        except Exception as e:  # a failed build is a result of this check, recorded as such
            _C, report["gsplat_build_error"] = None, f"{type(e).__name__}: {e}"[-4000:]
        report["gsplat_load_s"] = time.perf_counter() - t0
        if _C is None:
            report.setdefault("gsplat_build_error", "gsplat found no CUDA toolkit and did not build")
            out.write_text(json.dumps(report, indent=2))
            print(f"gpu_check: gsplat did not build: {report['gsplat_build_error']}", file=sys.stderr)
            return 1
        for case in rasterize_cases(args.sizes):
            record(case)
    if "scene" in args.parts:  # the scene paths on the GPU: Gaussian fitting and a Point-MAE step
        record(scene_fit_case())
        record(scene_pretrain_case())
        record(scene_pretrain_case(300, ["scene=gaussian2scene", "scene.stage1_epochs=0"], "gaussian2scene_stage2", 1e-2))
        record(scene_pretrain_case(100, ["scene=gaussian2scene", "scene.stage1_epochs=0", "transform.budget=view_crop",
                                         "scene.render_radius=0.1", "scene.scale_init=0.04"], "gaussian2scene_stage2_view_crops", 1e-2))
    out.write_text(json.dumps(report, indent=2))
    print(f"gpu_check: {'PASS' if ok else 'FAIL'} -> {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
