"""What ``geossl pretrain graph=...`` and ``geossl evaluate ...`` do for graphs.

Wires a dataset, an encoder and a method to the engine, then evaluates: RankMe during
pretraining (no labels), and the linear probe on the frozen encoder at the end.
"""

from __future__ import annotations

import inspect
import platform
import time
from pathlib import Path
from typing import Any, Dict

import torch
from omegaconf import DictConfig, OmegaConf

import geossl
from geossl.config import schema_from_signature, validate
from geossl.encoder import Encoder, load_encoder, save_encoder
from geossl.engine import Engine, TrainerConfig
from geossl.errors import ConfigError
from geossl.eval import linear_probe, rankme, svc_cross_validation
from geossl.graph.datasets import GraphDataset
from geossl.graph.finetune import finetune
from geossl.graph.pooling import POOLINGS, embed_graphs
from geossl.io import write_json
from geossl.registry import DATASETS, ENCODERS, METHODS

def _section(cfg: DictConfig, key: str, builder, exclude=(), where=None) -> Dict[str, Any]:
    schema = schema_from_signature(builder, exclude=exclude, extra={"name": None})
    out = validate(cfg[key], schema, where or key)
    out.pop("name")
    return out


def dataset_builder(cfg: DictConfig):
    """The dataset builder and its validated keyword arguments.

    The registry key is ``dataset.loader`` when set (``dataset=tu`` uses ``loader: tu`` so that
    ``dataset.name`` can be the TU name), else ``dataset.name``. ``dataset.batch_size`` (graphs
    per step for graph-level datasets) is validated here but is not the builder's.
    """
    builder = DATASETS.get(cfg.dataset.get("loader") or cfg.dataset.name)
    takes_name = "name" in inspect.signature(builder).parameters
    extra = {"loader": None, "batch_size": 32} if takes_name else {"loader": None, "name": None, "batch_size": 32}
    kwargs = validate(cfg.dataset, schema_from_signature(builder, extra=extra), "dataset")
    kwargs.pop("loader")
    kwargs.pop("batch_size")
    if not takes_name:
        kwargs.pop("name")
    return builder, kwargs


def load_graph_dataset(cfg: DictConfig) -> GraphDataset:
    builder, kwargs = dataset_builder(cfg)
    return builder(**kwargs)


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


def eval_kwargs(cfg: DictConfig) -> Dict[str, Any]:
    """The validated ``eval`` section (without its name)."""
    if cfg.eval.name not in EVALS:
        raise ConfigError(f"Unknown eval {cfg.eval.name!r}. Valid choices of eval: {', '.join(sorted(EVALS))}.")
    _, fn, fixed = EVALS[cfg.eval.name]
    extra = {"name": None, "pooling": "mean"} if cfg.eval.name == "svc" else {"name": None}
    out = validate(cfg.eval, schema_from_signature(fn, exclude=fixed, extra=extra), "eval")
    out.pop("name")
    if "pooling" in out and out["pooling"] not in POOLINGS:
        raise ConfigError(f"eval.pooling={out['pooling']!r} is not a pooling. Valid choices: {', '.join(POOLINGS)}.")
    return out


def _check_eval_fits(cfg: DictConfig, dataset: GraphDataset) -> None:
    if cfg.eval.name not in EVALS:
        raise ConfigError(f"Unknown eval {cfg.eval.name!r}. Valid choices of eval: {', '.join(sorted(EVALS))}.")
    task = EVALS[cfg.eval.name][0]
    if task != dataset.task:
        want = next(k for k, v in EVALS.items() if v[0] == dataset.task)
        raise ConfigError(f"Dataset {dataset.name!r} is {dataset.task}-level but eval={cfg.eval.name} evaluates "
                          f"{task}-level embeddings; use eval={want}.")


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


#: Graphs per batch when embedding a graph-level dataset for evaluation (eval mode: no effect on results).
EVAL_BATCH = 256


