"""The run pipeline every domain shares: ``geossl pretrain <domain>=<method> dataset=<name>`` and
``geossl evaluate encoder=<file> dataset=<name>``.

The core does what is the same for graphs and scenes: it validates the config sections against the
builders that consume them, builds the encoder and the method from the registries (refusing names of
another domain), runs the engine, saves the encoder before anything can fail in evaluation, computes
the label-free RankMe, and writes the run folder (``config.yaml``, ``metrics.csv``, ``tensorboard/``,
``checkpoint.pt``, ``encoder.safetensors``, ``summary.json``). A :class:`DomainAdapter` supplies the
rest: which data, in which batches, and which evaluation.
"""

from __future__ import annotations

import inspect
import itertools
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Optional

import torch
from omegaconf import DictConfig, OmegaConf

from geossl.config import schema_from_signature, validate
from geossl.encoder import Encoder, load_encoder, read_encoder_header, save_encoder
from geossl.engine import Engine, TrainerConfig
from geossl.engine.engine import default_threads
from geossl.errors import CheckpointError, ConfigError
from geossl.io import write_json
from geossl.registry import DATASETS, ENCODERS, METHODS


@dataclass
class Job:
    """What a domain hands the engine for one pretraining run.

    Attributes:
        batches: the training batches of one epoch (re-iterated every epoch).
        monitor: label-free metrics of the method every ``trainer.monitor_every`` epochs (RankMe), or None.
        evaluate: the evaluation at the end, given the trained method (on the global-zero process);
            returns the summary's metrics (``rankme`` and the protocol's numbers).
    """

    batches: Iterable
    monitor: Optional[Callable[[Any], Dict[str, float]]]
    evaluate: Callable[[Any], Dict[str, Any]]
    extra: Dict[str, Any] = field(default_factory=dict)


class DomainAdapter:
    """What one domain (graphs, scenes) supplies to the shared pipeline. Subclasses set ``domain`` (the
    config group that names the method: ``graph=...``, ``scene=...``) and implement the methods below."""

    domain: str = ""
    #: Method constructor arguments that the run supplies from the data (not the config).
    supplied: tuple = ()

    def load_dataset(self, cfg: DictConfig):
        """The dataset of ``cfg.dataset`` (validated), with ``name`` and ``in_dim`` (input feature width)."""
        raise NotImplementedError

    def check(self, cfg: DictConfig, dataset) -> None:
        """Refuse, before any training, an evaluation or a setting that cannot run on ``dataset``."""

    def check_method(self, cfg: DictConfig, method_cls, encoder_cls) -> None:
        """Refuse, before any data is read, a method that cannot run on this encoder."""

    def method_inputs(self, cfg: DictConfig, dataset, accepted) -> Dict[str, Any]:
        """Constructor arguments of the method that come from the data (among the names ``accepted``)."""
        return {}

    def job(self, cfg: DictConfig, dataset, engine: Engine) -> Job:
        raise NotImplementedError

    def check_encoder(self, cfg: DictConfig, dataset, encoder: Encoder, path: str) -> None:
        """Refuse a saved encoder that cannot embed ``dataset`` (its input width, say)."""
        in_dim = encoder.config().get("in_dim")
        if in_dim is not None and in_dim != dataset.in_dim:
            raise ConfigError(
                f"The encoder in {path!r} takes {in_dim} input features but dataset {dataset.name!r} has "
                f"{dataset.in_dim}; it was pretrained on {encoder.pretrained.get('dataset', 'another dataset')!r}.")

    def evaluate_encoder(self, cfg: DictConfig, dataset, encoder: Encoder) -> Dict[str, Any]:
        """``geossl evaluate``: the evaluation of a saved (frozen) encoder on ``dataset``."""
        raise NotImplementedError

    def describe(self, summary: Dict[str, Any], run_dir: Path) -> str:
        """One line for the terminal after a run."""
        return f"{summary['method']} on {summary['dataset']}: rankme={summary.get('rankme', float('nan')):.1f} -> {run_dir}"


def section(cfg: DictConfig, key: str, builder, exclude=(), where: Optional[str] = None) -> Dict[str, Any]:
    """``cfg[key]`` validated against ``builder``'s keyword arguments (minus ``exclude``), without its ``name``."""
    schema = schema_from_signature(builder, exclude=exclude, extra={"name": None})
    out = validate(cfg[key], schema, where or key)
    out.pop("name")
    return out


