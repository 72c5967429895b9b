"""Reproduce GraphMAE graph classification (Hou et al., KDD 2022, Table 3) on the TU datasets.

Protocol (the paper's): each seed pretrains from scratch with the dataset's preset (the paper's
hyperparameters, `configs/preset/graphmae_<dataset>.yaml`), pools the frozen encoder's node
embeddings per graph (the preset's pooling), and an SVC with C chosen by grid search inside each
fold is scored by 10-fold stratified cross-validation (fixed folds, as the reference). The table
gives the mean ± std over seeds of the 10-fold mean accuracy. Every run goes through the CLI.

    python benchmarks/graphmae_graph.py                                 # all datasets, seeds 0-4
    python benchmarks/graphmae_graph.py --datasets mutag --seeds 0 1    # a quick look
    python benchmarks/graphmae_graph.py --out runs/bench-graph          # keep run folders; reruns skip finished runs
    python benchmarks/graphmae_graph.py --render runs/bench-graph       # rebuild the table from finished runs
    python benchmarks/graphmae_graph.py --datasets mutag --spread mutag=0-24   # and the spread over 25 seeds

Writes the `graphmae_graph` section of docs/results.md and docs/results/graphmae_graph.json.
Data is read from $GEOSSL_DATA.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine_line, mean_std, write_json, write_section  # noqa: E402

from geossl.cli import main as geossl  # noqa: E402

DATASETS = ["mutag", "imdb-binary", "imdb-multi", "proteins", "nci1", "collab", "reddit-binary"]
PAPER = {"imdb-binary": "75.52 ± 0.66", "imdb-multi": "51.63 ± 0.52", "proteins": "75.30 ± 0.39", "collab": "80.32 ± 0.46",
         "mutag": "88.19 ± 1.26", "reddit-binary": "88.01 ± 0.19", "nci1": "80.40 ± 0.30"}
TARGET = {"mutag": 87.0, "imdb-binary": 74.8, "imdb-multi": 50.9, "proteins": 74.6, "nci1": 79.6}


def run(dataset: str, seed: int, extra: list[str], out: Path) -> dict:
    run_dir = out / f"{dataset}-seed{seed}"
    if (run_dir / "summary.json").is_file():
        return json.loads((run_dir / "summary.json").read_text())
    args = ["pretrain", "graph=graphmae", f"dataset={dataset}", f"seed={seed}", f"run_dir={run_dir}", "trainer.progress=false", *extra]
    if geossl(args) != 0:
        raise SystemExit(f"geossl {' '.join(args)} failed")
    return json.loads((run_dir / "summary.json").read_text())


def finished(folder: Path, dataset: str, seeds: list[int]) -> list[dict]:
    files = [folder / f"{dataset}-seed{s}" / "summary.json" for s in seeds]
    return [json.loads(f.read_text()) for f in files if f.is_file()]


def spread_line(dataset: str, rows: list[dict]) -> str:
    """One sentence on a dataset's accuracy over many seeds (how far 5 seeds can wander)."""
    acc = [r["cv_acc"] for r in rows]
    m, s = mean_std(acc)
    seeds = sorted(r["seed"] for r in rows)
    return (f"{dataset} over {len(rows)} seeds ({seeds[0]}-{seeds[-1]}, same protocol): {m:.2f} ± {s:.2f} "
            f"(min {min(acc):.2f}, max {max(acc):.2f}).")


#: How our setting or results differ from the reference's, and what was checked (a list under the table).
DIFFERENCES = [
    "The reference's code in others' hands (THUDM/GraphMAE issues): MUTAG 86.57 ± 1.21 (PyG branch, #45) and 86.47 ± 1.81 "
    "(DGL branch, #16); COLLAB 78.78 ± 0.46 (#16, before alpha was corrected to 1, which our preset uses); NCI1 76.9 and about 68 "
    "(#7, #64).",
    "A third party's log of the reference's DGL code on one GPU (adsfdagfqfa/GraphMAE, logs/medium_3090_20260620_183824/summary.log): "
    "MUTAG 87.67 ± 1.70, IMDB-B 75.20 ± 0.54, IMDB-M 51.53 ± 0.31, PROTEINS 75.13 ± 0.54 (seeds 0-5); COLLAB 80.40 ± 0.21, "
    "REDDIT-B 87.83 ± 0.16, NCI1 70.39 ± 0.28 (seeds 0-2). Its MUTAG seeds 0-4 give 88.18 (86.11, 87.25, 88.30, 89.88, 89.36), and "
    "two runs from another install give the same except seed 1 (87.78): the reference's MUTAG mean sits at the paper's, above our row.",
    "The same logs' last-epoch training losses (MUTAG seeds 0-5 mean 0.2444, graph_MUTAG.log; REDDIT-B 0.1125 and 0.1121, "
    "graph_REDDIT_BINARY.log) match the final loss column: our pretraining reaches the reference's loss, so the MUTAG and "
    "REDDIT-B gaps are not a loss that trains worse.",
    "MUTAG has 188 graphs: one graph moves a fold's accuracy by 5.3 points. REDDIT-B seed 0's encoder under fold seeds 1-3 "
    "(instead of the fixed 0) gives 85.55-86.05, so the fold assignment does not explain that gap either.",
    "SVC regularisation, a diagnostic outside the protocol (`geossl evaluate ... 'eval.C=[0.001,0.01,0.1,1.0,10.0,100.0,1000.0]'`): "
    "every fold of the five REDDIT-B seeds picks C = 10, the reference grid's largest; with C up to 1000 the seeds give "
    "89.10-89.95, and MUTAG seeds 0-4 give 86.78 ± 1.16. Our embeddings want weaker regularisation than the reference's grid "
    "allows, where its own runs reach their numbers inside it; why is not known. The table keeps the reference's grid.",
    "The reference's configs.yml gives COLLAB's and NCI1's pooling under the key `pool`, which its code never reads (it pools "
    "them by mean), and NCI1's entry sets no weight decay (its code then uses 5e-4). Our presets follow the stated values (max "
    "and sum pooling, no weight decay), which reproduce the paper; NCI1 seed 0 pooled by mean gives 79.46 against 79.73.",
]


