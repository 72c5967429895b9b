"""Reproduce GraphMAE node classification (Hou et al., KDD 2022, Table 1) on Cora and CiteSeer.

Protocol (the paper's): each seed pretrains from scratch with the dataset's preset (the paper's
hyperparameters), embeds the clean graph with the frozen encoder, trains a linear probe on the
public training split, and reports the test accuracy of the epoch with the best validation
accuracy. Mean +- std over seeds. Every run goes through the real CLI (`geossl pretrain`).

    python benchmarks/graphmae_node.py                      # Cora and CiteSeer, seeds 0-4
    python benchmarks/graphmae_node.py --datasets cora --seeds 0 1 --epochs 100   # a quick look

Writes the `graphmae_node` section of docs/results.md and docs/results/graphmae_node.json.
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

PAPER = {"cora": "84.2 ± 0.4", "citeseer": "73.4 ± 0.4"}
TARGET = {"cora": 83.7, "citeseer": 72.9}


def run(dataset: str, seed: int, epochs: int | None, out: Path) -> dict:
    run_dir = out / f"{dataset}-seed{seed}"
    args = ["pretrain", "graph=graphmae", f"dataset={dataset}", f"seed={seed}", f"run_dir={run_dir}", "trainer.progress=false"]
    if epochs:
        args.append(f"trainer.epochs={epochs}")
    if geossl(args) != 0:
        raise SystemExit(f"geossl {' '.join(args)} failed")
    return json.loads((run_dir / "summary.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["cora", "citeseer"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument("--epochs", type=int, default=None, help="override the preset's epochs (a quick look; not the paper protocol)")
    ap.add_argument("--out", default=None, help="folder for the run folders (default: a temporary one)")
    ap.add_argument("--render", default=None, metavar="RUNS_DIR",
                    help="do not train: rebuild the tables from the summary.json files of an earlier run of this script")
    args = ap.parse_args()
    if args.render:
        results = {}
        for dataset in args.datasets:
            results[dataset] = [json.loads((Path(args.render) / f"{dataset}-seed{seed}" / "summary.json").read_text()) for seed in args.seeds]
    else:
        out = Path(args.out or tempfile.mkdtemp(prefix="geossl-bench-"))
        results = {}
        for dataset in args.datasets:
            results[dataset] = [run(dataset, seed, args.epochs, out) for seed in args.seeds]
            accs = [100 * r["test_acc"] for r in results[dataset]]
            print(f"{dataset}: {mean_std(accs)[0]:.2f} ± {mean_std(accs)[1]:.2f} over seeds {args.seeds}", flush=True)

    lines = ["## GraphMAE node classification (linear probe)", "",
             "`python benchmarks/graphmae_node.py` — each seed pretrains from scratch with the dataset's preset "
             "(paper hyperparameters: `configs/preset/graphmae_<dataset>.yaml`), then a linear probe on the frozen "
             "embeddings reports the test accuracy at the best-validation epoch. Mean ± population std over seeds. "
             "The s/epoch column is the pretraining step time of these runs as they happened (the machine may have "
             "been shared); the speed section is measured on an idle machine.", "",
             machine_line(), "",
             "| dataset | epochs | seeds | test acc (%) | paper (%) | target | val acc (%) | RankMe | s/epoch (these runs) | pretrain s/seed |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for dataset, rows in results.items():
        acc = mean_std([100 * r["test_acc"] for r in rows])
        val = mean_std([100 * r["val_acc"] for r in rows])
        rk = mean_std([r["rankme"] for r in rows])
        spe = mean_std([r["seconds_per_epoch"] for r in rows])
        secs = mean_std([r["pretrain_seconds"] for r in rows])
        target = f">= {TARGET[dataset]}" if dataset in TARGET and not args.epochs else "-"
        lines.append(f"| {dataset} | {rows[0]['epochs']} | {len(rows)} | **{acc[0]:.2f} ± {acc[1]:.2f}** | {PAPER.get(dataset, '-')} | "
                     f"{target} | {val[0]:.2f} ± {val[1]:.2f} | {rk[0]:.1f} ± {rk[1]:.1f} | {spe[0]:.3f} ± {spe[1]:.3f} | {secs[0]:.0f} |")
    lines += ["", "Per seed (test acc %, RankMe of the final embeddings, pretraining s/epoch):", ""]
    for dataset, rows in results.items():
        lines.append(f"- {dataset}: " + ", ".join(
            f"seed {r['seed']}: {100 * r['test_acc']:.1f} (RankMe {r['rankme']:.0f}, {r['seconds_per_epoch']:.3f} s/epoch)" for r in rows))
    name = "graphmae_node" if not args.epochs else "graphmae_node_quick"
    write_section(name, "\n".join(lines))
    write_json(name, results)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
