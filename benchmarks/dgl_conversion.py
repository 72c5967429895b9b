"""Time of converting graphs between PyG and DGL (geossl.graph.interop) on Cora and on a graph of geossl's generator
(geossl.graph.synthetic: 100k nodes, about 1M edges, 128 dense features): to_dgl, from_dgl, and the remembered conversion an encoder or
method does on every call with the same DGLGraph (as_pyg). Median of repeated runs, one process.

    python benchmarks/dgl_conversion.py

Writes the `dgl_conversion` section of docs/results.md and docs/results/dgl_conversion.json.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine_line, write_json, write_section  # noqa: E402


def median_seconds(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    from geossl.graph.datasets import load_dataset
    from geossl.graph.interop import _CONVERTED, as_pyg, from_dgl, to_dgl
    from geossl.graph.synthetic import synthetic_graph

    torch.manual_seed(0)
    synthetic = synthetic_graph(100_000, avg_degree=10, num_features=128, seed=0)  # geossl's generator (dataset=synthetic_graph)
    synthetic.x = synthetic.x.to_dense()  # dense features, as most node features are
    synthetic.edge_weight = torch.rand(synthetic.num_edges)
    synthetic.train_mask = torch.rand(synthetic.num_nodes) < 0.1
    graphs = {"Cora (2,708 nodes, 13,264 edges with self-loops, 1,433 features)": load_dataset("cora").data,
              f"synthetic_graph (100,000 nodes, {synthetic.num_edges:,} edges, 128 dense features)": synthetic}
    rows = {}
    for name, data in graphs.items():
        g = to_dgl(data)

        def fresh():
            _CONVERTED.pop(g, None)
            return as_pyg(g)

        rows[name] = {"to_dgl_s": median_seconds(lambda: to_dgl(data), 10), "from_dgl_s": median_seconds(lambda: from_dgl(g), 10),
                      "first_call_s": median_seconds(fresh, 10), "remembered_call_s": median_seconds(lambda: as_pyg(g), 100)}
    write_json("dgl_conversion", {"machine": machine_line(), "rows": rows})
    lines = ["## DGL conversion", "",
             "`benchmarks/dgl_conversion.py`: seconds to convert (median of 10 runs; 100 for the remembered call). "
             "`to_dgl`/`from_dgl` convert a whole graph; an encoder or method given a `DGLGraph` converts it on its first "
             "call and afterwards only checks that the graph's tensors are unchanged (remembered call). Node and edge tensors "
             "are shared, not copied, in both directions; the edge list is rebuilt.", "",
             "| graph | to_dgl | from_dgl | first call | remembered call |", "|---|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['to_dgl_s'] * 1e3:.1f} ms | {r['from_dgl_s'] * 1e3:.1f} ms | {r['first_call_s'] * 1e3:.1f} ms | "
                     f"{r['remembered_call_s'] * 1e6:.0f} µs |")
    lines += ["", machine_line() + " DGL 2.1.0."]
    write_section("dgl_conversion", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
