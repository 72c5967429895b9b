"""GraphMAE pretraining speed on Cora: geossl against a textbook PyG implementation, same run.

The baseline is GraphMAE written the way the reference's PyG branch writes it: PyG ``GATConv``
layers (gather/scatter message passing), dense masked inputs, ``F.dropout``, the SCE loss on
``F.normalize``-d rows. Same architecture and hyperparameters as ``configs/preset/graphmae_cora*``.
geossl is timed through the real CLI (``geossl pretrain graph=graphmae dataset=cora``) and the
seconds per epoch it writes into ``summary.json`` (training steps only). Each measurement runs
in its own process, so the peak resident memory is that measurement's alone.

    python benchmarks/graphmae_speed.py [--epochs 100] [--rounds 3]

The two are measured in alternating rounds and each row reports its median round, so a drift
of the machine's speed during the run hits both rows alike.

Writes the `graphmae_speed` section of docs/results.md. Run it on an otherwise idle machine:
two busy threads on two cores slow everything down.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine_line, matmul_gflops, write_json, write_section  # noqa: E402

BASELINE = textwrap.dedent('''
    import resource, sys, time, json
    import torch, torch.nn as nn, torch.nn.functional as F
    from torch_geometric.nn import GATConv
    from geossl.graph.datasets import load_dataset

    epochs = int(sys.argv[1])
    torch.set_num_threads(int(sys.argv[2]))
    torch.manual_seed(0)
    ds = load_dataset("cora"); data = ds.data; x = data.x; n, f = x.shape

    class GAT(nn.Module):
        def __init__(self, dims, heads, last_act):
            super().__init__()
            self.convs = nn.ModuleList(GATConv(a, b // h, h, dropout=0.1, add_self_loops=False) for a, b, h in zip(dims[:-1], dims[1:], heads))
            self.acts = nn.ModuleList(nn.PReLU() if (i < len(heads) - 1 or last_act) else nn.Identity() for i in range(len(heads)))
        def forward(self, h, ei):
            for conv, act in zip(self.convs, self.acts):
                h = act(conv(F.dropout(h, 0.2, self.training), ei))
            return h

    enc, dec = GAT([f, 512, 512], [4, 4], True), GAT([512, f], [1], False)
    e2d = nn.Linear(512, 512, bias=False); token = nn.Parameter(torch.zeros(1, f))
    params = list(enc.parameters()) + list(dec.parameters()) + list(e2d.parameters()) + [token]
    opt = torch.optim.Adam(params, lr=1e-3, weight_decay=2e-4)

    def step():
        perm = torch.randperm(n); m = perm[: n // 2]; k = int(0.05 * m.numel())
        inner = torch.randperm(m.numel()); noise, tok = m[inner[:k]], m[inner[k:]]
        xin = x.clone(); xin[tok] = 0.0; xin[noise] = x[torch.randperm(n)[:k]]; xin[tok] += token
        rep = e2d(enc(xin, data.edge_index)); rep[m] = 0
        rec = dec(rep, data.edge_index)
        loss = (1 - (F.normalize(rec[m], dim=-1) * F.normalize(x[m], dim=-1)).sum(-1)).pow(3).mean()
        opt.zero_grad(); loss.backward(); opt.step()

    for _ in range(3): step()
    t = time.perf_counter()
    for _ in range(epochs): step()
    spe = (time.perf_counter() - t) / epochs
    print(json.dumps({"seconds_per_epoch": spe, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
''')

GEOSSL = textwrap.dedent('''
    import json, resource, sys
    from geossl.cli import main
    run_dir = sys.argv[3]
    rc = main(["pretrain", "graph=graphmae", "dataset=cora", f"trainer.epochs={sys.argv[1]}", f"run_dir={run_dir}",
               f"trainer.threads={sys.argv[2]}", "trainer.progress=false", "trainer.monitor_every=100000", "eval.epochs=1"])
    assert rc == 0
    s = json.load(open(f"{run_dir}/summary.json"))
    print(json.dumps({"seconds_per_epoch": s["seconds_per_epoch"], "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
''')

REFERENCE = {"dgl": 0.41, "pyg": 0.52, "full_run_s": 637, "peak_gb": 0.9}


def measure(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=100, help="epochs per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2,
                    help="torch threads of both implementations (geossl's default would leave cores that look busy alone)")
    args = ap.parse_args()
    rounds = {"baseline": [], "geossl": []}
    rates = [matmul_gflops()]
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):
            rounds["baseline"].append(measure(BASELINE, str(args.epochs), str(args.threads)))
            rounds["geossl"].append(measure(GEOSSL, str(args.epochs), str(args.threads), str(Path(tmp) / f"run{i}")))
            rates.append(matmul_gflops())

    def median_round(rows):
        return sorted(rows, key=lambda r: r["seconds_per_epoch"])[len(rows) // 2]

    base, ours = median_round(rounds["baseline"]), median_round(rounds["geossl"])
    ratio = ours["seconds_per_epoch"] / base["seconds_per_epoch"]
    rate_before, rate_after = min(rates), max(rates)
    lines = [
        "## GraphMAE pretraining speed on Cora",
        "",
        f"`python benchmarks/graphmae_speed.py --epochs {args.epochs} --rounds {args.rounds}` — Cora preset (GAT 2×4 heads, "
        "hidden 512, mask 0.5), one epoch = one full-graph step, CPU, float32. Both measured in the same run, in alternating "
        "rounds, each round in its own process; each row is its median round. Rounds (s/epoch): baseline "
        + ", ".join(f"{r['seconds_per_epoch']:.3f}" for r in rounds["baseline"]) + "; geossl "
        + ", ".join(f"{r['seconds_per_epoch']:.3f}" for r in rounds["geossl"]) + ".",
        "",
        machine_line(threads=f"{args.threads} torch threads in both implementations"),
        f"Dense matmul rate during this run (Cora's first-layer product, measured between rounds): {rate_before:.0f} to {rate_after:.0f} GFLOP/s. "
        "This shared machine's rate drifts by a third or more within an hour (135 to 242 GFLOP/s seen on the day of the first runs), and every timing moves with it: "
        "compare timings only at a similar rate; the ratio between the two rows is the robust number.",
        "",
        "| implementation | s/epoch | vs PyG baseline | vs reference DGL (0.41 s, reported) | peak RSS (MB) |",
        "|---|---|---|---|---|",
        f"| textbook PyG GraphMAE (baseline, this run) | {base['seconds_per_epoch']:.3f} | 1.00 | "
        f"{base['seconds_per_epoch'] / REFERENCE['dgl']:.2f} | {base['peak_rss_mb']:.0f} |",
        f"| geossl (`geossl pretrain graph=graphmae dataset=cora`) | **{ours['seconds_per_epoch']:.3f}** | {ratio:.2f} | "
        f"{ours['seconds_per_epoch'] / REFERENCE['dgl']:.2f} | {ours['peak_rss_mb']:.0f} |",
        "",
        "Reference numbers (THUDM GraphMAE, same config, on one of these 2-core machines, as reported in the issue, "
        "not rerun here): DGL 0.41 s/epoch, its PyG branch 0.52 s/epoch, 637 s for 1500 epochs, ~0.9 GB peak. "
        f"geossl's 1500 epochs at this rate: {1500 * ours['seconds_per_epoch']:.0f} s of training steps.",
        "",
        "Where the time went: the first layer multiplies the masked input as a sparse CSR matrix (Cora's features "
        "are 98.7% zeros) plus the [MASK]-token rows; neighbourhood sums are CSR products with an SDDMM attention "
        "gradient instead of gather/scatter; the decoder aggregates its 512-wide input before projecting to 1433 "
        "and only for masked nodes; the re-masked rows skip the encoder-to-decoder map; the loss reads the sparse "
        "targets; dropout masks cost a quarter of `bernoulli_`. Each piece is tested equal to the dense definition "
        "(`tests/graph/test_fast_paths.py`).",
    ]
    write_section("graphmae_speed", "\n".join(lines))
    write_json("graphmae_speed", {"epochs": args.epochs, "rounds": rounds, "baseline": base, "geossl": ours, "ratio": ratio,
                                  "reference": REFERENCE, "matmul_gflops": rates})
    print("\n".join(lines))


if __name__ == "__main__":
    main()
