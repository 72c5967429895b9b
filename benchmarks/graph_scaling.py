"""Mini-batch GraphMAE on synthetic graphs of growing size (`dataset=synthetic_graph`: degree-corrected SBM, about
20 edges per node, 500-dim sparse bag-of-words features, 10 classes): seconds per 1,000 seed nodes, peak memory
of generation, training and layer-wise inference, and the linear probe after pretraining on the largest graph
asked for against raw features and an untrained encoder.

    python benchmarks/graph_scaling.py --sizes 100000 1000000 3000000 --probe 1000000

Each size runs in a process of its own (`--one <n>`), so its peaks are its own; a phase's peak is the process's
resident high-water mark from the start of that phase (reset through /proc/self/clear_refs). The probe run is
`geossl pretrain graph=graphmae dataset=synthetic_graph sampler=neighbour ...` (the CLI, which embeds the graph
layer by layer for the probe).

Writes the `graph_scaling` section of docs/results.md and docs/results/graph_scaling.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine_line, write_json, write_section  # noqa: E402

#: The pretraining setup of every size (GraphMAE's GAT, narrower than the paper's ogbn settings to suit a CPU).
MODEL = {"hidden": 256, "layers": 2, "heads": 4}
SAMPLER = {"fanouts": [10, 10], "batch_nodes": 1024}
CHUNK = 4096


def one(n: int, steps: int, threads: int) -> dict:
    """Generation, ``steps`` timed GraphMAE steps (after one warm-up) and layer-wise inference on an ``n``-node graph."""
    from geossl.graph.encoders.gat import GAT
    from geossl.graph.layerwise import embed_layerwise
    from geossl.graph.methods.graphmae import GraphMAE
    from geossl.graph.minibatch import SubgraphBatch
    from geossl.graph.synthetic import synthetic_graph_dataset
    from geossl.io import peak_rss_mb, reset_peak_rss

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    out = {"nodes": n}
    reset_peak_rss()
    t = time.perf_counter()
    data = synthetic_graph_dataset(num_nodes=n).data
    out["generate_s"] = time.perf_counter() - t
    out["generate_peak_mb"] = peak_rss_mb()
    x = data.x
    out["edges"] = int(data.edge_index.shape[1])
    out["graph_mb"] = (data.edge_index.numel() * 8 + (x.crow_indices().numel() + x.col_indices().numel()) * 8
                       + x.values().numel() * 4) / 2**20
    reset_peak_rss()
    batches = SubgraphBatch(data, "neighbour", fanouts=SAMPLER["fanouts"])
    method = GraphMAE(GAT(500, **MODEL), in_dim=500)
    opt = torch.optim.Adam(method.parameters(), lr=1e-3)
    seeds = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    size = SAMPLER["batch_nodes"]
    times, nodes, edges = [], [], []
    for step in range(steps + 1):
        t = time.perf_counter()
        batch = batches([(int(s), step) for s in seeds[step * size:(step + 1) * size]])
        loss = method(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step:  # the first step warms up
            times.append(time.perf_counter() - t)
            nodes.append(batch.num_nodes)
            edges.append(batch.edge_index.shape[1])
    out.update(seconds_per_1000_seeds=sum(times) / len(times) * 1000 / size, subgraph_nodes=sum(nodes) / len(nodes),
               subgraph_edges=sum(edges) / len(edges), train_peak_mb=peak_rss_mb(), steps=steps)
    reset_peak_rss()
    t = time.perf_counter()
    z = embed_layerwise(method.encoder, data, CHUNK)
    out.update(layerwise_s=time.perf_counter() - t, layerwise_peak_mb=peak_rss_mb(), embedding_mb=z.numel() * 4 / 2**20)
    return out


def baselines(n: int, threads: int) -> dict:
    """The linear probe on raw features and on an untrained encoder's layer-wise embeddings (same splits as the run)."""
    from geossl.eval import linear_probe
    from geossl.graph.encoders.gat import GAT
    from geossl.graph.layerwise import embed_layerwise
    from geossl.graph.synthetic import synthetic_graph_dataset

    torch.set_num_threads(threads)
    data = synthetic_graph_dataset(num_nodes=n).data
    used = (data.train_mask | data.val_mask | data.test_mask).nonzero().flatten()
    from geossl.graph.encoders.inputs import select_rows

    raw = select_rows(data.x, used).to_dense()
    masks = [m[used] for m in (data.train_mask, data.val_mask, data.test_mask)]
    out = {"raw_features": linear_probe(raw, data.y[used], *masks, seed=0).test_acc}
    torch.manual_seed(0)
    z = embed_layerwise(GAT(500, **MODEL), data, CHUNK)
    out["untrained_encoder"] = linear_probe(z, data.y, data.train_mask, data.val_mask, data.test_mask, seed=0).test_acc
    return out


