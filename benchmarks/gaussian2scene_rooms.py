"""Gaussian2Scene on procedural rooms: rendering quality of held-out views from the predicted Gaussians against one
isotropic Gaussian per input point, and the segmentation probe of the encoder, for both stages and stage 1 alone,
over seeds; Point-MAE and random-init rows come from the `pointmae_rooms` table (same encoder, same probe).

    python benchmarks/gaussian2scene_rooms.py --out /work/bench/g2s --seeds 0 1 2 [--variants gaussian2scene] [--sevenscenes]

Every run is `geossl pretrain scene=gaussian2scene dataset=rooms seed=<s>` (CPU preset: 10 epochs of stage 1, then
10 of stage 2; `stage 1 alone` sets scene.stage1_epochs to trainer.epochs). Held-out views: the second view of each of the
100 test rooms, which the encoder does not see, at 160x120. With --sevenscenes, the same on the real 7-Scenes sequence
(`dataset=sevenscenes`: pretrained on the cloud fused from its training frames, rendered into its held-out frames; no
labels, so no probe). Writes the `gaussian2scene_rooms` section of
docs/results.md and docs/results/gaussian2scene_rooms.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import geossl_run, machine_line, mean_std, write_json, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {"gaussian2scene": [], "stage 1 alone": ["scene.stage1_epochs=${trainer.epochs}"]}


def run_dir(variant: str, seed: int, out: Path, dataset: str = "rooms") -> Path:
    name = f"{variant.replace(' ', '_')}-seed{seed}"
    return out / (name if dataset == "rooms" else f"{dataset}-{name}")


def run(variant: str, seed: int, out: Path, threads: int, extra: list, dataset: str = "rooms") -> dict:
    return geossl_run(["pretrain", "scene=gaussian2scene", f"dataset={dataset}", f"seed={seed}", f"trainer.threads={threads}",
                       "trainer.progress=false", *extra, *VARIANTS[variant]], run_dir(variant, seed, out, dataset))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--set", nargs="*", default=[], help="further overrides of every rooms run (a smaller check; not the protocol)")
    ap.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS),
                    help="which pretraining variants to run (the table shows every variant with finished runs in --out)")
    ap.add_argument("--note", default="", help="a line for the section (how the runs were budgeted)")
    ap.add_argument("--sevenscenes", action="store_true",
                    help="also pretrain on the real 7-Scenes sequence (TSDF cloud of its training frames) and render its "
                         "held-out frames")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for v in args.variants:
        for s in args.seeds:
            run(v, s, out, args.threads, args.set)
    summaries = {v: [run_dir(v, s, out) / "summary.json" for s in args.seeds] for v in VARIANTS}
    rows = {v: [json.loads(p.read_text()) for p in paths if p.is_file()] for v, paths in summaries.items()}
    rows = {v: rs for v, rs in rows.items() if rs}
    if args.sevenscenes:
        rows["gaussian2scene, 7-Scenes (held-out frames)"] = [run("gaussian2scene", s, out, args.threads, [], "sevenscenes")
                                                              for s in args.seeds]
    lines = ["## Gaussian2Scene on procedural rooms", "",
             "`python benchmarks/gaussian2scene_rooms.py` — `geossl pretrain scene=gaussian2scene dataset=rooms` (CPU preset), "
             "then on the 100 test rooms: PSNR / SSIM of the view the encoder did not see, rendered at 160x120 from the "
             "predicted Gaussians and from one isotropic Gaussian per input point (its colour, its nearest-neighbour "
             "distance as scale); the segmentation probe as in the Point-MAE table. Mean ± population std over seeds.", "",
             machine_line(), *([f"Overrides of the rooms runs: `{' '.join(args.set)}`", ""] if args.set else [""]),
             *([args.note, ""] if args.note else []),
             "| pretraining | seeds | held-out PSNR (dB) | baseline PSNR (dB) | held-out SSIM | baseline SSIM | seg probe mIoU (%) | "
             "min / run |", "|---|---|---|---|---|---|---|---|"]
    for variant, rs in rows.items():
        def ms(key, scale=1.0, digits=2):
            m, s = mean_std([scale * r[key] for r in rs])
            return f"{m:.{digits}f} ± {s:.{digits}f}"
        lines.append(f"| {variant} | {len(rs)} | **{ms('test_render_psnr')}** | {ms('test_baseline_psnr')} | {ms('test_render_ssim', 1, 3)} | "
                     f"{ms('test_baseline_ssim', 1, 3)} | {ms('seg_miou', 100, 1) if 'seg_miou' in rs[0] else '-'} | "
                     f"{ms('pretrain_seconds', 1 / 60, 1)} |")
    earlier = ROOT / "docs" / "results" / "pointmae_rooms.json"
    if earlier.is_file():
        lines += ["", "Point-MAE and random-init probes of the same encoder: the `pointmae_rooms` section above."]
    write_json("gaussian2scene_rooms", {"seeds": args.seeds, "overrides": args.set, "runs": rows})
    write_section("gaussian2scene_rooms", "\n".join(lines))


if __name__ == "__main__":
    main()