def pretrain(cfg: DictConfig, run_dir: Path) -> Dict[str, Any]:
    """Pretrain ``cfg.graph.name`` on ``cfg.dataset.name``; write the run folder; return the summary."""
    method_cls = METHODS.get(cfg.graph.name)
    encoder_cls = ENCODERS.get(cfg.encoder.name)
    method_kwargs = _section(cfg, "graph", method_cls, exclude=("encoder", "in_dim", *RUN_SUPPLIED))
    encoder_kwargs = _section(cfg, "encoder", encoder_cls, exclude=("in_dim",))
    trainer_cfg = TrainerConfig(**validate(cfg.trainer, TrainerConfig, "trainer"))
    dataset = load_graph_dataset(cfg)
    _check_eval_fits(cfg, dataset)
    eval_kwargs(cfg)  # fail on a bad eval section before hours of pretraining

    config = OmegaConf.to_container(cfg, resolve=True)
    engine = Engine(trainer_cfg, run_dir, seed=int(cfg.seed), config=config)
    fabric = engine.fabric
    if fabric.is_global_zero:
        OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    encoder = encoder_cls(in_dim=dataset.num_features, **encoder_kwargs)
    accepted = inspect.signature(method_cls.__init__).parameters
    supplied = {k: f(dataset, cfg) for k, f in RUN_SUPPLIED.items() if k in accepted}
    method = method_cls(encoder=encoder, in_dim=dataset.num_features, **supplied, **method_kwargs)
    best: Dict[str, Any] = {}

    if dataset.task == "node":
        data = dataset.data.to(engine.device)
        batches = [data]
        epoch = iter(range(1, 1 << 62))

        def monitor(m) -> Dict[str, float]:
            if not getattr(m, "supervised", False):
                return {"rankme": rankme(m.embed(data))}
            # joint training: track its classifier every epoch and select by validation accuracy
            acc = m.accuracies(data)
            at = next(epoch) * trainer_cfg.monitor_every
            if acc["val_acc"] >= best.get("val_acc", -1.0):
                best.update(val_acc=acc["val_acc"], test_acc=acc["test_acc"], best_epoch=at)
            return acc
    else:
        batch_size = int(cfg.dataset.get("batch_size") or 32)
        batches = graph_loader(dataset, batch_size, True, fabric.world_size, fabric.global_rank, int(cfg.seed))
        eval_batches = graph_loader(dataset, EVAL_BATCH, shuffle=False)
        pooling = eval_kwargs(cfg)["pooling"]

        def monitor(m) -> Dict[str, float]:
            return {"rankme": rankme(embed_graphs(m.embed, eval_batches, pooling, engine.device)[0])}

    result = engine.fit(method, batches, monitor=monitor)
    method = method.to(engine.device)
    summary: Dict[str, Any] = {
        "method": cfg.graph.name, "dataset": dataset.name, "seed": int(cfg.seed), "epochs": result.epochs,
        "pretrain_seconds": round(result.seconds, 3), "train_seconds": round(result.train_seconds, 3),
        "seconds_per_epoch": round(result.seconds_per_epoch, 4), "final_losses": result.last_losses,
        "world_size": fabric.world_size,
    }
    if not fabric.is_global_zero:
        return summary
    if getattr(method, "supervised", False):
        # Joint training is its own evaluation: the test accuracy at the best validation epoch.
        summary.update(rankme=rankme(method.embed(dataset.data.to(engine.device))), selection="best validation epoch", **best)
    else:
        summary.update(_evaluate_embeddings(cfg, dataset, method.embed, engine.device, encoder=method.encoder))
    summary.update({
        "encoder": str(run_dir / "encoder.safetensors"), "run_dir": str(run_dir), "torch_threads": torch.get_num_threads(),
        "device": str(engine.device), "torch": torch.__version__, "geossl": geossl.__version__, "machine": platform.machine(),
    })
    save_encoder(method.encoder, run_dir / "encoder.safetensors", metadata={
        "method": cfg.graph.name, "dataset": dataset.name, "seed": int(cfg.seed), "epochs": result.epochs,
        "in_dim": dataset.num_features, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    })
    write_json(run_dir / "summary.json", summary)
    return summary


def evaluate(cfg: DictConfig) -> Dict[str, Any]:
    """Evaluate a saved encoder (``cfg.encoder_file``) on ``cfg.dataset`` with ``cfg.eval``."""
    encoder: Encoder = load_encoder(cfg.encoder_file)
    dataset = load_graph_dataset(cfg)
    _check_eval_fits(cfg, dataset)
    eval_kwargs(cfg)
    in_dim = encoder.config().get("in_dim")
    if in_dim is not None and in_dim != dataset.num_features:
        raise ConfigError(
            f"The encoder in {cfg.encoder_file!r} takes {in_dim} input features but dataset {dataset.name!r} has "
            f"{dataset.num_features}; it was pretrained on {encoder.pretrained.get('dataset', 'another dataset')!r}."
        )
    encoder.eval()
    out = {"encoder": str(cfg.encoder_file), "dataset": dataset.name, "seed": int(cfg.seed)}
    out.update(_evaluate_embeddings(cfg, dataset, torch.no_grad()(encoder), torch.device("cpu"), encoder=encoder))
    return out