def table(results: dict, quick: bool, note: str = "", spreads: list[str] = (), machine: str = "") -> str:
    lines = ["## GraphMAE graph classification (SVC, 10-fold CV)", "",
             "`python benchmarks/graphmae_graph.py` — each seed pretrains from scratch with the dataset's preset; the frozen "
             "encoder's pooled embeddings are classified by an SVC (C by inner grid search) under 10-fold stratified CV with "
             "fixed folds. Accuracy: mean ± population std over seeds of the 10-fold mean; fold std: the mean within-seed std; "
             "final loss: the mean last-epoch training loss; pretrain s/seed = s/epoch × epochs.", "",
             machine or machine_line(), *([note, ""] if note else [""]),
             "| dataset | epochs | seeds | accuracy (%) | paper (%) | target | fold std | final loss | RankMe | s/epoch | pretrain s/seed |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for dataset, rows in results.items():
        if not rows:
            target = f">= {TARGET[dataset]}" if dataset in TARGET else "-"
            lines.append(f"| {dataset} | - | 0 | not run | {PAPER.get(dataset, '-')} | {target} | | | | | |")
            continue
        acc = mean_std([r["cv_acc"] for r in rows])
        fold = mean_std([r["cv_std"] for r in rows])
        loss = mean_std([r["final_losses"]["loss"] for r in rows])
        rk = mean_std([r["rankme"] for r in rows])
        spe = mean_std([r["seconds_per_epoch"] for r in rows])
        secs = mean_std([r["seconds_per_epoch"] * r["epochs"] for r in rows])
        target = f">= {TARGET[dataset]}" if dataset in TARGET and not quick else "-"
        lines.append(f"| {dataset} | {rows[0]['epochs']} | {len(rows)} | **{acc[0]:.2f}{f' ± {acc[1]:.2f}' if len(rows) > 1 else ' (one seed)'}** | {PAPER.get(dataset, '-')} | "
                     f"{target} | {fold[0]:.2f} | {loss[0]:.4f} | {rk[0]:.1f} | {spe[0]:.3f} | {secs[0]:.0f} |")
    if spreads:
        lines += ["", *spreads]
    lines += ["", "Differences from the reference, and what was checked:", ""] + [f"- {d}" for d in DIFFERENCES]
    lines += ["", "Per seed (10-fold mean accuracy %):", ""]
    for dataset, rows in results.items():
        if rows:
            lines.append(f"- {dataset}: " + ", ".join(f"seed {r['seed']}: {r['cv_acc']:.2f}" for r in rows))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=DATASETS)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="extra config overrides (e.g. trainer.epochs=5 for a quick look; not the paper protocol)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads per run (0: torch's default)")
    ap.add_argument("--out", default=None, help="folder for the run folders (default: a temporary one); finished runs are reused")
    ap.add_argument("--render", default=None, metavar="RUNS_DIR", help="do not train: rebuild the table from finished runs")
    ap.add_argument("--note", default="", help="a sentence printed under the machine line (e.g. which commits made the runs)")
    ap.add_argument("--spread", nargs="*", default=[], metavar="DATASET=FIRST-LAST",
                    help="also run (or with --render, read) seeds FIRST..LAST of DATASET and report their spread under the table")
    ap.add_argument("--from-json", default=None, metavar="FILE",
                    help="do not train: rebuild the table from a results JSON this script wrote (with --machine and --spread-line)")
    ap.add_argument("--machine", default="", help="with --from-json: the machine line of the runs")
    ap.add_argument("--spread-line", nargs="*", default=[], help="with --from-json: spread sentences to print under the table")
    args = ap.parse_args()
    if args.from_json:
        results = json.loads(Path(args.from_json).read_text())
        results = {d: results.get(d, []) for d in args.datasets}
        body = table(results, False, args.note, args.spread_line, args.machine)
        write_section("graphmae_graph", body)
        print(body)
        return
    if args.render:
        results = {d: finished(Path(args.render), d, args.seeds) for d in args.datasets}
    else:
        out = Path(args.out or tempfile.mkdtemp(prefix="geossl-bench-graph-"))
        extra = [*args.set, f"trainer.threads={args.threads}"]
        results = {}
        for dataset in args.datasets:
            results[dataset] = [run(dataset, seed, extra, out) for seed in args.seeds]
            acc = mean_std([r["cv_acc"] for r in results[dataset]])
            print(f"{dataset}: {acc[0]:.2f} ± {acc[1]:.2f} over seeds {args.seeds}", flush=True)
    spreads = []
    for item in args.spread:
        dataset, _, span = item.partition("=")
        first, _, last = span.partition("-")
        seeds = list(range(int(first), int(last) + 1))
        if args.render:
            rows = finished(Path(args.render), dataset, seeds)
        else:
            rows = [run(dataset, seed, extra, out) for seed in seeds]
        spreads.append(spread_line(dataset, rows))
    quick = bool(args.set)
    body = table(results, quick, args.note, spreads)
    name = "graphmae_graph" if not quick else "graphmae_graph_quick"
    write_section(name, body)
    write_json(name, results)
    print(body)


if __name__ == "__main__":
    main()
