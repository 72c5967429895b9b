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
name (from scratch), a zoo name or an encoder file; one file per method serves every fine-tuning seed.

Every reported run is kept in docs/results/label_efficiency_runs/<sweep folder>.json (its scores, validation curve,
minutes, and how its pretrained start was made); the section is written from those records plus the finished runs under
--out (a run there replaces the record of the same start, fraction and seed), so a sweep run elsewhere, or later, adds to
the same tables.

    python benchmarks/label_efficiency.py --out /work/bench/le --parts detection-rooms \\
        --starts point_patch_transformer /work/pre/pointmae/seed0/encoder.safetensors --fractions 0.05 --seeds 0 1 2
    python benchmarks/label_efficiency.py --out /work/bench/le --report-only
"""

from __future__ import annotations

import argparse
import collections
import functools
import json
import math
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import ROOT, cpu_name, machine_free, machine_line, write_json, write_section  # noqa: E402

from geossl.compare import METRICS, read_runs  # noqa: E402
from geossl.io import finite_or_none, write_json as write_json_file  # noqa: E402

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


@functools.lru_cache(maxsize=None)  # once per encoder: a file's command is rebuilt by composing a Hydra config
def pretrained_start(encoder: str) -> str | None:
    """How the pretrained encoder ``encoder`` was made: a zoo name's card (its command, commit, threads, minutes), or a
    file's `geossl pretrain` command rebuilt from the config.yaml that pretraining wrote beside it, with its threads and
    minutes from the summary.json there; None for a file without a config.yaml."""
    from omegaconf import OmegaConf

    from geossl import zoo

    if zoo.is_zoo_name(encoder):
        c = zoo.card(encoder)
        return f"`{c['command']}` at {c['commit']} (geossl zoo `{encoder}`; {c['threads']} thread(s), {c['train_minutes']:.0f} min)"
    run_dir = Path(encoder).parent
    if not (run_dir / "config.yaml").is_file():
        return None
    summary = json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").is_file() else {}
    minutes = f", {summary['pretrain_seconds'] / 60:.0f} min" if "pretrain_seconds" in summary else ""
    return (f"`{pretraining_command(OmegaConf.load(run_dir / 'config.yaml'))}` "
            f"({summary.get('torch_threads', '?')} thread(s){minutes})")


def pretrained_starts(result: dict, runs: list) -> str:
    """One line: how each pretrained start of a sweep folder was made (the ``pretrained_start`` its run records carry)."""
    said = []
    for label, start in result["starts"].items():
        if start["pretraining"] == "scratch":
            continue
        how = next((r["pretrained_start"] for r in runs if r["encoder"] == start["encoder"] and r.get("pretrained_start")), None)
        said.append(f"{label}: {how}" if how else f"{label}: `{start['encoder']}` (no config.yaml beside it)")
    return "Pretrained starts: " + "; ".join(said) + "." if said else ""


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


RECORDS = ROOT / "docs" / "results" / "label_efficiency_runs"
"""One JSON per sweep folder (``<part>.json``, ``<part>-<steps>-steps.json``): every run reported so far, so that the
section is rebuilt from the repository alone and a later sweep adds its runs to the same tables."""

KEEP = ("encoder", "backbone", "pretraining", "train_fraction", "train_scenes", "seed", "steps", "torch_threads",
        "train_seconds", "geossl", "cpu", "val_curve", "reconstructed", *METRICS)
"""The summary keys a run record keeps: what `geossl compare` reads, and nothing about where the run lay."""


def encoder_key(encoder: str) -> str:
    """The name a run record gives its start: a registry's ``<name> (from scratch)`` and a zoo name as they are, a file by
    its last two folders and its name (``pointmae/seed0/encoder.safetensors``: the method's folder and the run's)."""
    if encoder.endswith("(from scratch)") or "/" not in encoder:
        return encoder
    return "/".join(Path(encoder).parts[-3:])


def run_record(summary: dict) -> dict:
    """A finished run's summary as the record keeps it (:data:`KEEP`), its start named by :func:`encoder_key`, its CPU
    model (the summaries name no CPU, so this machine's: write the report where the sweep ran) and, for a pretrained
    start, how that encoder was made (:func:`pretrained_start`)."""
    record = {k: summary[k] for k in KEEP if k in summary}
    record["encoder"] = encoder_key(summary["encoder"])
    record.setdefault("cpu", cpu_name())
    if summary.get("pretraining") not in (None, "scratch"):
        record["pretrained_start"] = pretrained_start(summary["encoder"])
    return record


def recorded_runs(folder_name: str, out: Path) -> dict:
    """The runs of sweep folder ``folder_name``: those recorded in :data:`RECORDS` and the finished ones under
    ``out/folder_name`` (a run there replaces the record of the same start, fraction and seed); its commits likewise."""
    path = RECORDS / f"{folder_name}.json"
    data = json.loads(path.read_text()) if path.is_file() else {"commits": [], "runs": []}
    runs = {(r["encoder"], float(r["train_fraction"]), int(r["seed"])): r for r in data["runs"]}
    commits = list(data["commits"])
    folder = out / folder_name
    if folder.is_dir():
        for summary in read_runs(folder):
            r = run_record(summary)
            runs[(r["encoder"], float(r["train_fraction"]), int(r["seed"]))] = r
        if (folder / "commit.txt").is_file():
            commits += (folder / "commit.txt").read_text().split()
    ordered = sorted(runs.values(), key=lambda r: (r["encoder"], float(r["train_fraction"]), int(r["seed"])))
    return {"commits": list(dict.fromkeys(commits)), "runs": ordered}


def report(out: Path, parts) -> None:
    """Write the label_efficiency section: per sweep folder, its recorded runs plus the finished runs under ``out``
    (the record in :data:`RECORDS` is updated first), compared by `geossl compare`'s statistics."""
    lines = [
        "`python benchmarks/label_efficiency.py` — `geossl finetune -m ... encoder=<starts> dataset.train_fraction=<f> seed=<s>` "
        "then `geossl compare` per part. Every fraction takes the same number of optimiser steps (AdamW, 100 warm-up steps, "
        "per-step cosine; a share of the training rooms repeats, reshuffled every pass; the same subset of rooms for every "
        "seed). One pretrained encoder per method (pretraining seed 0) serves every fine-tuning seed, so the intervals "
        "measure fine-tuning seeds, not pretraining seeds. Tables: mean ± sample std over seeds (%); paired differences: "
        "each seed's pretrained score minus its scratch score, mean [95% t interval]. The runs shared the 2 cores with up to "
        "three other runs, so their minutes are not speeds. Every run's scores, curve and minutes are kept in "
        "docs/results/label_efficiency_runs/<folder>.json, from which this section is written.", ""]
    record = {}
    RECORDS.mkdir(parents=True, exist_ok=True)
    for part in parts:
        names = [part, *sorted({p.stem for p in RECORDS.glob(f"{part}-*-steps.json")} | {p.name for p in out.glob(f"{part}-*-steps")})]
        folders = []
        for name in names:
            data = recorded_runs(name, out)
            if data["runs"]:
                write_json_file(RECORDS / f"{name}.json", data)
                folders.append((name, data))
        if not folders:
            lines += [f"### {part}", "", "Not run.", ""]
        for name, data in folders:
            lines += part_section(part, name, data, record)
    lines.append("Section written on " + machine_line(threads="").removeprefix("Machine: "))
    write_section("label_efficiency", "## Label efficiency: fine-tuning from scratch and from pretrained encoders\n\n" + "\n".join(lines))
    write_json("label_efficiency", machine_free(record))


def cpus(runs: list) -> str:
    """Which CPU models ran the runs, and how many runs each (minutes from different models are not comparable)."""
    count = collections.Counter(r.get("cpu", "not recorded") for r in runs)
    return "CPUs (2 cores each): " + "; ".join(f"{cpu}: {n} run{'s' * (n > 1)}" for cpu, n in sorted(count.items())) + "."


def part_section(part: str, name: str, data: dict, record: dict) -> list:
    """The docs lines of sweep folder ``name`` of ``part`` (its tables, plots and sentences) from its runs ``data``;
    adds its result to ``record``."""
    from geossl.compare import compare, markdown, plot, plot_curves

    result = compare(data["runs"])  # NaN where one seed has no deviation or interval: the tables and plots print "-"
    strict = finite_or_none(result)  # as compare.json stores it: NaN as null (no interval, no claim)
    commit = ", ".join(data["commits"]) or "unknown"
    protocol = PARTS[part][2]
    png = plot(result, ROOT / "docs" / "results" / f"label_efficiency_{name}.png")
    curves = ""
    curves_png = plot_curves(result, png.with_name(f"label_efficiency_{name}_curves.png"))
    if curves_png:
        curves = f"; validation curves (mean over seeds): [docs/results/{curves_png.name}](results/{curves_png.name})"
    steps = result["compute"]["steps"]
    lines = [f"### {name}", "", f"{protocol}; {', '.join(map(str, steps))} optimiser steps of 8 scenes; runs at geossl "
             f"commit {commit}. Plot: [docs/results/{png.name}](results/{png.name}){curves}.", "",
             markdown(result).strip(), "", cpus(data["runs"]), "", *sentences(part, strict), ""]
    if any(r.get("reconstructed") for r in data["runs"]):
        lines += [f"{sum(1 for r in data['runs'] if r.get('reconstructed'))} of these runs are kept only as their scores: "
                  "their run folders were lost, so their records were rebuilt from docs/results/label_efficiency.json of "
                  "e15532a (scores exact; validation curve: the mean over its start and fraction's seeds, which leaves the "
                  "plotted means exact; minutes: the folder's mean per run, which leaves the total exact).", ""]
    starts = pretrained_starts(result, data["runs"])
    if starts:
        lines += [starts, ""]
    if name == "detection-rooms":
        lines += [recorded_full_rooms(result), ""]
    record[name] = {**strict, "commit": commit}
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
