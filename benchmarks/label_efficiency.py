"""Did pretraining help? Fine-tuning from scratch and from pretrained encoders at several label fractions, 3 seeds, through
`geossl finetune -m` (a sweep per part, resumable) and `geossl compare`; writes the label_efficiency section of
docs/results.md from the sweeps' compare.json.

Parts (each a sweep folder under --out):
  detection-rooms       geossl finetune -m detection=votenet dataset=rooms encoder=<starts> dataset.train_fraction=<f>
                        seed=<s> trainer.steps=1500
  segmentation-rooms    geossl finetune -m segmentation=linear dataset=rooms ... trainer.steps=1000
  segmentation-scannet  geossl finetune -m segmentation=linear dataset=scannet ... trainer.steps=400 (train
                        scene0000_00/01, test 02; all the training scenes)

Every fraction takes the same number of optimiser steps (a share of the rooms repeats, reshuffled). Another step budget
(--steps) is another protocol and runs in <out>/<part>-<steps>-steps. A start is a registry
name (from scratch) or an encoder file; one file per method serves every fine-tuning seed.

    python benchmarks/label_efficiency.py --out /work/bench/le --parts detection-rooms \\
        --starts point_patch_transformer /work/pre/pointmae/seed0/encoder.safetensors --fractions 0.05 --seeds 0 1 2
    python benchmarks/label_efficiency.py --out /work/bench/le --report-only
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import ROOT, machine_free, machine_line, write_json, write_section  # noqa: E402

PARTS = {
    "detection-rooms": (["detection=votenet", "dataset=rooms"], 1500,
                        "VoteNet head, whole rooms subsampled to 4096 points, mmdetection3d's indoor mAP on the 100 test rooms"),
    "segmentation-rooms": (["segmentation=linear", "dataset=rooms"], 1000,
                           "Pointcept's linear head, 2048-point crops at 5 cm, every point of the 100 test rooms (8 classes)"),
    "segmentation-scannet": (["segmentation=linear", "dataset=scannet"], 400,
                             "Pointcept's linear head, 2048-point crops at 5 cm; trained on scene0000_00/01, every point of "
                             "scene0000_02 (val and test; 20 classes, the classes present scored)"),
}
"""Each part: its task overrides, the step budget of its main sweep folder (<out>/<part>; 1500 = the 12 epochs of 1000
rooms that gave scratch 61.5; the ScanNet samples are two training scenes, so 400 steps), and its protocol in words."""


def run_part(part: str, out: Path, args) -> None:
    """The sweep of one part (resumes: finished runs are kept); records the commit it ran at."""
    head, default_steps, _ = PARTS[part]
    fractions = args.fractions if part != "segmentation-scannet" else [1.0]
    steps = args.steps or default_steps
    # a step budget other than the part's default is another protocol: a sweep folder of its own
    folder = out / part if steps == default_steps else out / f"{part}-{steps}-steps"
    folder.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    # the commits of the code the runs were launched with (a sweep resumed at another commit adds a line)
    seen = (folder / "commit.txt").read_text().split() if (folder / "commit.txt").is_file() else []
    (folder / "commit.txt").write_text("\n".join(dict.fromkeys([*seen, commit])) + "\n")
    cmd = [sys.executable, "-P", "-m", "geossl", "finetune", "-m", *head, f"encoder={','.join(args.starts)}",
           f"dataset.train_fraction={','.join(f'{f:g}' for f in fractions)}", f"seed={','.join(map(str, args.seeds))}",
           f"trainer.steps={steps}", "trainer.progress=false", *args.set,
           f"hydra.sweep.dir={folder}", f"hydra.launcher.n_jobs={args.jobs}"]
    print(" ".join(cmd), flush=True)
    subprocess.run(cmd, check=False)


def sentences(part: str, result: dict) -> list:
    """One plain line per backbone and metric: at each fraction every pretrained start's paired difference from scratch,
    best first, and whether the seeds tell it from zero (the 95% interval above 0: helps; below: hurts)."""
    out = []
    for metric, m in result["metrics"].items():
        if metric == "OA" or not m["paired"]:
            continue
        by_scratch = {}
        for p in m["paired"]:
            by_scratch.setdefault(p["scratch"], []).append(p)
        for scratch, pairs in by_scratch.items():
            parts = []
            for f in sorted({p["fraction"] for p in pairs}):
                said = []
                for p in sorted((p for p in pairs if p["fraction"] == f), key=lambda p: -p["mean"]):
                    name = p["start"].split(", ", 1)[-1]
                    if p["lo"] is None:  # one seed: compare.json stores the missing interval as null
                        said.append(f"{name} {100 * p['mean']:+.1f} (one seed: no interval, no claim)")
                    else:
                        verdict = "helps" if p["lo"] > 0 else "hurts" if p["hi"] < 0 else "no difference the seeds can tell"
                        said.append(f"{name} {100 * p['mean']:+.1f} [{100 * p['lo']:+.1f}, {100 * p['hi']:+.1f}] ({verdict}, "
                                    f"{p['n']} seeds)")
                parts.append(f"at {100 * f:g}%: " + "; ".join(said))
            out.append(f"- {part}, {metric}, pretrained minus {scratch}: " + " | ".join(parts) + ".")
    return out


NOT_PROTOCOL = ("run_dir", "out_dir", "trainer.progress", "trainer.threads", "trainer.num_workers", "dataset.cache")
"""Config keys that say where a run wrote or how fast it read, not what it learned: left out of the commands below."""


def pretraining_command(cfg) -> str:
    """The `geossl pretrain` command that made a run with config ``cfg``: its scene, encoder and dataset, then every
    setting that differs from what those three compose to by default (speed and output settings left out), and its seed."""
    from omegaconf import OmegaConf

    from geossl.config import compose
    from geossl.pipeline import TASKS, run_domain

    head = [f"scene={cfg.scene.name}", f"encoder={cfg.encoder.name}", f"dataset={cfg.dataset.name}"]
    task = TASKS.get("pretrain")
    domain = run_domain(task, head)
    default = compose(task.config.format(domain=domain), head, domain)

    def flat(tree, prefix=""):
        if isinstance(tree, dict):
            for key, value in tree.items():
                yield from flat(value, f"{prefix}{key}.")
        else:
            yield prefix[:-1], tree

    ran = dict(flat(OmegaConf.to_container(cfg, resolve=False)))
    ref = dict(flat(OmegaConf.to_container(default, resolve=False)))
    changed = [f"{k}={v}" for k, v in ran.items() if k != "seed" and k not in NOT_PROTOCOL and ref.get(k, object()) != v]
    return "geossl pretrain " + " ".join([*head, *changed, f"seed={cfg.get('seed', 0)}"])


def pretrained_starts(result: dict) -> str:
    """How each pretrained start of a sweep was made: the `geossl pretrain` command rebuilt from the config.yaml that
    it writes beside its encoder.safetensors, and its threads and minutes from the summary.json there (a file without
    a config.yaml is named as such)."""
    from omegaconf import OmegaConf

    said = []
    for label, start in result["starts"].items():
        if start["pretraining"] == "scratch":
            continue
        run_dir = Path(start["encoder"]).parent
        if not (run_dir / "config.yaml").is_file():
            said.append(f"{label}: `{start['encoder']}` (no config.yaml beside it)")
            continue
        summary = json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").is_file() else {}
        minutes = f", {summary['pretrain_seconds'] / 60:.0f} min" if "pretrain_seconds" in summary else ""
        said.append(f"{label}: `{pretraining_command(OmegaConf.load(run_dir / 'config.yaml'))}` "
                    f"({summary.get('torch_threads', '?')} thread(s){minutes})")
    return "Pretrained starts (rebuilt from the config.yaml beside each encoder file): " + "; ".join(said) + "." if said else ""


def recorded_full_rooms(result: dict) -> str:
    """The detection_rooms section's runs on all 1000 training rooms (12 epochs of 125 batches: 1500 steps with this
    schedule), for reference beside the sweep's fractions."""
    from _report import read_json

    runs = read_json("detection_rooms").get("runs", {})
    names = {"point_patch_transformer": "scratch", "pointmae": "Point-MAE", "gaussian2scene-view-crops": "Gaussian2Scene on view crops",
             "spunet": "SpUNet from scratch"}
    parts = []
    for key, label in names.items():
        values = [r["mAP@0.25"] for name, r in runs.items() if name.startswith(f"{key}-f1-seed")]
        if values:
            mean = sum(values) / len(values)
            std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else float("nan")
            parts.append(f"{label} {100 * mean:.1f} ± {100 * std:.1f} ({len(values)})")
    headline = [r for r in read_json("scene_headlines").get("rows", []) if r["command"] == "geossl finetune detection=votenet dataset=rooms"]
    longer = ""
    if headline:
        r = headline[0]
        scratch = {g["fraction"]: 100 * g["mean"] for g in result["metrics"]["mAP@0.25"]["groups"]
                   if g["start"] == "point_patch_transformer from scratch"}
        longer = (f" The scene_headlines section's `{r['command']}` at its default 5000 steps ({r['epochs']} epochs of all "
                  f"the rooms, scratch, one seed) reached {100 * r['results']['mAP@0.25']:.1f} mAP@0.25; at 1500 steps the "
                  "same start scores " + ", ".join(f"{v:.1f} at {f:.0%}" for f, v in sorted(scratch.items())) + " above.")
    return ("For reference, the detection_rooms section's runs on all 1000 training rooms (12 epochs of 125 batches = 1500 "
            "steps of this schedule; recorded at earlier commits, their pretrained encoders from the pretraining runs of that "
            "time, so not paired with this sweep's): mAP@0.25 " + ", ".join(parts) + " (mean ± sample std (seeds))." + longer)


