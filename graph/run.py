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
from geossl.errors import ConfigError, GeosslError
from geossl.eval import linear_probe, rankme
from geossl.graph.datasets import GraphDataset
from geossl.io import write_json
from geossl.registry import DATASETS, ENCODERS, METHODS

PROBE_FIXED = ("embeddings", "labels", "train_mask", "val_mask", "test_mask", "seed")


def _section(cfg: DictConfig, key: str, builder, exclude=(), where=None) -> Dict[str, Any]:
    schema = schema_from_signature(builder, exclude=exclude, extra={"name": None})
    out = validate(cfg[key], schema, where or key)
    out.pop("name")
    return out


def dataset_builder(cfg: DictConfig):
    """The dataset builder and its validated keyword arguments.

    The registry key is ``dataset.loader`` when set (``dataset=tu`` uses ``loader: tu`` so that
    ``dataset.name`` can be the TU name), else ``dataset.name``.
    """
    builder = DATASETS.get(cfg.dataset.get("loader") or cfg.dataset.name)
    takes_name = "name" in inspect.signature(builder).parameters
    extra = {"loader": None} if takes_name else {"loader": None, "name": None}
    kwargs = validate(cfg.dataset, schema_from_signature(builder, extra=extra), "dataset")
    kwargs.pop("loader")
    if not takes_name:
        kwargs.pop("name")
    return builder, kwargs


def load_graph_dataset(cfg: DictConfig) -> GraphDataset:
    builder, kwargs = dataset_builder(cfg)
    return builder(**kwargs)


def probe_kwargs(cfg: DictConfig) -> Dict[str, Any]:
    return _section(cfg, "eval", linear_probe, exclude=PROBE_FIXED)


def _probe(embeddings: torch.Tensor, data, cfg: DictConfig) -> Dict[str, float]:
    result = linear_probe(embeddings, data.y, data.train_mask, data.val_mask, data.test_mask, seed=int(cfg.seed), **probe_kwargs(cfg))
    return {"test_acc": result.test_acc, "val_acc": result.val_acc, "best_epoch": result.best_epoch,
            "final_test_acc": result.final_test_acc}


def pretrain(cfg: DictConfig, run_dir: Path) -> Dict[str, Any]:
    """Pretrain ``cfg.graph.name`` on ``cfg.dataset.name``; write the run folder; return the summary."""
    method_cls = METHODS.get(cfg.graph.name)
    encoder_cls = ENCODERS.get(cfg.encoder.name)
    method_kwargs = _section(cfg, "graph", method_cls, exclude=("encoder", "in_dim"))
    encoder_kwargs = _section(cfg, "encoder", encoder_cls, exclude=("in_dim",))
    trainer_cfg = TrainerConfig(**validate(cfg.trainer, TrainerConfig, "trainer"))
    probe_kwargs(cfg)  # fail on a bad eval section before hours of pretraining
    dataset = load_graph_dataset(cfg)
    if dataset.task != "node":
        raise GeosslError(f"Dataset {dataset.name!r} is a graph-level dataset; graph-level pretraining is not built yet.")

    config = OmegaConf.to_container(cfg, resolve=True)
    engine = Engine(trainer_cfg, run_dir, seed=int(cfg.seed), config=config)
    if engine.fabric.is_global_zero:
        OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    encoder = encoder_cls(in_dim=dataset.num_features, **encoder_kwargs)
    method = method_cls(encoder=encoder, in_dim=dataset.num_features, **method_kwargs)
    data = dataset.data.to(engine.device)

    def monitor(m) -> Dict[str, float]:
        return {"rankme": rankme(m.embed(data))}

    result = engine.fit(method, [data], monitor=monitor)
    method = method.to(engine.device)
    summary: Dict[str, Any] = {
        "method": cfg.graph.name, "dataset": dataset.name, "seed": int(cfg.seed), "epochs": result.epochs,
        "pretrain_seconds": round(result.seconds, 3), "train_seconds": round(result.train_seconds, 3),
        "seconds_per_epoch": round(result.seconds_per_epoch, 4), "final_losses": result.last_losses,
    }
    if not engine.fabric.is_global_zero:
        return summary
    embeddings = method.embed(data)
    summary["rankme"] = rankme(embeddings)
    summary.update(_probe(embeddings, data, cfg))
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
    """Linear probe of a saved encoder (``cfg.encoder_file``) on ``cfg.dataset``."""
    encoder: Encoder = load_encoder(cfg.encoder_file)
    dataset = load_graph_dataset(cfg)
    in_dim = encoder.config().get("in_dim")
    if in_dim is not None and in_dim != dataset.num_features:
        raise ConfigError(
            f"The encoder in {cfg.encoder_file!r} takes {in_dim} input features but dataset {dataset.name!r} has "
            f"{dataset.num_features}; it was pretrained on {encoder.pretrained.get('dataset', 'another dataset')!r}."
        )
    data = dataset.data
    encoder.eval()
    with torch.no_grad():
        embeddings = encoder(data)
    out = {"encoder": str(cfg.encoder_file), "dataset": dataset.name, "seed": int(cfg.seed), "rankme": rankme(embeddings)}
    out.update(_probe(embeddings, data, cfg))
    return out
