"""The run pipeline every domain shares. Every run is a registered :class:`Task` (:data:`TASKS`):

- ``pretrain``: ``geossl pretrain <domain>=<method> dataset=<name>``, pretrain an encoder and evaluate it;
- ``evaluate``: ``geossl evaluate encoder=<file> dataset=<name>``, evaluate a saved encoder;
- ``finetune``: ``geossl finetune <group>=<head> dataset=<name> encoder=<file | name>``, train a downstream
  head (``detection=votenet``, ``segmentation=linear``) on an encoder and score it on the test split;
- ``evaluate_model``: ``geossl evaluate model=<file> dataset=<name>``, score a saved fine-tuned model.

The core does what is the same for every task and domain: it refuses config sections the task does not
read, validates the ones it does against the builders that consume them, builds the encoder once (one
rule for "a file or a registry name": :func:`geossl.encoder.encoder_is_file`), claims the run folder,
runs the engine, saves the trained model before anything can fail in evaluation, and writes one
``summary.json`` with one environment block. A :class:`DomainAdapter` supplies the rest: which data, in
which batches, which heads make which model, and which evaluation.
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Optional, Tuple

import torch
from omegaconf import DictConfig, OmegaConf

from geossl.config import schema_from_signature, validate
from geossl.encoder import Encoder, encoder_is_file, load_encoder, read_encoder_header, save_encoder
from geossl.errors import CheckpointError, ConfigError
from geossl.io import peak_rss_mb, write_json
from geossl.registry import DATASETS, ENCODERS, HEADS, METHODS, Registry, domain_entry_points, load_domain, missing_extra

if TYPE_CHECKING:  # the engine (Lightning Fabric) is imported when a run trains, not for `geossl config`
    from geossl.engine import Engine, TrainerConfig


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


@dataclass
class FinetuneJob:
    """What a domain hands the engine for one fine-tuning run.

    Attributes:
        model: what the engine trains: ``forward(batch)`` returns the named losses (``"loss"``: the total);
            it may define ``param_groups()`` (a backbone at a fraction of the head's learning rate).
        batches: the training batches of one epoch.
        monitor: validation metrics every ``trainer.monitor_every`` epochs (the learning curve), or None.
        evaluate: ``evaluate(model, run_dir)`` -> the test split's metrics (and pictures written into ``run_dir``).
        save: ``save(model, path, metadata)`` writes the fine-tuned model to ``path`` (``<file_key>.safetensors``).
        file_key: what the saved model is called (``detector``): its file name and its key in the summary.
        extra: facts for the summary (training scenes, the training fraction).
    """

    model: Any
    batches: Iterable
    monitor: Optional[Callable[[Any], Dict[str, float]]]
    evaluate: Callable[[Any, Path], Dict[str, Any]]
    save: Callable[[Any, Path, Dict[str, Any]], Path]
    file_key: str
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

    def finetune_job(self, cfg: DictConfig, dataset, encoder: Encoder, group: str, engine: Engine) -> FinetuneJob:
        """The model of head group ``group`` (``cfg[group]`` names the head in :data:`HEADS`) on ``encoder``, and how
        it trains and is scored on ``dataset``."""
        raise ConfigError(f"The {self.domain} domain has no downstream heads to fine-tune.")

    def load_model(self, path: str):
        """A fine-tuned model saved by a :class:`FinetuneJob`'s ``save`` (its file says what it is)."""
        raise ConfigError(f"The {self.domain} domain has no fine-tuned models to load.")

    def evaluate_model(self, cfg: DictConfig, dataset, model) -> Dict[str, Any]:
        """``geossl evaluate model=<file>``: the test metrics of a fine-tuned model on ``dataset``."""
        raise ConfigError(f"The {self.domain} domain has no fine-tuned models to evaluate.")

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


def trainer_config(cfg: DictConfig) -> "TrainerConfig":
    from geossl.engine import TrainerConfig

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


@contextlib.contextmanager
def claimed_run_dir(cfg: DictConfig, name: str):
    """The run folder of :func:`run_dir_for`; a folder this run created is removed again when the run fails before
    anything was written into it (a dataset that cannot be read or cached, a bad setting found late), so failed
    starts leave no empty folders behind. A folder that holds anything, or that existed before, is kept."""
    resuming = cfg.get("trainer") is not None and bool(cfg.trainer.get("resume"))
    existed = resuming or (bool(cfg.get("run_dir")) and Path(cfg.run_dir).exists())
    run_dir = run_dir_for(cfg, name)
    try:
        yield run_dir
    except BaseException:
        if not existed and run_dir.is_dir() and not any(run_dir.iterdir()):
            run_dir.rmdir()
        raise


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


def environment(device) -> Dict[str, Any]:
    """The summary's environment block: threads, device, versions, machine."""
    import geossl

    return {"torch_threads": torch.get_num_threads(), "device": str(device), "torch": torch.__version__,
            "geossl": geossl.__version__, "machine": platform.machine()}


def build_encoder(cfg: DictConfig, domain: str, in_dim: int) -> Encoder:
    """The run's encoder, built once: the saved encoder of ``cfg.encoder_file`` when set (in train mode, for
    fine-tuning; an encoder of another domain is refused), else a fresh ``cfg.encoder`` of ``domain`` (its section
    validated against the encoder's constructor)."""
    if cfg.get("encoder_file"):
        path = str(cfg.encoder_file)
        found = encoder_domain(path)
        if found != domain:
            name = read_encoder_header(path).get("encoder")
            raise ConfigError(f"The encoder in {path!r} is a {found} encoder ({name}), and this is a {domain} run. "
                              f"Valid {domain} encoders: {', '.join(ENCODERS.names(domain))}.")
        return load_encoder(path).train()
    cls = ENCODERS.get(cfg.encoder.name, domain=domain)
    return cls(in_dim=in_dim, **section(cfg, "encoder", cls, exclude=("in_dim",)))


def encoder_source(cfg: DictConfig) -> str:
    """Where the run's encoder comes from, for summaries: the file, or ``<name> (from scratch)``."""
    return str(cfg.encoder_file) if cfg.get("encoder_file") else f"{cfg.encoder.name} (from scratch)"


def build_method(cfg: DictConfig, adapter: DomainAdapter, dataset=None, validate_only: bool = False):
    """The method of ``cfg.<domain>`` around the encoder of ``cfg.encoder`` (names checked against the
    domain, sections against the constructors). With ``validate_only`` nothing is built."""
    domain = adapter.domain
    method_cls = METHODS.get(cfg[domain].name, domain=domain)
    encoder_cls = ENCODERS.get(cfg.encoder.name, domain=domain)
    method_kwargs = section(cfg, domain, method_cls, exclude=("encoder", "in_dim", *adapter.supplied))
    section(cfg, "encoder", encoder_cls, exclude=("in_dim",))  # a bad key fails before data is read
    adapter.check_method(cfg, method_cls, encoder_cls)
    if validate_only:
        return None
    encoder = build_encoder(cfg, domain, dataset.in_dim)
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
    from geossl.engine import Engine

    engine = Engine(trainer_cfg, run_dir, seed=int(cfg.seed), config=config)
    fabric = engine.fabric
    if fabric.is_global_zero:
        OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    method = build_method(cfg, adapter, dataset)
    job = adapter.job(cfg, dataset, engine)
    result = engine.fit(method, job.batches, monitor=job.monitor)
    method = method.to(engine.device)
    summary: Dict[str, Any] = {
        "method": cfg[domain].name, "dataset": dataset.name, "seed": int(cfg.seed), "epochs": result.epochs, "steps": result.steps,
        "pretrain_seconds": round(result.seconds, 3), "train_seconds": round(result.train_seconds, 3),
        "data_wait_seconds": round(result.data_wait_seconds, 3),
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
    summary.update({"encoder": str(encoder_path.resolve()), "run_dir": str(run_dir.resolve()), **environment(engine.device)})
    write_json(run_dir / "summary.json", summary)
    return summary


def encoder_domain(path: str) -> str:
    """The domain of the encoder saved in ``path`` (from its header; files of older versions are graph encoders)."""
    header = read_encoder_header(path)
    if header.get("domain") in domain_entry_points():  # files written since the header named its domain
        return str(header["domain"])
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
    from geossl.engine.engine import default_threads

    torch.set_num_threads(threads if threads > 0 else default_threads())
    encoder: Encoder = load_encoder(path)
    dataset = adapter.load_dataset(cfg)
    adapter.check(cfg, dataset)
    adapter.check_encoder(cfg, dataset, encoder, path)
    encoder.eval()
    out: Dict[str, Any] = {"encoder": path, "dataset": dataset.name, "seed": int(cfg.seed)}
    out.update(adapter.evaluate_encoder(cfg, dataset, encoder))
    return out


def head_group(cfg: DictConfig, domain: str) -> str:
    """The head group a fine-tuning config chose (the one section naming a registered head of ``domain``: ``detection``)."""
    heads = HEADS.having("group", domain)  # this domain's heads only: no other domain is imported
    groups = [k for k in cfg if isinstance(cfg[k], DictConfig) and cfg[k].get("name") in heads
              and HEADS.tags(cfg[k].name).get("group") == k]
    if len(groups) != 1:
        known = sorted({HEADS.tags(n)["group"] for n in heads})
        raise ConfigError(f"A fine-tuning run names one head group ({', '.join(f'{g}=<head>' for g in known)}); got "
                          f"{', '.join(groups) or 'none'}.")
    return groups[0]


def finetune(cfg: DictConfig, adapter: DomainAdapter) -> Dict[str, Any]:
    """Train the head of ``cfg``'s head group on ``cfg.encoder_file`` (pretrained) or a fresh ``cfg.encoder`` (from
    scratch) on ``cfg.dataset``'s train split; save the model, score it on the test split; write the run folder."""
    domain = adapter.domain
    group = head_group(cfg, domain)
    trainer_cfg = trainer_config(cfg)
    dataset = adapter.load_dataset(cfg)
    with claimed_run_dir(cfg, f"{cfg[group].name}-{dataset.name}") as run_dir:
        return _finetune(cfg, adapter, group, trainer_cfg, dataset, run_dir)


def _finetune(cfg: DictConfig, adapter: DomainAdapter, group: str, trainer_cfg, dataset, run_dir: Path) -> Dict[str, Any]:
    from geossl.engine import Engine

    domain = adapter.domain
    engine = Engine(trainer_cfg, run_dir, seed=int(cfg.seed), config=OmegaConf.to_container(cfg, resolve=True))
    if engine.fabric.is_global_zero:
        OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    encoder = build_encoder(cfg, domain, dataset.in_dim)
    job = adapter.finetune_job(cfg, dataset, encoder, group, engine)
    result = engine.fit(job.model, job.batches, monitor=job.monitor)
    summary: Dict[str, Any] = {
        group: cfg[group].name, "dataset": dataset.name, "encoder": encoder_source(cfg), "seed": int(cfg.seed),
        "backbone": type(encoder).registry_name,  # and how it was pretrained (the file's method), for geossl compare
        "pretraining": str(getattr(encoder, "pretrained", {}).get("method", "unknown")) if cfg.get("encoder_file") else "scratch",
        "epochs": result.epochs, "steps": result.steps, **job.extra, "train_seconds": round(result.train_seconds, 3),
        "data_wait_seconds": round(result.data_wait_seconds, 3),
        "seconds_per_epoch": round(result.seconds_per_epoch, 4),
        "seconds_per_step": round(result.train_seconds / max(result.steps, 1), 4), "final_losses": result.last_losses,
        "world_size": engine.fabric.world_size, "peak_rss_mb": peak_rss_mb(),  # the process's peak after training
    }
    if not engine.fabric.is_global_zero:
        return summary
    model = job.model.to("cpu")
    recorded = {f"{k}_config": OmegaConf.to_container(cfg[k], resolve=True) for k in RECORDED_SECTIONS if cfg.get(k) is not None}
    path = job.save(model, run_dir / f"{job.file_key}.safetensors", {"dataset": dataset.name, "encoder": encoder_source(cfg),
                                                                     "seed": int(cfg.seed), "epochs": result.epochs, **recorded})
    summary.update(job.evaluate(model, run_dir))
    summary.update({job.file_key: str(Path(path).resolve()), "run_dir": str(run_dir.resolve()), **environment(engine.device)})
    write_json(run_dir / "summary.json", summary)
    summary["_run_dir"] = run_dir
    return summary


def evaluate_model(cfg: DictConfig, adapter: DomainAdapter) -> Dict[str, Any]:
    """The test metrics of the fine-tuned model in ``cfg.model_file`` on ``cfg.dataset``."""
    path = str(cfg.model_file)
    model = adapter.load_model(path)
    dataset = adapter.load_dataset(cfg)
    out: Dict[str, Any] = {"model": path, "dataset": dataset.name}
    out.update(adapter.evaluate_model(cfg, dataset, model))
    return out


# --- tasks ----------------------------------------------------------------------------------------------------

@dataclass
class Task:
    """A kind of run the pipeline runs, registered in :data:`TASKS`.

    Attributes:
        command: the CLI word (``geossl <command> ...``); several tasks may share one, told apart by ``file_keys``.
        config: the primary config (``configs/<config>.yaml``), ``{domain}`` filled in with the run's domain.
        sections: the top-level config keys the task reads (``{domain}`` stands for the method group, ``{heads}`` for
            the domain's head groups); any other key is refused, so that ``+seeds=3`` does not pass silently.
        run: ``run(cfg, adapter)`` -> the summary (a task that claims a run folder adds ``_run_dir``).
        file_keys: command-line keys that name the task's input file (``encoder=``, ``model=``); the first
            travels into the config as ``<first>_file``, the others are other names of it.
        encoder_files: ``encoder=`` may name a saved encoder file (one rule: :func:`encoder_is_file`); it travels
            as ``encoder_file``.
        default_domain: the domain when nothing on the command line names one.
        report: the line printed after the run (None: the summary as JSON).
    """

    command: str
    config: str
    sections: Tuple[str, ...]
    run: Callable[[DictConfig, DomainAdapter], Dict[str, Any]]
    file_keys: Tuple[str, ...] = ()
    encoder_files: bool = False
    default_domain: str = "graph"
    report: Optional[Callable[[Dict[str, Any], DomainAdapter], str]] = None


TASKS = Registry("task", from_domains=False)


def _run_pretrain(cfg: DictConfig, adapter: DomainAdapter) -> Dict[str, Any]:
    DATASETS.get(cfg.dataset.get("loader") or cfg.dataset.name, domain=adapter.domain)
    with claimed_run_dir(cfg, f"{cfg[adapter.domain].name}-{cfg.dataset.name}") as run_dir:
        summary = pretrain(cfg, run_dir, adapter)
    summary["_run_dir"] = run_dir
    return summary


def _report_finetune(summary: Dict[str, Any], adapter: DomainAdapter) -> str:
    return adapter.describe_finetune(summary, summary["_run_dir"])


RUN_KEYS = ("seed", "out_dir", "run_dir")
TASKS.register("pretrain")(Task(
    "pretrain", "pretrain_{domain}", ("trainer", "encoder", "{domain}", "eval", "dataset", "sampler", "transform", "model", *RUN_KEYS),
    _run_pretrain, report=lambda s, a: a.describe(s, s["_run_dir"])))
TASKS.register("evaluate")(Task(
    "evaluate", "evaluate_{domain}", ("trainer", "encoder", "{domain}", "eval", "dataset", "sampler", "transform", "model", "seed",
                                      "out_dir", "run_dir", "encoder_file"), evaluate, file_keys=("encoder",)))
TASKS.register("finetune")(Task(
    "finetune", "finetune_{domain}", ("trainer", "encoder", "encoder_file", "{heads}", "dataset", "transform", *RUN_KEYS), finetune,
    encoder_files=True, default_domain="scene", report=_report_finetune))
TASKS.register("evaluate_model")(Task(
    "evaluate", "evaluate_model_{domain}", ("trainer", "encoder", "encoder_file", "{heads}", "dataset", "transform", "model_file",
                                            *RUN_KEYS),
    evaluate_model, file_keys=("model", "detector", "segmenter"), default_domain="scene"))


def select_task(command: str, overrides: List[str]) -> Task:
    """The task ``geossl <command> <overrides>`` runs: among the tasks of ``command``, the one whose file key is given,
    else the one that takes no file (unknown commands list the valid ones)."""
    tasks = [TASKS.get(n) for n in TASKS.names() if TASKS.get(n).command == command]
    keys = {o.split("=", 1)[0] for o in overrides if "=" in o}
    for task in tasks:
        if keys & set(task.file_keys):
            return task
    plain = [t for t in tasks if not t.file_keys]
    if plain:
        return plain[0]
    if tasks:
        raise ConfigError(f"geossl {command} needs one of {', '.join(f'{k}=<file>' for t in tasks for k in t.file_keys)}.")
    raise ConfigError(f"Unknown command {command!r}.")


def task_overrides(task: Task, overrides: List[str]) -> List[str]:
    """``overrides`` with the task's file keys renamed to their config key (``model=x`` -> ``model_file=x``) and, where
    the task takes encoder files, ``encoder=<file>`` -> ``encoder_file=<file>`` (``encoder=<name>`` picks the group)."""
    out = []
    for o in overrides:
        key, _, value = o.partition("=")
        if key in task.file_keys:
            o = f"{task.file_keys[0]}_file={value}"
        elif key == "encoder" and task.encoder_files and encoder_is_file(value):
            o = f"encoder_file={value}"
        out.append(o)
    return out


def run_domain(task: Task, overrides: List[str]) -> str:
    """The domain of a run, from the first of: a method group on the command line (``graph=``, ``scene=``), the
    header of the file the task reads (an encoder's or a model's domain), the dataset named; else the task's default.
    Only the domains needed to answer are imported."""
    values = {o.split("=", 1)[0].lstrip("+~"): o.split("=", 1)[1] for o in overrides if "=" in o}
    domains = sorted(domain_entry_points())
    chosen = [d for d in domains if d in values]
    if len(chosen) > 1:
        raise ConfigError(f"{' and '.join(f'{d}=' for d in chosen)} were given together; a run pretrains one kind of "
                          f"encoder: name one method group ({', '.join(f'{d}=<method>' for d in domains)}).")
    if chosen:
        return chosen[0]
    serves = task_domains(task)  # a file of a domain the task does not serve is refused later, with its reason
    for key in ("encoder_file", "model_file"):
        if values.get(key):
            domain = encoder_domain(values[key]) if key == "encoder_file" else model_domain(values[key], task.default_domain)
            if domain in serves:
                return domain
    dataset = values.get("dataset")
    if dataset:  # the task's default domain is asked first, so a run of it imports no other domain
        for domain in sorted(serves, key=lambda d: d != task.default_domain):
            if load_domain(domain) and dataset.lower() in DATASETS.names(domain) and DATASETS.domain(dataset) == domain:
                return domain
    return task.default_domain


def task_domains(task: Task) -> List[str]:
    """The installed domains that have the task's primary config (``finetune_scene.yaml``: scenes fine-tune heads)."""
    from importlib.resources import files

    configs = files("geossl.configs")
    return [d for d in sorted(domain_entry_points()) if configs.joinpath(task.config.format(domain=d) + ".yaml").is_file()]


def model_header(path: str) -> Dict[str, Any]:
    """The JSON header of a saved fine-tuned model ({} for a file that is not one: the domain's ``load_model`` refuses
    it later, with its reason)."""
    import json as _json

    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            header = _json.loads((fh.metadata() or {}).get("geossl", "{}"))
    except Exception:  # noqa: BLE001 - an unreadable file is refused, with its reason, by the domain's load_model
        return {}
    return header if isinstance(header, dict) else {}


def model_domain(path: str, default: str) -> str:
    """The domain of a saved fine-tuned model: its header's ``domain`` where it names one, else ``default``."""
    domain = model_header(path).get("domain")
    return domain if domain in domain_entry_points() else default


#: Config sections a fine-tuned model records (``<section>_config`` in its metadata) and ``geossl evaluate model=`` replays.
RECORDED_SECTIONS = ("dataset", "transform")


def replay_recorded(cfg: DictConfig, overrides: List[str], header: Dict[str, Any]) -> None:
    """``geossl evaluate model=<file>``: each of :data:`RECORDED_SECTIONS` that the command line does not choose
    (``dataset=<name>``) becomes the one the model was trained with, the command line's keys of it (``dataset.x=``)
    applied on top; so a model is scored on its own dataset and splits without naming them again."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import open_dict

    recorded = header.get("metadata") if isinstance(header.get("metadata"), dict) else {}
    keys = [(o.split("=", 1)[0].lstrip("+~"), o) for o in overrides if "=" in o]
    for section in RECORDED_SECTIONS:
        saved = recorded.get(f"{section}_config")
        if not isinstance(saved, dict) or any(k == section for k, _ in keys):
            continue
        base = OmegaConf.create(saved)
        for key, o in keys:
            if key.startswith(section + "."):
                OmegaConf.update(base, key[len(section) + 1:], OverridesParser.create().parse_override(o).value(), force_add=True)
        with open_dict(cfg):
            cfg[section] = base


def adapter_for(domain: str) -> DomainAdapter:
    """The adapter of ``domain``, importing that domain alone; a domain whose optional dependencies are missing is
    refused with the extra to install."""
    import importlib

    points = domain_entry_points()
    if domain not in points:
        raise ConfigError(f"Unknown domain {domain!r}. Installed domains: {', '.join(sorted(points))}.")
    if not load_domain(domain):
        raise ConfigError(f"This command needs the {domain} domain, and {missing_extra(domain)}.")
    module, attr = points[domain].split(":", 1)
    return getattr(importlib.import_module(module), attr)


def configure(command: str, overrides: List[str]):
    """``(task, cfg, adapter)`` of ``geossl <command> <overrides>``: the task, its config composed for the run's domain
    (sections checked) and that domain's adapter, ready for ``task.run(cfg, adapter)``. Benchmarks and the CLI
    build runs through it alike."""
    from geossl.config import compose

    task = select_task(command, overrides)
    overrides = task_overrides(task, overrides)
    domain = run_domain(task, overrides)
    adapter = adapter_for(domain)
    cfg = compose(task.config.format(domain=domain), overrides, domain)
    if cfg.get("model_file"):
        replay_recorded(cfg, overrides, model_header(str(cfg.model_file)))
    check_sections(task, cfg, domain)
    return task, cfg, adapter


def check_sections(task: Task, cfg: DictConfig, domain: str) -> None:
    """Refuse top-level config keys the task does not read (``+seeds=3``, ``+sizee=2``)."""
    allowed = {k.format(domain=domain) for k in task.sections if k != "{heads}"}
    if "{heads}" in task.sections:
        allowed |= {HEADS.tags(n)["group"] for n in HEADS.having("group", domain)}
    unknown = sorted(set(cfg) - allowed)
    if unknown:
        raise ConfigError(f"Unknown key(s) {', '.join(repr(k) for k in unknown)} for geossl {task.command}. Valid keys: "
                          f"{', '.join(k for k in cfg if k in allowed)}.")