def report(out: Path, parts) -> None:
    lines = [
        "`python benchmarks/label_efficiency.py` — `geossl finetune -m ... encoder=<starts> dataset.train_fraction=<f> seed=<s>` "
        "then `geossl compare` per part. Every fraction takes the same number of optimiser steps (AdamW, 100 warm-up steps, "
        "per-step cosine; a share of the training rooms repeats, reshuffled every pass; the same subset of rooms for every "
        "seed). One pretrained encoder per method (pretraining seed 0) serves every fine-tuning seed, so the intervals "
        "measure fine-tuning seeds, not pretraining seeds. Tables: mean ± sample std over seeds (%); paired differences: "
        "each seed's pretrained score minus its scratch score, mean [95% t interval]. The runs shared the 2 cores with up to "
        "three other runs, so their minutes are not speeds.", ""]
    record = {}
    for part in parts:
        folders = [f for f in [out / part, *sorted(out.glob(f"{part}-*-steps"))] if (f / "compare.json").is_file()]
        if not folders:
            lines += [f"### {part}", "", "Not run.", ""]
        for folder in folders:
            lines += part_section(part, folder, record)
    lines.append(machine_line(threads=""))
    write_section("label_efficiency", "## Label efficiency: fine-tuning from scratch and from pretrained encoders\n\n" + "\n".join(lines))
    write_json("label_efficiency", machine_free(record))