def child(args: list) -> dict:
    res = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", nargs="+", type=int, default=[100_000, 1_000_000, 3_000_000])
    ap.add_argument("--steps", type=int, default=10, help="timed training steps per size")
    ap.add_argument("--probe", type=int, default=1_000_000, help="nodes of the graph pretrained for the probe (0: none)")
    ap.add_argument("--probe-seeds", type=int, default=102_400, help="seed nodes the probe run pretrains on (one epoch)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="runs/graph_scaling")
    ap.add_argument("--note", default="", help="a line under the machine line (e.g. what else ran on the machine)")
    ap.add_argument("--render", action="store_true", help="only rewrite the section from docs/results/graph_scaling.json")
    ap.add_argument("--one", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--baselines", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.steps, args.threads)))
        return
    if args.baselines:
        print(json.dumps(baselines(args.baselines, args.threads)))
        return
    if args.render:
        saved = json.loads((Path(__file__).resolve().parents[1] / "docs" / "results" / "graph_scaling.json").read_text())
        rows, probe, machine = saved["rows"], saved["probe"], saved["machine"]
        args.steps, args.threads = rows[0]["steps"], saved.get("threads", args.threads)
        return write(rows, probe, machine, args)
    rows = [child(["--one", str(n), "--steps", str(args.steps), "--threads", str(args.threads)]) for n in args.sizes]
    probe = {}
    if args.probe:
        run_dir = Path(args.out) / f"graphmae-{args.probe}"
        if not (run_dir / "summary.json").is_file():
            cmd = [sys.executable, "-m", "geossl", "pretrain", "graph=graphmae", "dataset=synthetic_graph",
                   f"dataset.num_nodes={args.probe}", "sampler=neighbour", f"sampler.batch_nodes={SAMPLER['batch_nodes']}",
                   f"sampler.fanouts=[{','.join(map(str, SAMPLER['fanouts']))}]", f"sampler.seeds_per_epoch={args.probe_seeds}",
                   f"sampler.inference_chunk={CHUNK}", "trainer.epochs=1", f"trainer.threads={args.threads}", "trainer.progress=false",
                   *[f"encoder.{k}={v}" for k, v in MODEL.items()], f"run_dir={run_dir}"]
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0:
                raise SystemExit(f"{' '.join(cmd[2:])} failed:\n{res.stderr[-3000:]}")
        summary = json.loads((run_dir / "summary.json").read_text())
        probe = {"nodes": args.probe, "seed_nodes": args.probe_seeds, "pretrained": summary["test_acc"],
                 "pretrain_seconds": summary.get("pretrain_seconds", summary.get("seconds_per_epoch")),
                 **child(["--baselines", str(args.probe), "--threads", str(args.threads)])}
    machine = machine_line(threads=f"{args.threads} torch threads")
    write_json("graph_scaling", {"machine": machine, "threads": args.threads, "model": MODEL, "sampler": SAMPLER, "chunk": CHUNK,
                                 "rows": rows, "probe": probe})
    write(rows, probe, machine, args)


def write(rows: list, probe: dict, machine: str, args) -> None:
    lines = ["## GraphMAE on large synthetic graphs (mini-batch)", "",
             f"`python benchmarks/graph_scaling.py` — `dataset=synthetic_graph` (degree-corrected SBM, 10 classes, ~20 edges "
             f"per node, 500-dim sparse bag-of-words features, kept sparse). GraphMAE with a GAT ({MODEL['layers']} layers, "
             f"hidden {MODEL['hidden']}, {MODEL['heads']} heads), neighbour sampling (fan-outs {SAMPLER['fanouts']}, "
             f"{SAMPLER['batch_nodes']} seeds per step), {args.steps} timed steps after one warm-up; layer-wise inference in "
             f"chunks of {CHUNK} nodes. Each size in its own process; a phase's peak is the process's resident high-water "
             "mark from the start of that phase (graph storage included).", "",
             machine, *([args.note] if args.note else []), "",
             "| nodes | edges (with self-loops) | graph storage (MB) | generate (s) | generate peak (MB) | s / 1,000 seeds | "
             "subgraph nodes / edges per step | training peak (MB) | layer-wise inference (s) | inference peak (MB) | "
             "embeddings (MB) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['nodes']:,} | {r['edges']:,} | {r['graph_mb']:.0f} | {r['generate_s']:.1f} | {r['generate_peak_mb']:.0f} | "
                     f"**{r['seconds_per_1000_seeds']:.2f}** | {r['subgraph_nodes']:,.0f} / {r['subgraph_edges']:,.0f} | "
                     f"**{r['train_peak_mb']:.0f}** | {r['layerwise_s']:.1f} | {r['layerwise_peak_mb']:.0f} | {r['embedding_mb']:.0f} |")
    if probe:
        lines += ["", f"Linear probe (test accuracy, 10% train / 10% val / 20% test nodes) on the {probe['nodes']:,}-node graph: "
                  f"after pretraining on {probe['seed_nodes']:,} seed nodes (one epoch of `sampler.seeds_per_epoch`) "
                  f"**{100 * probe['pretrained']:.1f}%**; raw features {100 * probe['raw_features']:.1f}%; the same encoder untrained "
                  f"{100 * probe['untrained_encoder']:.1f}%. Seed 0."]
    write_section("graph_scaling", "\n".join(lines))


if __name__ == "__main__":
    main()
