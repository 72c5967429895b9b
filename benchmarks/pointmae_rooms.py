"""Point-MAE on procedural rooms: does scene pretraining learn anything, and what does it cost?

For each seed, `geossl pretrain scene=pointmae dataset=rooms seed=<s>` (the CPU preset, the README's
command) pretrains on the train split (rooms 0-999) and reports, on the held-out test split (rooms
2000-2099):

* (a) the masked-patch Chamfer distance of the trained model against the baseline that copies, for
  each hidden patch, the nearest visible patch (by centre), translated to the hidden centre; both on
  the same seeded masks of the same test items;
* (b) the segmentation probe's mIoU (a linear classifier on frozen per-point features, trained on
  200 train rooms, selected on val, scored on test) of the Point-MAE encoder, of the same encoder
  randomly initialised (the seed's initial weights, evaluated with `geossl evaluate`), and of the raw
  per-point xyz + rgb.

Then (c) seconds per training step (data loading included, batch of 8 scenes) and peak resident memory
of the CPU and the paper-sized preset, at 1 and 2 threads, each in a fresh process.

    python benchmarks/pointmae_rooms.py --out /work/bench/pointmae            # 3 seeds, then the speed table
    python benchmarks/pointmae_rooms.py --out /work/bench/pointmae --render    # re-render from finished runs

Writes the `pointmae_rooms` section of docs/results.md and docs/results/pointmae_rooms.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine_line, mean_std, write_json, write_section  # noqa: E402


def pretrain(seed: int, out: Path, threads: int) -> dict:
    from geossl.cli import main as geossl

    run_dir = out / f"seed{seed}"
    if not (run_dir / "summary.json").is_file():
        args = ["pretrain", "scene=pointmae", "dataset=rooms", f"seed={seed}", f"run_dir={run_dir}", "trainer.progress=false",
                f"trainer.threads={threads}"]
        if geossl(args) != 0:
            raise SystemExit(f"geossl {' '.join(args)} failed")
    return json.loads((run_dir / "summary.json").read_text())


def random_encoder(seed: int, out: Path) -> Path:
    """The seed's randomly initialised encoder (the weights pretraining starts from), saved once to
    ``<out>/random-seed<seed>.safetensors``."""
    import torch

    import geossl
    from geossl.pipeline import build_encoder, configure

    file = out / f"random-seed{seed}.safetensors"
    if not file.is_file():
        _, cfg, _ = configure("pretrain", ["scene=pointmae", "dataset=rooms", f"seed={seed}"])
        torch.manual_seed(seed)
        geossl.save_encoder(build_encoder(cfg, "scene", 3), file, metadata={"method": "random init", "seed": seed})
    return file


def random_init(seed: int, out: Path, threads: int) -> dict:
    """The probe of the seed's randomly initialised encoder (:func:`random_encoder`), through `geossl evaluate`."""
    import contextlib
    import io

    from geossl.cli import main

    path = out / f"random-seed{seed}.json"
    if path.is_file():
        return json.loads(path.read_text())
    file = random_encoder(seed, out)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        if main(["evaluate", f"encoder={file}", "dataset=rooms", f"seed={seed}"]) != 0:
            raise SystemExit("geossl evaluate failed")
    result = json.loads(buf.getvalue())
    path.write_text(json.dumps(result, indent=2))
    return result


def raw_features(seed: int, out: Path) -> dict:
    """The probe on each point's own xyz + rgb (after the evaluation transform: centred coordinates)."""
    import torch

    from geossl.pipeline import configure
    from geossl.pointcloud.adapter import probe

    path = out / f"raw-seed{seed}.json"
    if path.is_file():
        return json.loads(path.read_text())
    _, cfg, adapter = configure("pretrain", ["scene=pointmae", "dataset=rooms", f"seed={seed}"])
    data = adapter.load_dataset(cfg)
    result = probe(lambda b: torch.cat([b.coord, b.feat], 1), data, cfg)
    path.write_text(json.dumps(result, indent=2))
    return result


SPEED = r'''
import json, sys
import torch
sys.path.insert(0, sys.argv[4])
from _report import TimedBatches, engine_fit
from geossl.io import peak_rss_mb
from geossl.pipeline import build_method, configure
from geossl.points import collate
threads, model, steps = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
_, cfg, adapter = configure("pretrain", ["scene=pointmae", "dataset=rooms", f"model={model}", f"trainer.threads={threads}",
                                         "trainer.epochs=1"])
data = adapter.load_dataset(cfg)
torch.manual_seed(0)
method = build_method(cfg, adapter, data)
train = data.split("train")
base = peak_rss_mb()
batches = TimedBatches(lambda i: collate([train[(i * 8 + j, i * 8 + j)] for j in range(8)]), steps)
engine_fit(cfg, method, batches)  # the engine's AdamW, schedule and clipping; the first two steps warm up allocators
peak = peak_rss_mb()
load, compute = sum(batches.data_s) / steps, sum(batches.step_s) / steps
params = sum(p.numel() for p in method.encoder.parameters())
print(json.dumps({"threads": threads, "model": model, "steps": steps, "load_s": load, "compute_s": compute, "step_s": load + compute,
                  "peak_mb": peak, "before_steps_mb": base, "encoder_params": params}))
'''


def speed(model: str, threads: int, steps: int) -> dict:
    here = str(Path(__file__).resolve().parent)
    res = subprocess.run([sys.executable, "-c", SPEED, str(threads), model, str(steps), here], capture_output=True, text=True,
                         timeout=3600)
    if res.returncode != 0:
        raise SystemExit(res.stderr[-3000:])
    return json.loads(res.stdout.strip().splitlines()[-1])


