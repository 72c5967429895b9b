"""The graph domain's adapter to the shared run pipeline (:mod:`geossl.pipeline`).

It says which data a graph run reads (a node-level graph or a graph-level dataset), in which batches
(the whole graph every step, sampled subgraphs of it with ``sampler=neighbour|local_cluster``, or shuffled
mini-batches of graphs), and how it is evaluated: RankMe
during pretraining (no labels), then the linear probe (node level), the SVC protocol (graph level)
or fine-tuning. Joint SelfTask training is its own evaluation (its classifier at the best validation epoch).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

import torch
from omegaconf import DictConfig

from geossl.errors import ConfigError
from geossl.eval import linear_probe, rankme, svc_cross_validation
from geossl.graph.datasets import GraphDataset
from geossl.graph.finetune import finetune
from geossl.graph.layerwise import embed_layerwise, supports_layerwise
from geossl.graph.minibatch import SeedNodes, SubgraphBatch, check_sampler
from geossl.graph.pooling import POOLINGS, embed_graphs
from geossl.config import schema_from_signature, validate
from geossl.pipeline import DomainAdapter, Job, dataset_builder as _dataset_builder
from geossl.registry import DATASETS, METHODS

#: The evaluation each kind of dataset takes: eval.name -> (dataset task, evaluation function, fixed arguments).
EVALS = {
    "linear_probe": ("node", linear_probe, ("embeddings", "labels", "train_mask", "val_mask", "test_mask", "seed")),
    "svc": ("graph", svc_cross_validation, ("embeddings", "labels")),
    "finetune": ("node", finetune, ("encoder", "data", "seed")),
}

#: Arguments a method may take that the run supplies (not the config): name -> value from (dataset, cfg).
RUN_SUPPLIED = {
    "data": lambda dataset, cfg: dataset.data,
    "num_classes": lambda dataset, cfg: dataset.num_classes,
    "seed": lambda dataset, cfg: int(cfg.seed),
}

#: Graphs per batch when embedding a graph-level dataset for evaluation (eval mode: no effect on results).
EVAL_BATCH = 256


def dataset_builder(cfg: DictConfig):
    """The graph dataset builder of ``cfg.dataset`` and its validated keyword arguments
    (``dataset.batch_size``, graphs per step for graph-level datasets, is the run's, not the builder's)."""
    builder, kwargs, _ = _dataset_builder(cfg, "graph", extra={"batch_size": 32})
    return builder, kwargs


def load_graph_dataset(cfg: DictConfig) -> GraphDataset:
    builder, kwargs = dataset_builder(cfg)
    return builder(**kwargs)


def eval_kwargs(cfg: DictConfig) -> Dict[str, Any]:
    """The validated ``eval`` section (without its name)."""
    if cfg.eval.name not in EVALS:
        raise ConfigError(f"Unknown eval {cfg.eval.name!r}. Valid choices of eval for graphs: {', '.join(sorted(EVALS))}.")
    _, fn, fixed = EVALS[cfg.eval.name]
    extra = {"name": None, "pooling": "mean"} if cfg.eval.name == "svc" else {"name": None}
    out = validate(cfg.eval, schema_from_signature(fn, exclude=fixed, extra=extra), "eval")
    out.pop("name")
    if "pooling" in out and out["pooling"] not in POOLINGS:
        raise ConfigError(f"eval.pooling={out['pooling']!r} is not a pooling. Valid choices: {', '.join(POOLINGS)}.")
    return out


def _check_eval_fits(cfg: DictConfig, dataset: GraphDataset) -> None:
    if cfg.eval.name not in EVALS:
        raise ConfigError(f"Unknown eval {cfg.eval.name!r}. Valid choices of eval for graphs: {', '.join(sorted(EVALS))}.")
    task = EVALS[cfg.eval.name][0]
    if task != dataset.task:
        want = next(k for k, v in EVALS.items() if v[0] == dataset.task)
        raise ConfigError(f"Dataset {dataset.name!r} is {dataset.task}-level but eval={cfg.eval.name} evaluates "
                          f"{task}-level embeddings; use eval={want}.")
    kwargs = eval_kwargs(cfg)  # a bad key fails before hours of pretraining
    if cfg.eval.name == "svc":  # stratified folds need every class in every fold
        labels = torch.cat([torch.as_tensor(g.y).view(-1)[:1] for g in dataset.data])
        counts = torch.bincount(labels)
        folds = int(kwargs.get("folds", 10))
        if len(counts[counts > 0]) < 2 or int(counts[counts > 0].min()) < folds:
            small = [(int(c), int(n)) for c, n in enumerate(counts.tolist()) if 0 < n < folds]
            raise ConfigError(f"Dataset {dataset.name!r} cannot be evaluated by {folds}-fold stratified cross-validation: "
                              + (f"class {small[0][0]} has {small[0][1]} graph(s), fewer than eval.folds={folds}; lower eval.folds "
                                 "or add graphs of that class." if small else "it has a single class."))
        inner = int(kwargs.get("inner_folds", 5))  # the grid search inside each training fold needs that many per class
        short = [(c, n, n - -(-n // folds)) for c, n in enumerate(counts.tolist()) if n and n - -(-n // folds) < inner]
        if short:
            c, n, left = short[0]
            raise ConfigError(f"Dataset {dataset.name!r} cannot be evaluated by {folds}-fold cross-validation with an {inner}-fold "
                              f"grid search inside each training fold: class {c} has {n} graph(s), so a training fold can hold "
                              f"only {left} of them, fewer than eval.inner_folds={inner}; lower eval.inner_folds or raise eval.folds.")


def _check_sampler(cfg: DictConfig, dataset: GraphDataset) -> Optional[Dict[str, Any]]:
    """The validated ``sampler`` section of a run (None for ``full`` or a config without one)."""
    if "sampler" not in cfg:
        return None
    spec = check_sampler(cfg.sampler, dataset.task, int(dataset.data.num_nodes) if dataset.task == "node" else 0)
    able = METHODS.having("subgraphs", "graph")  # methods whose registration says they train on sampled subgraphs
    if spec is not None and cfg.graph.name not in able:
        raise ConfigError(f"sampler={spec['name']} trains on subgraphs, which graph={cfg.graph.name} does not support (its "
                          f"targets are built on the whole graph); methods that do: {', '.join(able)}.")
    layers = cfg.get("encoder", {}).get("layers") if isinstance(cfg.get("encoder"), DictConfig) else None
    if spec is not None and spec["name"] == "neighbour" and isinstance(layers, int) and len(spec["fanouts"]) > layers + 1:
        # the methods that take a sampler decode with one GNN layer: a node's loss reads encoder.layers + 1 hops
        raise ConfigError(f"sampler.fanouts={spec['fanouts']} samples {len(spec['fanouts'])} hops, but a node's loss reads "
                          f"{layers + 1}: the encoder's {layers} layers (encoder.layers) and the decoder's one. Hops beyond "
                          f"those are sampled and never read; give at most {layers + 1} fan-outs.")
    return spec


def _embedder(method, spec: Optional[Dict[str, Any]]):
    """How a node-level run embeds its whole graph: after mini-batch pretraining (``spec``, the sampler) layer by
    layer in chunks of ``sampler.inference_chunk`` nodes (:func:`embed_layerwise`) when the encoder supports it,
    else (full-batch runs, other encoders) in one eval-mode forward pass."""
    if spec is not None and supports_layerwise(method.encoder):
        return lambda data: embed_layerwise(method.encoder, data, spec["inference_chunk"])
    return method.embed


def graph_loader(dataset: GraphDataset, batch_size: int, shuffle: bool, world_size: int = 1, rank: int = 0, seed: int = 0):
    """A PyG ``DataLoader`` over the graphs of a graph-level dataset.

    For training (``shuffle``) it uses a ``DistributedSampler``: with one process that is a
    seeded shuffle per epoch (the engine calls ``set_epoch``, so resumed runs see the same
    order); with several, every process takes its own 1/world_size share of the graphs.
    """
    from torch.utils.data import DistributedSampler
    from torch_geometric.loader import DataLoader

    if not shuffle:
        return DataLoader(dataset.data, batch_size=batch_size, shuffle=False)
    sampler = DistributedSampler(dataset.data, num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
    return DataLoader(dataset.data, batch_size=batch_size, sampler=sampler)


def _evaluate_embeddings(cfg: DictConfig, dataset: GraphDataset, embed_nodes, device, encoder=None) -> Dict[str, Any]:
    """RankMe and the configured protocol's accuracy for an embedding function on ``dataset``
    (``encoder`` is what fine-tuning trains further; it defaults to ``embed_nodes``)."""
    kwargs = eval_kwargs(cfg)
    if cfg.eval.name == "finetune":
        data = dataset.data.to(device)
        r = finetune(encoder if encoder is not None else embed_nodes, data, seed=int(cfg.seed), **kwargs)
        return {"rankme": rankme(embed_nodes(data)), "test_acc": r.test_acc, "val_acc": r.val_acc, "best_epoch": r.best_epoch,
                "final_test_acc": r.final_test_acc}
    if dataset.task == "node":
        data = dataset.data.to(device)
        z = embed_nodes(data)
        r = linear_probe(z, data.y, data.train_mask, data.val_mask, data.test_mask, seed=int(cfg.seed), **kwargs)
        return {"rankme": rankme(z), "test_acc": r.test_acc, "val_acc": r.val_acc, "best_epoch": r.best_epoch,
                "final_test_acc": r.final_test_acc}
    pooling = kwargs.pop("pooling")
    z, y = embed_graphs(embed_nodes, graph_loader(dataset, EVAL_BATCH, shuffle=False), pooling, device)
    r = svc_cross_validation(z, y, **kwargs)
    return {"rankme": rankme(z), "cv_acc": r.acc, "cv_std": r.std, "fold_accs": r.fold_accs, "chosen_C": r.chosen_C,
            "pooling": pooling}


def best_validation_epoch(history) -> Dict[str, Any]:
    """``{val_acc, test_acc, best_epoch}`` at the monitored epoch of highest validation accuracy in ``history``
    (``[(epoch, {"val_acc", "test_acc"})]``, the engine's monitor history); ties go to the later epoch."""
    best: Dict[str, Any] = {}
    for epoch, acc in history:
        if acc["val_acc"] >= best.get("val_acc", -1.0):
            best.update(val_acc=acc["val_acc"], test_acc=acc["test_acc"], best_epoch=epoch)
    return best


class GraphAdapter(DomainAdapter):
    """Graphs: PyG datasets, full-graph or mini-batch steps, linear probe / SVC / fine-tuning."""

    domain = "graph"
    supplied = tuple(RUN_SUPPLIED)

    def load_dataset(self, cfg: DictConfig) -> GraphDataset:
        return load_graph_dataset(cfg)

    def check(self, cfg: DictConfig, dataset: GraphDataset) -> None:
        _check_eval_fits(cfg, dataset)
        _check_sampler(cfg, dataset)

    def method_inputs(self, cfg: DictConfig, dataset: GraphDataset, accepted) -> Dict[str, Any]:
        return {k: f(dataset, cfg) for k, f in RUN_SUPPLIED.items() if k in accepted}

    def job(self, cfg: DictConfig, dataset: GraphDataset, engine) -> Job:
        spec: Optional[Dict[str, Any]] = None
        if dataset.task == "node":
            data = dataset.data.to(engine.device)
            batches = [data]
            spec = _check_sampler(cfg, dataset)
            if spec is not None:  # sampled subgraphs, built in the loader's workers from the CPU copy of the graph
                options = {k: v for k, v in spec.items() if k not in ("name", "batch_nodes", "inference_chunk", "seeds_per_epoch")}
                batches = engine.loader(SeedNodes(dataset.data.num_nodes, spec["seeds_per_epoch"]), spec["batch_nodes"], shuffle=True, seeded=True,
                                        collate_fn=SubgraphBatch(dataset.data, spec["name"], **options))

            def monitor(m) -> Dict[str, float]:
                if not getattr(m, "supervised", False):
                    return {"rankme": rankme(_embedder(m, spec)(data))}
                return m.accuracies(data)  # joint training: its classifier, selected at the end by validation accuracy
        else:
            fabric = engine.fabric
            batch_size = int(cfg.dataset.get("batch_size") or 32)
            batches = graph_loader(dataset, batch_size, True, fabric.world_size, fabric.global_rank, int(cfg.seed))
            eval_batches = graph_loader(dataset, EVAL_BATCH, shuffle=False)
            pooling = eval_kwargs(cfg)["pooling"]

            def monitor(m) -> Dict[str, float]:
                return {"rankme": rankme(embed_graphs(m.embed, eval_batches, pooling, engine.device)[0])}

        def evaluate(method) -> Dict[str, Any]:
            if getattr(method, "supervised", False):
                # Joint training is its own evaluation: the test accuracy at the best validation epoch (the engine's
                # monitor history, which a resumed run carries from its checkpoint; ties go to the later epoch).
                return {"rankme": rankme(method.embed(dataset.data.to(engine.device))), "selection": "best validation epoch",
                        **best_validation_epoch(engine.monitor_history)}
            embed = _embedder(method, spec)
            return _evaluate_embeddings(cfg, dataset, embed, engine.device, encoder=method.encoder)

        return Job(batches, monitor, evaluate)

    def evaluate_encoder(self, cfg: DictConfig, dataset: GraphDataset, encoder) -> Dict[str, Any]:
        return _evaluate_embeddings(cfg, dataset, torch.no_grad()(encoder), torch.device("cpu"), encoder=encoder)

    def dataset_status(self, root) -> list:
        """``(name, state, where)`` of every graph dataset: found or missing under the data root, and where; a dataset
        whose registration says what it is (``about``: generated, or files the user names) is listed with that."""
        from geossl.graph.datasets import dataset_status

        out = []
        for name in DATASETS.names("graph"):
            about = DATASETS.tags(name).get("about")  # not searched for under the data root: how to use it
            if about:
                out.append((name, "", about))
                continue
            ok, where = dataset_status(name, root)
            out.append((name, "found" if ok else "missing", where))
        return out

    def describe(self, summary: Dict[str, Any], run_dir: Path) -> str:
        if "test_acc" in summary:
            return (f"{summary['method']} on {summary['dataset']}: test_acc={summary['test_acc']:.4f} "
                    f"val_acc={summary['val_acc']:.4f} rankme={summary['rankme']:.1f} "
                    f"({summary['seconds_per_epoch']:.3f} s/epoch) -> {run_dir}")
        if "cv_acc" in summary:
            return (f"{summary['method']} on {summary['dataset']}: cv_acc={summary['cv_acc']:.2f} ± {summary['cv_std']:.2f} "
                    f"({summary['pooling']} pooling, SVC, {len(summary['fold_accs'])}-fold) rankme={summary['rankme']:.1f} "
                    f"({summary['seconds_per_epoch']:.3f} s/epoch, {summary['world_size']} process(es)) -> {run_dir}")
        return super().describe(summary, run_dir)


#: The adapter the CLI finds through the ``geossl.domains`` entry point ``graph``.
ADAPTER = GraphAdapter()
