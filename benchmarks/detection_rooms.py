"""3D detection on procedural rooms: a VoteNet head on each scene encoder, from scratch and from Point-MAE or
Gaussian2Scene pretraining, on all and on 10% of the training scenes; then the real-data path on the ScanNet samples.

Every run is `geossl finetune detection=votenet dataset=rooms encoder=<name or file> seed=<s>
[dataset.train_fraction=<f>] trainer.epochs=<n>`, evaluated on the 100 test rooms (seeds 2000-2099) with
mmdetection3d's indoor protocol; its validation mAP every 5 epochs is the learning curve.

    python benchmarks/detection_rooms.py --out /work/bench/det --backbones point_patch_transformer spunet --seeds 0 1 2
    python benchmarks/detection_rooms.py --out /work/bench/det --pretrained pointmae=/work/bench/pointmae --fractions 0.1 1.0
    python benchmarks/detection_rooms.py --out /work/bench/det --pretrained gaussian2scene=<folder of seed<s>/> --fractions 0.1 1.0
    python benchmarks/detection_rooms.py --out /work/bench/det --pretrained gaussian2scene-reduced=<folder of seed<s>/> --fractions 0.1 1.0
    python benchmarks/detection_rooms.py --out /work/bench/det --scannet --epochs 200 --threads 1
    python benchmarks/detection_rooms.py --out /work/bench/det --render [--keep-recorded]

Writes the `detection_rooms` section of docs/results.md and docs/results/detection_rooms.json (every run's summary, the
ScanNet results and the speed table). With --keep-recorded, the runs, ScanNet results and speed table recorded in that
JSON stay in the section unless --out holds a run of the same name: new runs join the recorded ones without
keeping every earlier run folder.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import geossl_run, machine_line, mean_std, read_json, write_json, write_section  # noqa: E402


#: torch threads of every run (--threads): timings are for this many cores.
THREADS = 2


def by_epochs(epochs: int) -> list:
    """Overrides that measure a run in epochs (this section's protocol; the detection trainer's default counts steps),
    validated every 5 epochs and checkpointed every epoch."""
    return ["trainer.steps=null", f"trainer.epochs={epochs}", "trainer.monitor_every=5", "trainer.checkpoint_every=1"]


def _geossl(args: list) -> str:
    """``python -m geossl <args>`` in a process of its own, as a user runs it (its stdout)."""
    res = subprocess.run([sys.executable, "-m", "geossl", *args], capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"geossl {' '.join(args)} failed:\n{res.stderr[-3000:]}")
    return res.stdout


# pretraining methods whose encoders --pretrained takes, and their names in the table
PRETRAINED = {"pointmae": "Point-MAE", "gaussian2scene": "Gaussian2Scene",
              "pointmae-reduced": "Point-MAE (at the reduced budget)",
              "gaussian2scene-reduced": "Gaussian2Scene (at the reduced budget)",
              "gaussian2scene-view-crops": "Gaussian2Scene on view crops"}


def finetune(name: str, out: Path, args: list) -> dict:
    """One fine-tuning run in its own process, its output in ``<out>/<name>.log``; a finished run is reused.
    The command is ``python -m geossl finetune detection=votenet trainer.progress=false trainer.threads=<threads> <args>
    run_dir=<out>/<name>``, so a run started by hand with it counts the same."""
    return geossl_run(["finetune", "detection=votenet", "trainer.progress=false", f"trainer.threads={THREADS}", *args], out / name)


def evaluate(detector: Path, dataset_args: list) -> dict:
    return json.loads(_geossl(["evaluate", f"detector={detector}", f"trainer.threads={THREADS}", *dataset_args]))


def collect(out: Path) -> dict:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(out.glob("*/summary.json"))}


def render(runs: dict, extra: dict, note: str, speed: dict) -> None:
    def ms(rows, key, scale=100.0, digits=1):
        m, s = mean_std([scale * r[key] for r in rows])
        return f"{m:.{digits}f} ± {s:.{digits}f}" if len(rows) > 1 else f"{m:.{digits}f}"

    groups = {}
    for name, r in runs.items():
        if name.startswith("scannet"):
            continue
        method = name.split("-f")[0]
        key = (r["encoder"].split(" ")[0] if "from scratch" in r["encoder"] else f"point_patch_transformer, {PRETRAINED[method]} pretrained",
               r["train_fraction"])
        groups.setdefault(key, []).append(r)
    lines = ["## 3D detection on procedural rooms (VoteNet head)", "",
             "`python benchmarks/detection_rooms.py` — `geossl finetune detection=votenet dataset=rooms encoder=<...> seed=<s>`: "
             "whole rooms subsampled to 4096 points, the VoteNet head (256 seeds, 64 proposals, vote loss weight 10, no proposal "
             "gradient into the vote positions), AdamW with a per-step cosine; "
             "mAP on the 100 test rooms (seeds 2000-2099), mmdetection3d's indoor protocol, six classes. Mean ± population std "
             "over seeds. Per-class AP@0.25 is in docs/results/detection_rooms.json.", "",
             machine_line(threads=""), *([note, ""] if note else [""]),
             "| backbone | training scenes | seeds | epochs | threads | mAP@0.25 (%) | mAP@0.5 (%) | training time (min) | s/step | inference s/scene | peak memory (MB) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (backbone, fraction), rows in sorted(groups.items()):
        lines.append(f"| {backbone} | {rows[0]['train_scenes']} ({100 * fraction:g}%) | {len(rows)} | {rows[0]['epochs']} | "
                     f"{rows[0].get('torch_threads', '?')} | **{ms(rows, 'mAP@0.25')}** | {ms(rows, 'mAP@0.5')} | "
                     f"{ms(rows, 'train_seconds', 1 / 60)} | {ms(rows, 'seconds_per_step', 1.0, 2)} | "
                     f"{ms(rows, 'inference_seconds_per_scene', 1.0, 3)} | "
                     f"{ms([r for r in rows if 'peak_rss_mb' in r], 'peak_rss_mb', 1.0, 0) if any('peak_rss_mb' in r for r in rows) else 'not recorded'} |")
    curves = [(n, r["val_curve"]) for n, r in runs.items() if r.get("val_curve")]
    if curves:
        lines += ["", "Learning curves (validation mAP@0.25 %, 50 val rooms, by epoch):", ""]
        lines += [f"- {n}: " + ", ".join(f"{c['epoch']}: {100 * c['val_mAP@0.25']:.1f}" for c in curve) for n, curve in curves]
    if speed:
        lines += ["", "Speed, one run at a time on an otherwise idle machine (`--speed`: 20 training steps of 8 rooms, then the 100 test "
                  "rooms; the table's times above depend on how many runs shared the two cores):", "",
                  "| backbone | threads | s/step (training) | s/scene (inference) | peak memory (MB) |", "|---|---|---|---|---|"]
        lines += [f"| {k.split('/')[0]} | {k.split('/')[1]} | {v['seconds_per_step']:.2f} | {v['inference_seconds_per_scene']:.3f} | "
                  f"{v['peak_rss_mb']:.0f} |" for k, v in speed.items()]
    for title, result in extra.items():
        lines += ["", f"{title}: mAP@0.25 {100 * result['mAP@0.25']:.1f}, mAP@0.5 {100 * result['mAP@0.5']:.1f}"
                  + (f" over {', '.join(result['classes_evaluated'])}" if isinstance(result.get("classes_evaluated"), list) else "")
                  + "."]
    write_section("detection_rooms", "\n".join(lines))
    write_json("detection_rooms", {"runs": runs, "extra": extra, "speed": speed})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--backbones", nargs="*", default=[], help="registry names trained from scratch")
    ap.add_argument("--pretrained", nargs="*", default=[], metavar="METHOD=FOLDER",
                    help=f"pretrained encoders to start from: a folder of runs (seed<s>/encoder.safetensors) per method, one of "
                         f"{sorted(PRETRAINED)}; a bare folder means pointmae")
    ap.add_argument("--fractions", nargs="+", type=float, default=[1.0])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--scannet", action="store_true", help="evaluate the seed-0 scratch detector on ScanNet, and fit the three samples")
    ap.add_argument("--scannet-proposals", type=int, default=256,
                    help="proposals of the ScanNet fit (VoteNet's 256; the sample scenes hold dozens of boxes each)")
    ap.add_argument("--render", action="store_true")
    ap.add_argument("--keep-recorded", action="store_true",
                    help="keep the runs, ScanNet results and speed table of docs/results/detection_rooms.json that --out has "
                         "no newer result for")
    ap.add_argument("--speed", action="store_true", help="time 20 training steps (160 rooms, 1 epoch) and inference on the 100 test "
                    "rooms for each backbone at 1 and 2 threads, one run at a time (run it on an otherwise idle machine)")
    ap.add_argument("--note", default="")
    ap.add_argument("--threads", type=int, default=2, help="torch threads per run (the timings' cores)")
    args = ap.parse_args()
    pretrained = dict(p.split("=", 1) if "=" in p else ("pointmae", p) for p in args.pretrained)
    if set(pretrained) - set(PRETRAINED):
        raise SystemExit(f"--pretrained: unknown method(s) {sorted(set(pretrained) - set(PRETRAINED))}; choose from {sorted(PRETRAINED)}")
    global THREADS
    THREADS = args.threads
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not args.render:
        for fraction in args.fractions:
            for seed in args.seeds:
                for backbone in args.backbones:
                    finetune(f"{backbone}-f{fraction:g}-seed{seed}", out, [f"encoder={backbone}", f"seed={seed}",
                                                                          f"dataset.train_fraction={fraction}", *by_epochs(args.epochs)])
                for method, folder in pretrained.items():
                    encoder = Path(folder) / f"seed{seed}" / "encoder.safetensors"
                    finetune(f"{method}-f{fraction:g}-seed{seed}", out, [f"encoder={encoder}", f"seed={seed}",
                                                                        f"dataset.train_fraction={fraction}", *by_epochs(args.epochs)])
    speed_file = out / "speed.json"
    if args.speed and not args.render:
        speed = {}
        for backbone in ("spunet", "point_patch_transformer"):
            for threads in (1, 2):
                run_dir = out / "speed" / f"{backbone}-t{threads}"
                if not (run_dir / "summary.json").is_file():
                    cmd = [sys.executable, "-m", "geossl", "finetune", "detection=votenet", f"run_dir={run_dir}", "trainer.progress=false",
                           f"trainer.threads={threads}", f"encoder={backbone}", "dataset.splits.train=[0,160]", *by_epochs(1), "seed=0"]
                    if subprocess.run(cmd, capture_output=True, text=True).returncode != 0:
                        raise SystemExit(f"{' '.join(cmd[2:])} failed")
                r = json.loads((run_dir / "summary.json").read_text())
                speed[f"{backbone}/{threads}"] = {k: r[k] for k in ("seconds_per_step", "inference_seconds_per_scene", "peak_rss_mb")}
        speed_file.write_text(json.dumps(speed, indent=2))
    extra_file = out / "extra.json"
    extra = json.loads(extra_file.read_text()) if extra_file.is_file() else {}
    if args.scannet and not args.render:
        first = next(iter(sorted(out.glob("point_patch_transformer-f1-seed0/detector.safetensors"))), None)
        if first is not None:
            extra["Trained on rooms (point_patch_transformer, seed 0), evaluated on the ScanNet test sample (scene0000_02)"] = \
                evaluate(first, ["dataset=scannet", "transform.points=4096"])
        extra_file.write_text(json.dumps(extra, indent=2))
        scenes = "[scene0000_00,scene0000_01,scene0000_02]"
        for stale in [k for k in extra if k.startswith("Fitted on the three ScanNet samples")]:
            del extra[stale]
        # the overfitting check sees the scenes as they are; the second fit keeps the training augmentations
        for name, augment, label in (("scannet-overfit-noaug", ["transform.rotate=0", "transform.flip=0", "transform.scale=[1,1]"],
                                      "no augmentation"),
                                     ("scannet-overfit", [], "with the training augmentations")):
            fit = finetune(name, out, ["dataset=scannet", "encoder=point_patch_transformer", "seed=0", "dataset.loop=32",
                                       f"detection.num_proposals={args.scannet_proposals}", *augment,
                                       f"dataset.splits={{train:{scenes},val:{scenes},test:{scenes}}}", *by_epochs(args.epochs)])
            extra[f"Fitted on the three ScanNet samples and evaluated on them (an overfitting check of the real-data path, "
                  f"18 classes; {label}, {args.scannet_proposals} proposals, {args.epochs} epochs, validation curve above)"] = fit
            extra_file.write_text(json.dumps(extra, indent=2))
    speed = json.loads(speed_file.read_text()) if speed_file.is_file() else {}
    runs = collect(out)
    if args.keep_recorded:
        kept = read_json("detection_rooms")
        runs = dict(sorted({**kept.get("runs", {}), **runs}.items()))
        extra, speed = {**kept.get("extra", {}), **extra}, {**kept.get("speed", {}), **speed}
    render(runs, extra, args.note, speed)


if __name__ == "__main__":
    main()