def render(runs, randoms, raws, speeds, note: str) -> None:
    from geossl.pointcloud.rooms import SEMANTIC

    def ms(values, scale=1.0, digits=2):
        m, s = mean_std([scale * v for v in values])
        return f"{m:.{digits}f} ± {s:.{digits}f}"

    cd = [r["test_chamfer"] for r in runs]
    copy = [r["test_chamfer_copy"] for r in runs]
    lines = [
        "## Point-MAE on procedural rooms (scene pretraining)",
        "",
        "`python benchmarks/pointmae_rooms.py` — for each seed, `geossl pretrain scene=pointmae dataset=rooms seed=<s>` "
        "(the CPU preset: patch transformer 128 wide, 4 blocks, decoder 2 blocks, 64 patches of 32 points, 2048-point crops "
        "of 5 cm grid-sampled rooms, 8 rooms per step, AdamW 1e-3 with a per-step cosine after 100 warm-up steps, "
        f"{runs[0]['epochs']} epochs over the 1000 training rooms). Evaluated on the 100 held-out test rooms (seeds 2000-2099), "
        "one evaluation crop each. Mean ± population std over seeds "
        f"{', '.join(str(r['seed']) for r in runs)}.",
        "",
        machine_line(),
        "",
        "**(a) Masked-patch reconstruction** (Chamfer distance, squared metres ×1000, 60% of the patches hidden, the same "
        "seeded masks for both rows):",
        "",
        "| predictor | Chamfer ×1000 (lower is better) |",
        "|---|---|",
        f"| Point-MAE (pretrained) | **{ms(cd, 1000, 3)}** |",
        f"| copy the nearest visible patch to the hidden centre (baseline) | {ms(copy, 1000, 3)} |",
        "",
        f"The model's distance is {100 * (1 - sum(cd) / sum(copy)):.1f}% below the baseline's on average "
        f"(below it for {sum(a < b for a, b in zip(cd, copy))} of {len(cd)} seeds). The baseline does not depend on the "
        "seed: every seed is scored on the same test crops and masks.",
        "",
        "**(b) Segmentation probe** (linear classifier on frozen per-point features; 8 classes: "
        f"{', '.join(SEMANTIC)}; trained on 2048 points of each of 200 train rooms, selected on the 50 val rooms, "
        "scored on every evaluated point of the test rooms):",
        "",
        "| features | test mIoU (%) | test OA (%) | RankMe |",
        "|---|---|---|---|",
    ]
    for name, rows in (("Point-MAE pretrained encoder", runs), ("same encoder, random initialisation", randoms),
                       ("raw xyz + rgb (6 numbers per point)", raws)):
        lines.append(f"| {name} | {ms([r['seg_miou'] for r in rows], 100)} | {ms([r['seg_oa'] for r in rows], 100)} | "
                     f"{ms([r['rankme'] for r in rows], 1, 1)} |")
    per_class = {c: [r["seg_class_iou"][c] for r in runs if r["seg_class_iou"].get(c) is not None] for c in SEMANTIC}
    lines += ["", "Per-class test IoU of the pretrained encoder (%): " +
              ", ".join(f"{c} {ms(v, 100, 1)}" for c, v in per_class.items() if v) + ".", ""]
    lines += ["Pretraining time per seed (these runs; the machine may have been shared): " +
              ", ".join(f"seed {r['seed']}: {r['pretrain_seconds'] / 60:.1f} min ({r['seconds_per_epoch']:.1f} s/epoch"
                        + (f", then {r['evaluate_seconds']:.0f} s of evaluation" if "evaluate_seconds" in r else "") + ")"
                        for r in runs) + ".", ""]
    if speeds:
        lines += ["**(c) Cost of a training step** (8 rooms, 2048 points each; data generation and transforms included; each "
                  "case in a fresh process, mean over the timed steps after two warm-up steps; peak resident memory of the process; "
                  "the step as the engine runs it: the trainer's AdamW, schedule and clipping):", "",
                  "| model | encoder parameters | threads | s/step | of which data | peak RSS (MB) |", "|---|---|---|---|---|---|"]
        for s in speeds:
            lines.append(f"| {s['model']} | {s['encoder_params'] / 1e6:.2f} M | {s['threads']} | {s['step_s']:.3f} | "
                         f"{s['load_s']:.3f} | {s['peak_mb']:.0f} |")
        lines.append("")
    if note:
        lines += [note, ""]
    write_section("pointmae_rooms", "\n".join(lines))
    write_json("pointmae_rooms", {"runs": runs, "random_init": randoms, "raw_xyz_rgb": raws, "speed": speeds})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="folder of the runs (reused: finished runs are not repeated)")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=0, help="torch threads of the pretraining runs (0: torch's default)")
    ap.add_argument("--speed-steps", type=int, default=20, help="timed steps per speed case (0: skip the speed table)")
    ap.add_argument("--render", action="store_true", help="only re-render from the runs in --out")
    ap.add_argument("--note", default="", help="a paragraph to print under the tables")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = [pretrain(s, out, args.threads) for s in args.seeds]
    randoms = [random_init(s, out, args.threads) for s in args.seeds]
    raws = [raw_features(s, out) for s in args.seeds]
    speed_file = out / "speed.json"
    if speed_file.is_file():
        speeds = json.loads(speed_file.read_text())
    elif args.speed_steps and not args.render:
        speeds = [speed(model, threads, args.speed_steps if model == "cpu" else max(args.speed_steps // 4, 3))
                  for model in ("cpu", "paper") for threads in (1, 2)]
        speed_file.write_text(json.dumps(speeds, indent=2))
    else:
        speeds = []
    render(runs, randoms, raws, speeds, args.note)


if __name__ == "__main__":
    main()
