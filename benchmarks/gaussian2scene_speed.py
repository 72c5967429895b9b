"""Gaussian2Scene's step on this CPU: seconds per training step and peak memory of each stage (CPU preset, a fixed
batch of 8 rooms), at 1 and 2 threads, where a stage-2 step's time goes (the masked encoder-decoder pass, the
Gaussian head, rendering forward, the losses, backward), by the method's torch.profiler ranges, and the time to make
that batch (rooms generated, views ray-cast) and to read it back from the room cache (`dataset.cache=true`, a
temporary cache folder). Two variants: the presets (whole-room subsamples), and training on view crops
(`transform.budget=view_crop scene.render_radius=0.1 scene.scale_init=0.04`, the gaussian2scene_rooms variant), whose
batch also finds the points each rendered view sees and whose stage-2 step also finds the pixels near the crop.

    python benchmarks/gaussian2scene_speed.py --steps 5

Each variant and thread count runs in a process of its own (`--one <threads> --variant <name>`); every step runs through the engine; a stage's peak is the process's resident
high-water mark from the start of that stage's steps (reset through /proc/self/clear_refs). Writes the
`gaussian2scene_speed` section of docs/results.md and docs/results/gaussian2scene_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import TimedBatches, engine_fit, machine_line, write_json, write_section  # noqa: E402


#: the variants timed: their overrides of the CPU preset
VARIANTS = {"presets": [], "view crops": ["transform.budget=view_crop", "scene.render_radius=0.1", "scene.scale_init=0.04"]}


def one(threads: int, steps: int, variant: str) -> dict:
    from torch.profiler import ProfilerActivity, profile

    from geossl.io import peak_rss_mb, reset_peak_rss
    from geossl.pipeline import build_method, configure
    from geossl.pointcloud.methods.gaussian2scene import PROFILE_LABELS
    from geossl.points import collate

    overrides = ["scene=gaussian2scene", "dataset=rooms", *VARIANTS[variant], f"trainer.threads={threads}", "trainer.epochs=1"]
    _, cfg, adapter = configure("pretrain", overrides)
    torch.set_num_threads(threads)
    data = adapter.load_dataset(cfg)
    t = time.perf_counter()
    batch = collate([data.split("train")[(i, i)] for i in range(8)])
    data_seconds = time.perf_counter() - t  # a run makes every batch like this: rooms generated, views ray-cast
    _, cached_cfg, _ = configure("pretrain", [*overrides, "dataset.cache=true"])
    cached = adapter.load_dataset(cached_cfg).split("train")
    with tempfile.TemporaryDirectory() as cache:  # the same batch with dataset.cache=true, once the rooms are cached
        os.environ["GEOSSL_CACHE"] = cache
        collate([cached[(i, i)] for i in range(8)])
        t = time.perf_counter()
        collate([cached[(i, i)] for i in range(8)])
        cached_seconds = time.perf_counter() - t
        del os.environ["GEOSSL_CACHE"]
    out = {"variant": variant, "threads": threads, "data_s_per_batch": data_seconds, "cached_data_s_per_batch": cached_seconds}
    for stage in (1, 2):
        # one epoch of the stage: stage1_epochs=1 trains stage 1 in it, stage1_epochs=0 stage 2
        _, stage_cfg, _ = configure("pretrain", [*overrides, f"scene.stage1_epochs={2 - stage}"])
        torch.manual_seed(0)
        method = build_method(stage_cfg, adapter, data)
        batches = TimedBatches(lambda i: batch, steps, warmup=1)
        reset_peak_rss()
        engine_fit(stage_cfg, method, batches)
        out[f"stage{stage}_s_per_step"] = sum(batches.step_s) / steps
        out[f"stage{stage}_peak_mb"] = peak_rss_mb()
        if stage == 2:  # where the time goes: the same steps again under the profiler, by the method's labelled ranges
            torch.manual_seed(0)
            method = build_method(stage_cfg, adapter, data)
            batches = TimedBatches(lambda i: batch, steps, warmup=1)
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                engine_fit(stage_cfg, method, batches)
            totals = {e.key: e.cpu_time_total / 1e6 for e in prof.key_averages()}
            per_step = len(batches)  # the labels cover every step the profiler saw, warm-up included
            parts = {name: totals.get(label, 0.0) / per_step for key, label in PROFILE_LABELS.items() if key != "forward"
                     for name in [label.split(": ", 1)[1]]}
            forward = totals.get(PROFILE_LABELS["forward"], 0.0) / per_step
            profiled_step = sum(batches.step_s) / steps
            parts["losses and the rest of forward"] = forward - sum(parts.values())
            parts["backward, clipping and optimiser step"] = profiled_step - forward
            out["stage2_parts"] = parts
            out["stage2_profiled_s_per_step"] = profiled_step
            out["raster_fwd_bwd_s"] = raster_alone(method, batch, steps)
    return out


def raster_alone(method, batch, steps: int) -> float:
    """Seconds of the rasterizer's own forward and backward for the Gaussians and views of one stage-2 step: the
    batch's predicted Gaussians (detached, as leaves) rendered into its target views, and the backward of the sum of the
    colour and depth images; mean of ``steps`` after one warm-up."""
    from geossl.gaussians.head import PointGaussians
    from geossl.pointcloud.methods.gaussian2scene import render, render_targets

    with torch.no_grad():
        seen, targets = method._split(batch)
        per_scene = method.predict(seen, torch.Generator().manual_seed(0))[1]
    _, _, K = render_targets(targets, method.render_width, method.render_height)
    times = []
    for i in range(steps + 1):
        leaves = [PointGaussians(*(t.detach().clone().requires_grad_() for t in (g.means, g.quats, g.scales, g.opacities,
                                                                                   g.colors))) for g in per_scene]
        t = time.perf_counter()
        rgb, depth = render(leaves, K, targets.cam_to_world, method.render_width, method.render_height)
        (rgb.sum() + depth.sum()).backward()
        if i:
            times.append(time.perf_counter() - t)
    return sum(times) / len(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    ap.add_argument("--one", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--variant", default="presets", choices=list(VARIANTS), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.steps, args.variant)))
        return
    rows = []
    for variant in args.variants:
        for t in args.threads:
            res = subprocess.run([sys.executable, __file__, "--one", str(t), "--steps", str(args.steps), "--variant", variant],
                                 capture_output=True, text=True)
            if res.returncode != 0:
                raise SystemExit(res.stderr[-3000:])
            rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
    write_json("gaussian2scene_speed", {"machine": machine_line(), "rows": rows})
    lines = ["## Gaussian2Scene step time on CPU", "",
             f"`python benchmarks/gaussian2scene_speed.py --steps {args.steps}` — CPU preset (encoder 4 x 128, 64 patches of 32 "
             "points, one 320x240 input view in 32-pixel patches, one view rendered at 160x120 from 2,048 Gaussians per "
             f"room), a fixed batch of 8 rooms, one epoch of the stage through the engine (the trainer's AdamW, schedule "
             f"and clipping); mean of {args.steps} steps after one warm-up. Peak: resident high-water mark of the process "
             "from the start of that stage's steps. Where stage 2's time goes: the same steps again under torch.profiler, "
             "by the method's labelled ranges (`PROFILE_LABELS` in pointcloud/methods/gaussian2scene.py), per step, warm-up "
             "included; the profiler slows the step (its profiled s/step in docs/results/gaussian2scene_speed.json).", "",
             machine_line(threads=""), "",
             "| variant | threads | stage 1 s/step | stage 1 peak (MB) | stage 2 s/step | stage 2 peak (MB) | stage 2: where the time goes (s/step) | "
             "rasterizer alone, forward + backward (s) | making the batch (s) | reading it from the room cache (s) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        parts = ", ".join(f"{k} {v:.2f}" for k, v in sorted(r["stage2_parts"].items(), key=lambda kv: -kv[1]) if v >= 0.005)
        lines.append(f"| {r['variant']} | {r['threads']} | {r['stage1_s_per_step']:.2f} | {r['stage1_peak_mb']:.0f} | **{r['stage2_s_per_step']:.2f}** | "
                     f"{r['stage2_peak_mb']:.0f} | {parts} | {r['raster_fwd_bwd_s']:.2f} | {r['data_s_per_batch']:.2f} | "
                     f"{r['cached_data_s_per_batch']:.2f} |")
    lines += ["", "Making the batch: generating its 8 rooms, ray-casting their two 320x240 views and the training transforms, "
              "which a run on `dataset=rooms` does for every step (one process, no loader workers), on top of the step. Reading it "
              "from the room cache (`dataset.cache=true`, after a first pass made and stored the rooms): the same batch, "
              "with the rooms read back and checked against their digests instead of made, and the same transforms. On view "
              "crops, the transforms also find the points the rendered view sees (`pointcloud.transforms.points_seen`) to "
              "centre each crop, and stage 2 finds the pixels whose surface lies within 10 cm of the crop "
              "(`supervised_pixels`)."]
    write_section("gaussian2scene_speed", "\n".join(lines))


if __name__ == "__main__":
    main()