def part_section(part: str, folder: Path, record: dict) -> list:
    """The docs lines of one sweep folder of ``part`` (its tables, plots and sentences); adds its result to ``record``."""
    result = json.loads((folder / "compare.json").read_text())
    commit = ", ".join((folder / "commit.txt").read_text().split()) if (folder / "commit.txt").is_file() else "unknown"
    protocol = PARTS[part][2]
    png = ROOT / "docs" / "results" / f"label_efficiency_{folder.name}.png"
    shutil.copyfile(folder / "compare.png", png)
    curves = ""
    if (folder / "curves.png").is_file():
        curves_png = png.with_name(f"label_efficiency_{folder.name}_curves.png")
        shutil.copyfile(folder / "curves.png", curves_png)
        curves = f"; validation curves (mean over seeds): [docs/results/{curves_png.name}](results/{curves_png.name})"
    steps = result["compute"]["steps"]
    lines = [f"### {folder.name}", "", f"{protocol}; {', '.join(map(str, steps))} optimiser steps of 8 scenes; runs at geossl "
              f"commit {commit}. Plot: [docs/results/{png.name}](results/{png.name}){curves}.", "",
              (folder / "compare.md").read_text().strip(), "", *sentences(part, result), ""]
    starts = pretrained_starts(result)
    if starts:
        lines += [starts, ""]
    if folder.name == "detection-rooms":
        lines += [recorded_full_rooms(result), ""]
    record[folder.name] = {**result, "commit": commit}
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="a folder with one sweep folder per part")
    ap.add_argument("--parts", nargs="+", choices=list(PARTS), default=list(PARTS))
    ap.add_argument("--starts", nargs="+", default=["point_patch_transformer"], help="registry names (scratch) and encoder files")
    ap.add_argument("--fractions", nargs="+", type=float, default=[0.05, 0.2, 1.0])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=None,
                    help="optimiser steps per run; default: the part's (" + ", ".join(f"{p} {v[1]}" for p, v in PARTS.items())
                         + "); another budget gets its own sweep folder <part>-<steps>-steps")
    ap.add_argument("--jobs", type=int, default=2, help="runs at once")
    ap.add_argument("--set", nargs="*", default=[], help="more overrides for every run")
    ap.add_argument("--report-only", action="store_true", help="write docs/results.md from the sweeps already run")
    args = ap.parse_args()
    if not args.report_only:
        for part in args.parts:
            run_part(part, args.out, args)
    report(args.out, list(PARTS))


if __name__ == "__main__":
    main()
