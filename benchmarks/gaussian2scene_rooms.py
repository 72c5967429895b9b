"""Gaussian2Scene on procedural rooms: (a) rendering quality of held-out views from the predicted Gaussians against
one isotropic Gaussian per input point, (b) the segmentation probe of the frozen encoder, on the test rooms and on the
ScanNet samples, for Gaussian2Scene, its stage 1 alone, Point-MAE and random initialisation (same encoder, same probe,
same budget), over seeds.

    python benchmarks/gaussian2scene_rooms.py --out /work/bench/g2s --seeds 0 1 2 [--variants gaussian2scene] [--sevenscenes]
    python benchmarks/gaussian2scene_rooms.py --out /work/bench/g2s --render --keep-recorded --note "..."

Every run is `geossl pretrain scene=<method> dataset=rooms seed=<s>` (CPU preset: for Gaussian2Scene 10 epochs of
stage 1, then 10 of stage 2; `stage 1 alone` sets scene.stage1_epochs to trainer.epochs; Point-MAE 20 epochs).
Rooms runs and probes set `dataset.cache=true`: each room is made once and read back from $GEOSSL_CACHE (the same
tensors; about 8 GB for the 1100 rooms with views). Held-out views: the second view of each of the 100 test rooms,
which the encoder does not see, at 160x120. With --sevenscenes, the same on the real 7-Scenes sequence
(`dataset=sevenscenes dataset.loop=512`: pretrained on the cloud fused from its training frames, 64 steps an epoch,
rendered into its held-out frames; no labels, so no probe). Writes the `gaussian2scene_rooms` section of
docs/results.md and docs/results/gaussian2scene_rooms.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import geossl_run, machine_line, mean_std, read_json, write_json, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# pretraining variants: the method and its overrides (Point-MAE: the same encoder, budget and data, without views, on
# its own 2048-point crops; "on whole-room points": on 2048 points drawn from the whole room, as Gaussian2Scene trains;
# Gaussian2Scene "on view crops": on Point-MAE's 2048-point crops, each around a point the rendered view sees, with the
# render losses on the pixels within 10 cm of the crop and the head's initial scale at the crops' point spacing)
VARIANTS = {"gaussian2scene": ["scene=gaussian2scene"], "stage 1 alone": ["scene=gaussian2scene", "scene.stage1_epochs=${trainer.epochs}"],
            "gaussian2scene on view crops": ["scene=gaussian2scene", "transform.budget=view_crop", "scene.render_radius=0.1",
                                             "scene.scale_init=0.04"],
            "stage 1 alone on view crops": ["scene=gaussian2scene", "scene.stage1_epochs=${trainer.epochs}", "transform.budget=view_crop"],
            "Point-MAE": ["scene=pointmae"],
            "Point-MAE on whole-room points": ["scene=pointmae", "transform.budget=subsample"]}


#: what every run on a dataset sets: rooms are made once and read back (the same rooms); the one 7-Scenes scene is
#: passed over 512 times an epoch (its default, 128, gives 160 stage-2 steps, which tied the baseline)
DATASET_OVERRIDES = {"rooms": ["dataset.cache=true"], "sevenscenes": ["dataset.loop=512"]}


def run_dir(variant: str, seed: int, out: Path, dataset: str = "rooms") -> Path:
    name = f"{variant.replace(' ', '_')}-seed{seed}"
    return out / (name if dataset == "rooms" else f"{dataset}-{name}")


def run(variant: str, seed: int, out: Path, threads: int, extra: list, dataset: str = "rooms") -> dict:
    method, *overrides = VARIANTS[variant]
    return geossl_run(["pretrain", method, f"dataset={dataset}", f"seed={seed}", f"trainer.threads={threads}",
                       "trainer.progress=false", *DATASET_OVERRIDES[dataset], *extra, *overrides], run_dir(variant, seed, out, dataset))


#: the probes of every encoder: name -> (dataset, overrides); each dataset's default transforms unless overridden
PROBES = {"rooms": ("rooms", ["dataset.cache=true"]), "rooms-subsample": ("rooms", ["dataset.cache=true", "transform.budget=subsample"]),
          "scannet": ("scannet", [])}


def probe_file(encoder: Path, name: str) -> Path:
    """Where :func:`probe` keeps the result of the probe ``name`` of ``encoder``."""
    return encoder.parent / f"{encoder.stem}-{name}-probe.json"


def probe(encoder: Path, name: str, seed: int, threads: int) -> dict:
    """The segmentation probe ``name`` of :data:`PROBES` of a saved encoder, `geossl evaluate encoder=<file>
    dataset=<dataset> <overrides>`, so that every encoder is probed on the same points (rooms: the Point-MAE table's
    2048-point crops; rooms-subsample: 2048 points drawn from the whole room, as Gaussian2Scene trains on; scannet:
    trained on scene0000_00/01, scored on scene0000_02); kept next to the encoder."""
    dataset, overrides = PROBES[name]
    path = probe_file(encoder, name)
    if not path.is_file():
        cmd = [sys.executable, "-m", "geossl", "evaluate", f"encoder={encoder}", f"dataset={dataset}", f"seed={seed}",
               f"trainer.threads={threads}", *overrides]
        done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(cmd[2:])} failed")
        path.write_text(done.stdout)
    return json.loads(path.read_text())


def keep_recorded(recorded: dict, new: dict) -> dict:
    """``{variant: [one result per seed]}``: the ``recorded`` results (from the section's JSON) with those of ``new``
    in place of the recorded ones of the same variant and seed; variants in :data:`VARIANTS` order, then random
    initialisation, then the rest (7-Scenes), seeds in order."""
    merged = {v: {r["seed"]: r for r in rs} for v, rs in recorded.items()}
    for v, rs in new.items():
        merged.setdefault(v, {}).update({r["seed"]: r for r in rs})
    order = [*VARIANTS, "random initialisation"]
    return {v: [merged[v][s] for s in sorted(merged[v])]
            for v in sorted(merged, key=lambda v: order.index(v) if v in order else len(order)) if merged[v]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--set", nargs="*", default=[], help="further overrides of every rooms run (a smaller check; not the protocol)")
    ap.add_argument("--section", default="gaussian2scene_rooms",
                    help="the docs/results.md section (and docs/results/<section>.json) to write: another one for a run with --set")
    ap.add_argument("--title", default="Gaussian2Scene on procedural rooms", help="the section's heading")
    ap.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS),
                    help="which pretraining variants to run (the table shows every variant with finished runs in --out)")
    ap.add_argument("--note", default="", help="a line for the section (how the runs were budgeted)")
    ap.add_argument("--sevenscenes", action="store_true",
                    help="also pretrain on the real 7-Scenes sequence (TSDF cloud of its training frames) and render its "
                         "held-out frames")
    ap.add_argument("--no-random", action="store_true", help="leave out the random-initialisation probe rows")
    ap.add_argument("--render", action="store_true",
                    help="run nothing: the section from the finished runs and probes in --out (with --keep-recorded, and the "
                         "recorded ones)")
    ap.add_argument("--keep-recorded", action="store_true",
                    help="keep the runs, renders and probes recorded in docs/results/<section>.json for every variant and "
                         "seed that --out holds no run of (new runs join the recorded ones without keeping every run folder)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not args.render:
        for v in args.variants:
            for s in args.seeds:
                run(v, s, out, args.threads, args.set)
    rows = {v: [json.loads((run_dir(v, s, out) / "summary.json").read_text()) for s in args.seeds
                if (run_dir(v, s, out) / "summary.json").is_file()] for v in VARIANTS}
    rows = {v: rs for v, rs in rows.items() if rs}
    encoders = {v: [(Path(r["encoder"]), r["seed"], r["pretrain_seconds"]) for r in rs] for v, rs in rows.items()}
    if args.render:  # only the encoders whose probes have all finished
        encoders = {v: [e for e in es if all(probe_file(e[0], n).is_file() for n in PROBES)] for v, es in encoders.items()}
        encoders = {v: es for v, es in encoders.items() if es}
    elif not args.no_random:
        from pointmae_rooms import random_encoder  # the seed's initial weights of the same encoder

        encoders["random initialisation"] = [(random_encoder(s, out), s, None) for s in args.seeds]
    probes = {v: [{"encoder": str(e), "seed": s, "pretrain_seconds": t, **{n: probe(e, n, s, args.threads) for n in PROBES}}
                  for e, s, t in es] for v, es in encoders.items()}
    renders = {v: rs for v, rs in rows.items() if v.startswith("gaussian2scene")}
    if args.sevenscenes and not args.render:
        renders["gaussian2scene, 7-Scenes (held-out frames)"] = [run("gaussian2scene", s, out, args.threads, [], "sevenscenes")
                                                                 for s in args.seeds]
    if args.keep_recorded:
        recorded = read_json(args.section)
        rows, renders, probes = (keep_recorded(recorded.get(key, {}), new)
                                 for key, new in (("runs", rows), ("rendering", renders), ("probes", probes)))

    def ms(rs, key, scale=1.0, digits=2):
        m, sd = mean_std([scale * r[key] for r in rs])
        return f"{m:.{digits}f} ± {sd:.{digits}f}"

    lines = [f"## {args.title}", "",
             "`python benchmarks/gaussian2scene_rooms.py` — `geossl pretrain scene=gaussian2scene dataset=rooms` (CPU preset: "
             "the Point-MAE table's encoder), then on the 100 test rooms: PSNR / SSIM of the view the encoder did not see, "
             "rendered at 160x120 from the Gaussians predicted from the room's points and its input view (nothing hidden) "
             "and from one isotropic Gaussian per input point (its colour, its nearest-neighbour distance as scale); "
             "on view crops, both are scored on the pixels within 10 cm of the crop's points only (the share scored is "
             "in the table). Mean ± population std over seeds.", "",
             machine_line(threads=f"{args.threads} torch thread(s) per run"),
             *([f"Overrides of the rooms runs: `{' '.join(args.set)}`", ""] if args.set else [""]),
             *([args.note, ""] if args.note else []),
             "**(a) Rendering of held-out views**", "",
             "| pretraining | seeds | pixels scored | held-out PSNR (dB) | baseline PSNR (dB) | gain (dB) | held-out SSIM | baseline SSIM | "
             "min / run |", "|---|---|---|---|---|---|---|---|---|"]
    for variant, rs in renders.items():
        gain = mean_std([r["test_render_psnr"] - r["test_baseline_psnr"] for r in rs])
        scored = f"{ms(rs, 'test_supervised_share', 100, 0)} %" if "test_supervised_share" in rs[0] else "all"
        lines.append(f"| {variant} | {len(rs)} | {scored} | **{ms(rs, 'test_render_psnr')}** | {ms(rs, 'test_baseline_psnr')} | "
                     f"{gain[0]:+.2f} ± {gain[1]:.2f} | {ms(rs, 'test_render_ssim', 1, 3)} | {ms(rs, 'test_baseline_ssim', 1, 3)} | "
                     f"{ms(rs, 'pretrain_seconds', 1 / 60, 1)} |")
    lines += ["", "**(b) Segmentation probe** of the frozen encoder, every encoder on the same points: `geossl evaluate "
              "encoder=<file> dataset=rooms` (the Point-MAE table's probe and its 2048-point crops, the points Point-MAE "
              "trains on), the same with `transform.budget=subsample` (2048 points drawn from the whole room, the points "
              "Gaussian2Scene trains on) and `dataset=scannet` (probe trained on scene0000_00/01, scored on scene0000_02). "
              "The pretraining rows share budget, data and seeds.", "",
              "| encoder | seeds | rooms mIoU, crops (%) | rooms mIoU, whole-room subsample (%) | ScanNet mIoU (%) | "
              "pretraining min / run |", "|---|---|---|---|---|---|"]
    for variant, ps in probes.items():
        cells = [mean_std([100 * p[n]["seg_miou"] for p in ps]) for n in PROBES]
        minutes = ms(ps, "pretrain_seconds", 1 / 60, 1) if ps[0]["pretrain_seconds"] is not None else "-"
        lines.append(f"| {variant} | {len(ps)} | " + " | ".join(f"{m:.1f} ± {sd:.1f}" for m, sd in cells) + f" | {minutes} |")
    write_json(args.section, {"seeds": args.seeds, "overrides": args.set, "runs": rows, "rendering": renders,
                                        "probes": probes})
    write_section(args.section, "\n".join(lines))


if __name__ == "__main__":
    main()
