"""The overfitting check of the SUN RGB-D path on real frames: `geossl finetune detection=votenet dataset=sunrgbd` fits a
few frames without augmentation and is scored on the same frames, then `geossl evaluate model=<detector file>` (no
other argument) must give the same numbers from what the file records.

The frames: mmdetection3d's test data (tests/data/sunrgbd/sunrgbd_trainval at commit 9e39d46 of open-mmlab/
mmdetection3d: four real frames in the VoteNet export, depth .mat and label .txt), in a folder outside the project
whose train_data_idx.txt and val_data_idx.txt both list all four:

    python benchmarks/sunrgbd_overfit.py --root /work/ref/sunrgbd/overfit --run-dir /work/bench/sun/overfit

Writes the sunrgbd_overfit section of docs/results.md and docs/results/sunrgbd_overfit.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine_line, write_json, write_section  # noqa: E402

SETTINGS = ["encoder=point_patch_transformer", "transform.rotate=0", "transform.flip=0", "transform.scale=[1,1]", "dataset.loop=8",
            "dataset.batch_size=4", "trainer.steps=400", "trainer.monitor_every=100", "trainer.threads=1", "trainer.num_workers=1"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, required=True, help="the frames (VoteNet export layout)")
    ap.add_argument("--run-dir", type=Path, required=True)
    args = ap.parse_args()
    cmd = [sys.executable, "-P", "-m", "geossl", "finetune", "detection=votenet_sunrgbd", "dataset=sunrgbd", f"dataset.root={args.root}",
           *SETTINGS, f"run_dir={args.run_dir}"]
    if not (args.run_dir / "summary.json").is_file():
        subprocess.run(cmd, check=True)
    summary = json.loads((args.run_dir / "summary.json").read_text())
    again = subprocess.run([sys.executable, "-P", "-m", "geossl", "evaluate", f"model={args.run_dir / 'detector.safetensors'}"],
                           capture_output=True, text=True, check=True)
    evaluated = json.loads(again.stdout)
    same = all(evaluated[k] == summary[k] for k in ("mAP@0.25", "mAP@0.5", "class_AP@0.25", "class_AP@0.5"))
    classes = sorted(summary["class_AP@0.25"])
    lines = [
        "`python benchmarks/sunrgbd_overfit.py` — `geossl finetune detection=votenet_sunrgbd dataset=sunrgbd` on four real SUN RGB-D "
        "frames (mmdetection3d's test data, VoteNet export: depth .mat, label .txt; 241k-281k points each) with the SUN RGB-D "
        "preset (20,000 points, 1024 seeds, 256 proposals, 12 heading bins) and no augmentation "
        f"(`{' '.join(SETTINGS)}`), scored on the same four frames: an overfitting check of the reading, box and yaw "
        "conventions, training and evaluation path, not a benchmark result. Then `geossl evaluate model=<detector file>` "
        "with no other argument.", "",
        "| | mAP@0.25 | mAP@0.5 | " + " | ".join(f"{c} AP@0.25 / @0.5" for c in classes) + " |",
        "|---|---|---|" + "---|" * len(classes),
    ]
    for label, r in (("the run", summary), ("`geossl evaluate model=` (file alone)", evaluated)):
        cells = [f"{100 * r['class_AP@0.25'][c]:.1f} / {100 * r['class_AP@0.5'][c]:.1f}" if r["class_AP@0.25"][c] is not None else "-"
                 for c in classes]
        lines.append(f"| {label} | **{100 * r['mAP@0.25']:.2f}** | **{100 * r['mAP@0.5']:.2f}** | " + " | ".join(cells) + " |")
    lines += ["", f"The evaluation from the file alone {'repeats the run exactly' if same else 'DIFFERS from the run'}; "
              f"{summary['steps']} steps, {summary['train_seconds'] / 60:.1f} min of training on one thread beside other runs "
              "(not a speed).", "", machine_line(threads="")]
    write_section("sunrgbd_overfit", "## SUN RGB-D: the overfitting check on real frames\n\n" + "\n".join(lines))
    write_json("sunrgbd_overfit", {"run": {k: summary[k] for k in ("mAP@0.25", "mAP@0.5", "class_AP@0.25", "class_AP@0.5", "steps")},
                                   "evaluate": {k: evaluated[k] for k in ("mAP@0.25", "mAP@0.5", "class_AP@0.25", "class_AP@0.5")},
                                   "same": same, "settings": SETTINGS})
    if not same:
        raise SystemExit("geossl evaluate model= did not repeat the run's numbers")


if __name__ == "__main__":
    main()
