"""Run the Graph Barlow Twins reference code (pbielak/graph-barlow-twins, a checkout outside this project) on a graph
that benchmarks/graph_barlow_twins.py saved, and evaluate embeddings with the reference's own classifier.

Run with the Python of an environment that has the reference's dependencies (torch, torch_geometric, scikit-learn,
tensorboard, matplotlib, and lightning-bolts for its scheduler); nothing of geossl is imported here.

    python benchmarks/gbt_reference.py --reference <checkout> --graph graph.pt --out ref.json --seeds 0 1 2 \\
        [--embeddings z0.pt z1.pt ...]

Two adaptations to this environment, neither touching the algorithm:
- ``pl_bolts`` 0.7 (the version that installs with torch 2.13) imports torchvision, whose CPU build does not load here;
  the reference uses only its ``LinearWarmupCosineAnnealingLR``, so that one file of the installed pl_bolts is loaded on
  its own (its ``under_review`` decorator, a warning, left out).
- ``torch_geometric.data.sampler.EdgeIndex`` (PyG 1.7; a type annotation in ``gssl/augment.py``) moved in PyG 2; it is
  provided under its old name when missing.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
import types
from pathlib import Path

import torch


def install_shims() -> None:
    spec = importlib.util.find_spec("pl_bolts")
    if spec is None:
        raise SystemExit("lightning-bolts is not installed in this environment (the reference's scheduler comes from it)")
    folder = Path(list(spec.submodule_search_locations)[0])
    for name in ("pl_bolts", "pl_bolts.optimizers", "pl_bolts.utils"):
        module = types.ModuleType(name)
        module.__path__ = [str(folder / name.split(".", 1)[1]) if "." in name else str(folder)]
        sys.modules[name] = module
    stability = types.ModuleType("pl_bolts.utils.stability")
    stability.under_review = lambda: (lambda obj: obj)
    sys.modules["pl_bolts.utils.stability"] = stability
    try:
        import torch_geometric.data.sampler  # noqa: F401
    except ImportError:
        from torch_geometric.loader.neighbor_sampler import EdgeIndex

        sampler = types.ModuleType("torch_geometric.data.sampler")
        sampler.EdgeIndex = EdgeIndex
        sys.modules["torch_geometric.data.sampler"] = sampler


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference", type=Path, required=True, help="a checkout of pbielak/graph-barlow-twins")
    ap.add_argument("--graph", type=Path, required=True, help="x, edge_index (no self-loops), y and the split masks")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seeds", type=int, nargs="*", default=[])
    ap.add_argument("--embeddings", type=Path, nargs="*", default=[], help="also score these [N, D] tensors with the reference's classifier")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--emb-dim", type=int, default=256)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--p-x", type=float, required=True)
    ap.add_argument("--p-e", type=float, required=True)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    install_shims()
    sys.path.insert(0, str(args.reference))
    from torch_geometric.data import Data

    from gssl.augment import GraphAugmentor
    from gssl.full_batch.encoders import TwoLayerGCNEncoder
    from gssl.full_batch.model import FullBatchModel
    from gssl.tasks import evaluate_node_classification_acc
    from gssl.utils import seed as seed_everything

    g = torch.load(args.graph, weights_only=True)
    data = Data(x=g["x"], edge_index=g["edge_index"], y=g["y"])
    masks = {k: g[f"{k}_mask"] for k in ("train", "val", "test")}
    out = {"runs": [], "scored": [], "threads": args.threads, "epochs": args.epochs, "p_x": args.p_x, "p_e": args.p_e}
    for seed in args.seeds:
        seed_everything(seed)
        model = FullBatchModel(encoder=TwoLayerGCNEncoder(in_dim=data.num_node_features, out_dim=args.emb_dim),
                               augmentor=GraphAugmentor(p_x_1=args.p_x, p_e_1=args.p_e), lr_base=args.lr,
                               total_epochs=args.epochs, warmup_epochs=args.warmup, use_pytorch_eval_model=False)
        t = time.perf_counter()
        model.fit(data=data)
        seconds = time.perf_counter() - t
        z = model.predict(data=data)
        accs = evaluate_node_classification_acc(z, data, masks=masks, use_pytorch=False)
        path = args.out.parent / f"reference_z_seed{seed}.pt"
        torch.save(z, path)
        out["runs"].append({"seed": seed, "seconds": seconds, "seconds_per_epoch": seconds / args.epochs,
                            "test_acc": accs["test"], "val_acc": accs["val"], "embeddings": str(path)})
        print(json.dumps(out["runs"][-1]), flush=True)
    for path in args.embeddings:
        z = torch.load(path, weights_only=True)
        accs = evaluate_node_classification_acc(z, data, masks=masks, use_pytorch=False)
        out["scored"].append({"embeddings": str(path), "test_acc": accs["test"], "val_acc": accs["val"]})
    args.out.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
