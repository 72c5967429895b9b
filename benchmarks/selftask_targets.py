"""Time and peak memory of building each SelfTask pretext task's targets.

On Cora, CiteSeer and a synthetic 20,000-node graph (a 5-block stochastic block model with
~200k directed edges and 500 sparse binary features), each task's constructor (which builds all
of its targets) runs in a fresh process; we record its wall time and the process's peak RSS
above what it held after loading the graph.

    python benchmarks/selftask_targets.py

Writes the `selftask_targets` section of docs/results.md and docs/results/selftask_targets.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine_line, write_json, write_section  # noqa: E402


def synthetic_graph(n: int = 20000, blocks: int = 5, features: int = 500, seed: int = 0):
    """A stochastic block model with planted classes, sparse features correlated with the class,
    and a Planetoid-like split (20 training nodes per class, 500 validation, 1000 test)."""
    import torch
    from torch_geometric.data import Data
    from torch_geometric.utils import add_self_loops, stochastic_blockmodel_graph, to_undirected

    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    sizes = [n // blocks] * blocks
    probs = torch.full((blocks, blocks), 2.0 / n) + torch.eye(blocks) * (8.0 * blocks / n)
    ei = to_undirected(stochastic_blockmodel_graph(sizes, probs))
    y = torch.arange(blocks).repeat_interleave(n // blocks)
    base = torch.rand(blocks, features, generator=g) < 0.02
    x = ((torch.rand(n, features, generator=g) < 0.01) | (base[y] & (torch.rand(n, features, generator=g) < 0.5))).float()
    perm = torch.randperm(n, generator=g)
    train = torch.zeros(n, dtype=torch.bool)
    for c in range(blocks):
        train[perm[y[perm] == c][:20]] = True
    rest = perm[~train[perm]]
    val, test = torch.zeros(n, dtype=torch.bool), torch.zeros(n, dtype=torch.bool)
    val[rest[:500]], test[rest[500:1500]] = True, True
    return Data(x=x, edge_index=add_self_loops(ei, num_nodes=n)[0], y=y, train_mask=train, val_mask=val, test_mask=test)


#: tasks measured once more with other constructor arguments: the pseudo-label source that the
#: SelfTask table's validation chose (label propagation is the default)
VARIANTS = {"context_label": [{"source": "ica"}], "corrected_label": [{"source": "ica"}]}


def measure_one(dataset: str, task: str, options: dict) -> dict:
    from geossl.graph.datasets import load_dataset
    from geossl.graph.selftask import PRETEXT_TASKS

    data = synthetic_graph() if dataset == "synthetic-20k" else load_dataset(dataset).data
    gc.collect()
    before, peak, stop = _rss_mb(), [0.0], threading.Event()

    def sample():  # the resident set's high-water mark while the targets are built
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_mb())
            time.sleep(0.002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    t0 = time.perf_counter()
    cls = PRETEXT_TASKS.get(task)
    labels = {"num_classes": int(data.y.max()) + 1} if getattr(cls, "uses_labels", False) else {}
    cls(data, 128, seed=0, **labels, **options)
    seconds = time.perf_counter() - t0
    stop.set()
    sampler.join()
    return {"dataset": dataset, "task": task, "options": options, "nodes": int(data.num_nodes), "edges": int(data.edge_index.shape[1]),
            "seconds": seconds, "extra_peak_mb": max(peak[0] - before, 0.0)}


def _rss_mb() -> float:
    """Current resident set size of this process in MB (Linux /proc)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["cora", "citeseer", "synthetic-20k"])
    ap.add_argument("--one", nargs=3, metavar=("DATASET", "TASK", "OPTIONS_JSON"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure_one(args.one[0], args.one[1], json.loads(args.one[2]))))
        return
    from geossl.graph.selftask import PRETEXT_TASKS

    rows = []
    for dataset in args.datasets:
        for task in PRETEXT_TASKS.names():
            for options in [{}, *VARIANTS.get(task, [])]:
                res = subprocess.run([sys.executable, __file__, "--one", dataset, task, json.dumps(options)], capture_output=True,
                                     text=True, check=True)
                rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
                print(rows[-1], flush=True)
    lines = ["## SelfTask target construction: time and memory", "",
             "`python benchmarks/selftask_targets.py` — each task's constructor (all of its targets) in a fresh process, "
             "torch's default threads; peak resident memory while building (sampled every 2 ms) above the level after loading the graph. The label-informed tasks build from the training labels (20 per class); corrected_label's per-step relabelling is not part of construction. context_label and corrected_label are measured with each pseudo-label source: label propagation (their default) and ICA (source=ica, which the SelfTask table's validation chose for both). The machine was shared with other benchmark runs, so times are upper bounds.", "",
             machine_line(), "", "| dataset | nodes | directed edges | task | seconds | extra peak MB |", "|---|---|---|---|---|---|"]
    for r in rows:
        task = r["task"] + "".join(f" ({k}={v})" for k, v in r.get("options", {}).items())
        lines.append(f"| {r['dataset']} | {r['nodes']} | {r['edges']} | {task} | {r['seconds']:.3f} | {r['extra_peak_mb']:.0f} |")
    write_section("selftask_targets", "\n".join(lines))
    write_json("selftask_targets", rows)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
