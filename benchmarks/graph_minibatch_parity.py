"""Mini-batch GraphMAE on Cora and CiteSeer against the full-batch table (docs/results/graphmae_node.json): the
same preset (the paper's hyperparameters), trained on sampled subgraphs for as many optimizer steps as the
full-batch schedule takes, then the same linear probe on layer-wise embeddings of the whole graph.

    python benchmarks/graph_minibatch_parity.py --out /work/bench/parity --seeds 0 1 2 3 4

Every run is `geossl pretrain graph=graphmae dataset=<d> sampler=<s> <sampler settings> trainer.epochs=<e> seed=<s>`
with e = the preset's epochs / steps per epoch (rounded up). Writes the `graph_minibatch_parity` section of
docs/results.md and docs/results/graph_minibatch_parity.json.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import geossl_run, machine_line, mean_std, write_json, write_section  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: Nodes and the preset's full-batch epochs of each dataset.
DATASETS = {"cora": (2708, 1500), "citeseer": (3327, 300)}
#: Each sampler's settings: seeds per step and the rest.
SAMPLERS = {"neighbour": (1024, ["sampler.fanouts=[10,10]"]), "local_cluster": (256, ["sampler.size=32"])}


def epochs_for(dataset: str, sampler: str) -> int:
    nodes, full_epochs = DATASETS[dataset]
    return math.ceil(full_epochs / math.ceil(nodes / SAMPLERS[sampler][0]))


def run(dataset: str, sampler: str, seed: int, out: Path, threads: int) -> dict:
    batch, options = SAMPLERS[sampler]
    return geossl_run(["pretrain", "graph=graphmae", f"dataset={dataset}", f"sampler={sampler}", f"sampler.batch_nodes={batch}",
                       *options, f"trainer.epochs={epochs_for(dataset, sampler)}", f"seed={seed}", f"trainer.threads={threads}",
                       "trainer.progress=false"], out / f"{dataset}-{sampler}-seed{seed}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS))
    ap.add_argument("--samplers", nargs="+", default=list(SAMPLERS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--render", action="store_true", help="only rebuild the table from the finished runs in --out")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not args.render:
        for seed in args.seeds:
            for dataset in args.datasets:
                for sampler in args.samplers:
                    run(dataset, sampler, seed, out, args.threads)
    full = json.loads((ROOT / "docs" / "results" / "graphmae_node.json").read_text())
    results = {}
    lines = ["## GraphMAE on sampled subgraphs against full batch (Cora, CiteSeer)", "",
             "`python benchmarks/graph_minibatch_parity.py` — the dataset's GraphMAE preset trained on sampled subgraphs "
             "for as many optimizer steps as its full-batch schedule (epochs = full-batch epochs / steps per epoch), then "
             "the same linear probe on layer-wise embeddings of the whole graph. Neighbour sampling: 1024 seeds per step, "
             "fan-outs [10, 10]; local clustering: 256 seeds per step, 32 nodes per cluster. Full batch: the "
             "`graphmae_node` table above. Mean ± population std over seeds.", "",
             machine_line(threads=f"{torch.get_num_threads()} torch threads in this process; runs used {args.threads}"), "",
             "| dataset | sampler | epochs | seeds | test accuracy (%) | full batch (%) | difference (points) | s/epoch |",
             "|---|---|---|---|---|---|---|---|"]
    for dataset in args.datasets:
        base = [100 * r["test_acc"] for r in full.get(f"graphmae/{dataset}", [])]
        for sampler in args.samplers:
            rows = [json.loads(p.read_text()) for p in sorted(out.glob(f"{dataset}-{sampler}-seed*/summary.json"))]
            if not rows:
                continue
            accs = [100 * r["test_acc"] for r in rows]
            (m, s), (bm, bs) = mean_std(accs), mean_std(base) if base else (float("nan"), float("nan"))
            spe = mean_std([r["seconds_per_epoch"] for r in rows])[0]
            results[f"{dataset}/{sampler}"] = rows
            lines.append(f"| {dataset} | {sampler} | {rows[0]['epochs']} | {len(rows)} | **{m:.2f} ± {s:.2f}** | {bm:.2f} ± {bs:.2f} "
                         f"({len(base)} seeds) | {m - bm:+.2f} | {spe:.2f} |")
    write_json("graph_minibatch_parity", results)
    write_section("graph_minibatch_parity", "\n".join(lines))


if __name__ == "__main__":
    main()