def dataset_builder(cfg: DictConfig, domain: str, extra: Optional[Dict[str, Any]] = None, exclude=()):
    """The registered dataset builder of ``cfg.dataset`` for ``domain`` and its validated keyword arguments.

    The registry key is ``dataset.loader`` when set (``dataset=tu`` uses ``loader: tu`` so that
    ``dataset.name`` can be the TU name), else ``dataset.name``. ``extra`` names keys of the dataset
    section that are the run's, not the builder's (``batch_size``), with their defaults; they are
    validated and returned separately.
    """
    builder = DATASETS.get(cfg.dataset.get("loader") or cfg.dataset.name, domain=domain)
    takes_name = "name" in inspect.signature(builder).parameters
    keys = {"loader": None, **(extra or {})}
    if not takes_name:
        keys["name"] = None
    kwargs = validate(cfg.dataset, schema_from_signature(builder, exclude=exclude, extra=keys), "dataset")
    run_keys = {k: kwargs.pop(k) for k in list(extra or {})}
    kwargs.pop("loader")
    if not takes_name:
        kwargs.pop("name")
    return builder, kwargs, run_keys


def trainer_config(cfg: DictConfig) -> TrainerConfig:
    return TrainerConfig(**validate(cfg.trainer, TrainerConfig, "trainer"))


