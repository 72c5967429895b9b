"""Does RankMe choose hyperparameters as labels would? Sweeps through `geossl pretrain -m`, each selected by
`geossl select <sweep> by=rankme` (RankMe of the run's final embeddings; see geossl/select.py for which embeddings),
measured against the downstream result.

Parts (a sweep folder each under --out; reruns skip finished runs):
  graphmae-cora       graph.mask_rate x trainer.lr x encoder.hidden (12 runs), 300 epochs (the preset trains 1500)
  graphmae-citeseer   the same grid, 150 epochs (the preset trains 300)
  barlow-twins-cora   graph.feature_drop x graph.edge_drop x graph.lam (8 runs): benchmarks/graph_barlow_twins.py's grid
                      folder (--barlow-twins-grid), 500 epochs
  pointmae-rooms      scene.mask_ratio x encoder.centres (6 runs) on 250 training rooms for 10 epochs; result: the
                      segmentation probe's test mIoU

    python benchmarks/rankme_selection.py --out /work/bench/rankme --barlow-twins-grid /work/bench/gbt/grid
    python benchmarks/rankme_selection.py --out /work/bench/rankme --barlow-twins-grid /work/bench/gbt/grid --report-only

Writes the rankme_selection section of docs/results.md, docs/results/rankme_selection.json and one PNG per sweep
(RankMe against the result, the choices marked).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import ROOT, machine_free, machine_line, write_json, write_section  # noqa: E402

GRAPHMAE_GRID = ["graph.mask_rate=0.25,0.5,0.75", "trainer.lr=0.001,0.005", "encoder.hidden=256,512"]
#: part -> (overrides of its sweep, the preset's values of the swept keys, what the sweep is)
PARTS = {
    "graphmae-cora": (["graph=graphmae", "dataset=cora", *GRAPHMAE_GRID, "trainer.epochs=300"],
                      {"graph.mask_rate": "0.5", "trainer.lr": "0.001", "encoder.hidden": "512"},
                      "GraphMAE on Cora, mask rate x lr x hidden width, 300 epochs; linear-probe test accuracy"),
    "graphmae-citeseer": (["graph=graphmae", "dataset=citeseer", *GRAPHMAE_GRID, "trainer.epochs=150"],
                          {"graph.mask_rate": "0.5", "trainer.lr": "0.001", "encoder.hidden": "512"},
                          "GraphMAE on CiteSeer, mask rate x lr x hidden width, 150 epochs; linear-probe test accuracy"),
    "barlow-twins-cora": (None, {"graph.feature_drop": None, "graph.edge_drop": None, "graph.lam": "null"},
                          "Graph Barlow Twins on Cora, feature drop x edge drop x lambda, 500 epochs; linear-probe test accuracy"),
    "pointmae-rooms": (["scene=pointmae", "dataset=rooms", "scene.mask_ratio=0.4,0.6,0.8", "encoder.centres=32,64",
                        "dataset.splits.train=[0,250]", "trainer.epochs=10"],
                       {"scene.mask_ratio": "0.6", "encoder.centres": "64"},
                       "Point-MAE on rooms, mask ratio x patch count, 250 training rooms x 10 epochs; segmentation-probe test mIoU"),
}


def preset_values(part: str) -> dict:
    """The preset's values of the swept keys (Graph Barlow Twins': the Cora preset's drop rates)."""
    values = dict(PARTS[part][1])
    if part == "barlow-twins-cora":
        from omegaconf import OmegaConf

        p = OmegaConf.load(ROOT / "configs" / "preset" / "barlow_twins_cora.yaml")
        values.update({"graph.feature_drop": f"{p.graph.feature_drop:g}", "graph.edge_drop": f"{p.graph.edge_drop:g}"})
    return values


def folder_of(part: str, args) -> Path:
    return args.barlow_twins_grid if part == "barlow-twins-cora" else args.out / part


def run_part(part: str, args) -> None:
    overrides = PARTS[part][0]
    if overrides is None:
        return  # run by benchmarks/graph_barlow_twins.py
    cmd = [sys.executable, "-P", "-m", "geossl", "pretrain", "-m", *overrides, "trainer.progress=false",
           f"trainer.threads={args.threads}", f"hydra.sweep.dir={folder_of(part, args)}", f"hydra.launcher.n_jobs={args.jobs}"]
    print(" ".join(cmd), flush=True)
    subprocess.run(cmd, check=False)


def pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def report(args) -> None:
    from geossl.select import plot, select, read_pretraining_runs

    lines = ["`python benchmarks/rankme_selection.py` — each sweep through `geossl pretrain -m`, one seed (0) per "
             "configuration, then `geossl select <sweep> by=rankme`: RankMe (Garrido et al., 2023) of each run's final "
             "embeddings (all nodes of the graph, transductive: pretraining never saw labels; scenes: the points of the 100 "
             "test rooms; at most 25,600 rows, the paper's sample size) against the downstream result. Chosen: the run of "
             "highest RankMe; by validation: the run of best validation accuracy (mIoU); oracle: the best test result; preset: "
             "the run with the preset's values of the swept keys (at the sweep's budget). Correlations over all runs of a sweep.", "",
             "| sweep | runs | Spearman | Kendall tau-b | RankMe's choice | by validation | oracle | preset |", "|---|---|---|---|---|---|---|---|"]
    record = {}
    notes = []
    for part, (_, _, about) in PARTS.items():
        folder = folder_of(part, args)
        runs = read_pretraining_runs(folder, "rankme") if folder is not None and folder.is_dir() else []
        if not runs:
            lines.append(f"| {part} | not run | | | | | | |")
            continue
        sel = select(runs)
        rows = sel["runs"]
        want = preset_values(part)
        preset = next((r for r in rows if all(r["settings"].get(k, v) == v for k, v in want.items())), None)

        def cell(i: int) -> str:
            r = rows[i]
            what = ", ".join(f"{k.split('.')[-1]}={v}" for k, v in r["settings"].items())
            return f"{pct(r['result'])} ({what})"

        lines.append(f"| {part} | {len(rows)} | {sel['spearman']:.2f} | {sel['kendall']:.2f} | {cell(sel['chosen'])} | "
                     f"{cell(sel['by_labels'])} | {cell(sel['oracle'])} | {pct(preset['result']) if preset else '-'} |")
        png = ROOT / "docs" / "results" / f"rankme_{part}.png"
        plot(sel, png, title=f"{part}: Spearman {sel['spearman']:.2f}")
        notes.append(f"{part}: {about}. Plot: [docs/results/{png.name}](results/{png.name}).")
        record[part] = {**machine_free(sel), "preset": preset and machine_free(preset)}
    lines += ["", *[f"- {n}" for n in notes], "", machine_line(threads=f"{args.threads} torch thread(s) per run")]
    write_section("rankme_selection", "## RankMe as a hyperparameter selector\n\n" + "\n".join(lines))
    write_json("rankme_selection", record)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--parts", nargs="+", choices=list(PARTS), default=list(PARTS))
    ap.add_argument("--barlow-twins-grid", type=Path, help="benchmarks/graph_barlow_twins.py's grid folder")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()
    if not args.report_only:
        for part in args.parts:
            run_part(part, args)
    report(args)


if __name__ == "__main__":
    main()
