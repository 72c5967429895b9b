"""CPU rasterization cost: forward+backward time and peak memory of `geossl.ops.rasterize_gaussians`
(the compiled C++/OpenMP compositor, and the pure-PyTorch compositor) for 10k / 100k / 300k
Gaussians at 160x120 and 640x480, against the naive dense evaluation (every Gaussian at every
pixel) where that fits in memory. Each case runs in a fresh process so that its peak resident
memory (ru_maxrss, minus the process's level before rendering) is its own.

    python benchmarks/rasterize_cpu.py                 # all cases, torch's default threads
    python benchmarks/rasterize_cpu.py --threads 1

Writes the `rasterize_cpu` section of docs/results.md and docs/results/rasterize_cpu.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine_line, write_json, write_section  # noqa: E402

DENSE_LIMIT = 2.0e8  # Gaussians x pixels above which the dense baseline is not attempted (~GBs per tensor)


def one_case(n: int, width: int, height: int, path: str, threads: int, repeats: int) -> dict:
    import resource
    import time

    import torch

    from gpu_check import random_scene
    from geossl.ops.rasterize import composite_dense, project_gaussians, quat_scale_to_covariance, rasterize_gaussians_torch

    if threads:
        torch.set_num_threads(threads)
    params, V, K = random_scene(n, width, height)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def step():
        ps = [p.clone().requires_grad_() for p in params]
        if path == "dense":
            m, q, s, o, c = ps
            pr = project_gaussians(m, quat_scale_to_covariance(q, s), V[0], K[0], width, height)
            img, alpha = composite_dense(pr["means2d"], pr["conics"], pr["depths"], pr["radii"], o, c, width, height)
        else:
            img, alpha, _ = rasterize_gaussians_torch(*ps, V, K, width, height, compositor=path)
        (img.sum() + alpha.sum()).backward()

    step()
    t0 = time.perf_counter()
    for _ in range(repeats):
        step()
    seconds = (time.perf_counter() - t0) / repeats
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"gaussians": n, "size": f"{width}x{height}", "path": path, "seconds": seconds,
            "peak_extra_mb": (peak - base) / 1024.0, "threads": torch.get_num_threads()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", type=int, default=[10_000, 100_000, 300_000])
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--case-timeout", type=int, default=600, help="seconds before a case is stopped and reported as such")
    ap.add_argument("--case", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.case:
        n, w, h, path = args.case
        print(json.dumps(one_case(int(n), int(w), int(h), path, args.threads, args.repeats)))
        return
    rows = []
    for n in args.sizes:
        for w, h in [(160, 120), (640, 480)]:
            paths = ["cpp", "torch"] + (["dense"] if n * w * h <= DENSE_LIMIT else [])
            for path in paths:
                repeats = 1 if path == "dense" else args.repeats  # the dense baseline is minutes per step
                cmd = [sys.executable, __file__, "--threads", str(args.threads), "--repeats", str(repeats),
                       "--case", str(n), str(w), str(h), path]
                try:
                    res = subprocess.run(cmd, capture_output=True, text=True, timeout=args.case_timeout)
                    row = json.loads(res.stdout.strip().splitlines()[-1]) if res.returncode == 0 else {
                        "gaussians": n, "size": f"{w}x{h}", "path": path, "error": (res.stderr.strip().splitlines() or ["?"])[-1]}
                except subprocess.TimeoutExpired:
                    row = {"gaussians": n, "size": f"{w}x{h}", "path": path, "error": f"stopped after {args.case_timeout} s"}
                rows.append(row)
                print(json.dumps(row), flush=True)
    lines = ["## CPU Gaussian rasterization: forward + backward", "",
             "`python benchmarks/rasterize_cpu.py` — random Gaussians in front of one camera (scales shrink with the count so "
             "that coverage stays similar); one forward + backward of `rasterize_gaussians` per step, mean of "
             f"{args.repeats} steps (1 for dense) after one warm-up, each case in a fresh process; peak memory = resident-set peak above "
             "the level before rendering. `cpp` = the compiled C++/OpenMP compositor (the default on CPU), `torch` = the "
             "vectorised PyTorch compositor (the test oracle, chunked with activation checkpointing), `dense` = every "
             f"Gaussian at every pixel (run only where Gaussians x pixels <= {DENSE_LIMIT:.0e}).", "", machine_line(), "",
             "| Gaussians | image | path | s / step | peak extra MB | vs dense | threads |", "|---|---|---|---|---|---|---|"]
    dense = {(r["gaussians"], r["size"]): r["seconds"] for r in rows if r["path"] == "dense" and "seconds" in r}
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['gaussians']:,} | {r['size']} | {r['path']} | failed: {r['error'][:80]} | | | |")
            continue
        ref = dense.get((r["gaussians"], r["size"]))
        ratio = f"{ref / r['seconds']:.1f}x faster" if ref and r["path"] != "dense" else ("-" if r["path"] == "dense" else "dense not run")
        lines.append(f"| {r['gaussians']:,} | {r['size']} | {r['path']} | {r['seconds']:.3f} | {r['peak_extra_mb']:.0f} | {ratio} | {r['threads']} |")
    write_section("rasterize_cpu", "\n".join(lines))
    write_json("rasterize_cpu", rows)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