def new_run_dir(base: Path) -> Path:
    """A fresh run folder ``<base>/<timestamp>[-<i>]``, claimed atomically: ``mkdir`` either creates it or
    fails because another run holds it, so runs started in the same second get folders of their own."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # Every process of a torchrun job must pick the same folder: the local ranks share their
        # parent (torchrun's agent); several machines must be given one shared run_dir.
        if os.environ.get("LOCAL_WORLD_SIZE") != os.environ.get("WORLD_SIZE"):
            raise ConfigError("A multi-node run needs run_dir=<a folder every node can write> on the command line.")
        path = base / f"{time.strftime('%Y%m%d')}-torchrun{os.getppid()}"
        path.mkdir(parents=True, exist_ok=True)
        return path
    base.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for i in itertools.count():
        path = base / (stamp if i == 0 else f"{stamp}-{i}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise AssertionError("unreachable")


#: Files whose presence means a folder holds a run.
RUN_FILES = ("config.yaml", "checkpoint.pt", "summary.json", "metrics.csv")


def run_dir_for(cfg: DictConfig, name: str) -> Path:
    """The run folder of a run named ``name`` (``<method>-<dataset>``): the one being resumed
    (``trainer.resume``), the one given (``run_dir``, which must not hold another run), or a new one
    under ``out_dir``."""
    if cfg.get("trainer") is not None and cfg.trainer.get("resume"):
        resume = Path(cfg.trainer.resume)
        return resume if resume.is_dir() else resume.parent
    if cfg.get("run_dir"):
        path = Path(cfg.run_dir)
        held = [f for f in RUN_FILES if (path / f).exists()]
        if held and int(os.environ.get("WORLD_SIZE", "1")) == 1:
            raise ConfigError(f"run_dir={str(path)!r} already holds a run ({', '.join(held)}); a new run does not write into it. "
                              f"Continue that run with trainer.resume={path}, or choose another run_dir.")
        path.mkdir(parents=True, exist_ok=True)
        return path
    return new_run_dir(Path(cfg.out_dir) / name)


def _environment(engine_device) -> Dict[str, Any]:
    import geossl

    return {"torch_threads": torch.get_num_threads(), "device": str(engine_device), "torch": torch.__version__,
            "geossl": geossl.__version__, "machine": platform.machine()}


def build_method(cfg: DictConfig, adapter: DomainAdapter, dataset=None, validate_only: bool = False):
    """The method of ``cfg.<domain>`` around the encoder of ``cfg.encoder`` (names checked against the
    domain, sections against the constructors). With ``validate_only`` nothing is built."""
    domain = adapter.domain
    method_cls = METHODS.get(cfg[domain].name, domain=domain)
    encoder_cls = ENCODERS.get(cfg.encoder.name, domain=domain)
    method_kwargs = section(cfg, domain, method_cls, exclude=("encoder", "in_dim", *adapter.supplied))
    encoder_kwargs = section(cfg, "encoder", encoder_cls, exclude=("in_dim",))
    adapter.check_method(cfg, method_cls, encoder_cls)
    if validate_only:
        return None
    encoder = encoder_cls(in_dim=dataset.in_dim, **encoder_kwargs)
    accepted = inspect.signature(method_cls.__init__).parameters
    supplied = adapter.method_inputs(cfg, dataset, accepted)
    return method_cls(encoder=encoder, in_dim=dataset.in_dim, **supplied, **method_kwargs)


def pretrain(cfg: DictConfig, run_dir: Path, adapter: DomainAdapter) -> Dict[str, Any]:
    """Pretrain ``cfg.<domain>.name`` on ``cfg.dataset``; write the run folder; return the summary."""
    domain = adapter.domain
    trainer_cfg = trainer_config(cfg)
    build_method(cfg, adapter, validate_only=True)  # bad names and keys fail before data is read
    dataset = adapter.load_dataset(cfg)
    adapter.check(cfg, dataset)

    config = OmegaConf.to_container(cfg, resolve=True)
    engine = Engine(trainer_cfg, run_dir, seed=int(cfg.seed), config=config)
    fabric = engine.fabric
    if fabric.is_global_zero:
        OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    method = build_method(cfg, adapter, dataset)
    job = adapter.job(cfg, dataset, engine)
    result = engine.fit(method, job.batches, monitor=job.monitor)
    method = method.to(engine.device)
    summary: Dict[str, Any] = {
        "method": cfg[domain].name, "dataset": dataset.name, "seed": int(cfg.seed), "epochs": result.epochs,
        "pretrain_seconds": round(result.seconds, 3), "train_seconds": round(result.train_seconds, 3),
        "seconds_per_epoch": round(result.seconds_per_epoch, 4), "final_losses": result.last_losses,
        "world_size": fabric.world_size, **job.extra,
    }
    if not fabric.is_global_zero:
        return summary
    encoder_path = run_dir / "encoder.safetensors"
    save_encoder(method.encoder, encoder_path, metadata={
        "method": cfg[domain].name, "dataset": dataset.name, "seed": int(cfg.seed), "epochs": result.epochs,
        "in_dim": dataset.in_dim, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    })
    t0 = time.perf_counter()
    summary.update(job.evaluate(method))
    summary["evaluate_seconds"] = round(time.perf_counter() - t0, 3)
    summary.update({"encoder": str(encoder_path.resolve()), "run_dir": str(run_dir.resolve()), **_environment(engine.device)})
    write_json(run_dir / "summary.json", summary)
    return summary


def encoder_domain(path: str) -> str:
    """The domain of the encoder saved in ``path`` (from its header; files of older versions are graph encoders)."""
    header = read_encoder_header(path)
    name = str(header.get("encoder", ""))
    if name not in ENCODERS:
        raise CheckpointError(f"{path!r} holds encoder {name!r}, which this geossl does not have. "
                              f"Known encoders: {', '.join(ENCODERS.names())}.")
    return ENCODERS.domain(name) or "graph"


def evaluate(cfg: DictConfig, adapter: DomainAdapter) -> Dict[str, Any]:
    """Evaluate a saved encoder (``cfg.encoder_file``) on ``cfg.dataset`` with ``cfg.eval``."""
    path = str(cfg.encoder_file)
    dataset_name = cfg.dataset.get("loader") or cfg.dataset.name
    if dataset_name in DATASETS and DATASETS.domain(dataset_name) not in (None, adapter.domain):
        raise ConfigError(f"The encoder in {path!r} is a {adapter.domain} encoder and dataset {cfg.dataset.name!r} is a "
                          f"{DATASETS.domain(dataset_name)} dataset. Valid {adapter.domain} datasets: "
                          f"{', '.join(DATASETS.names(adapter.domain))}.")
    threads = int(cfg.trainer.get("threads") or 0) if cfg.get("trainer") is not None else 0
    torch.set_num_threads(threads if threads > 0 else default_threads())
    encoder: Encoder = load_encoder(path)
    dataset = adapter.load_dataset(cfg)
    adapter.check(cfg, dataset)
    adapter.check_encoder(cfg, dataset, encoder, path)
    encoder.eval()
    out: Dict[str, Any] = {"encoder": path, "dataset": dataset.name, "seed": int(cfg.seed)}
    out.update(adapter.evaluate_encoder(cfg, dataset, encoder))
    return out
