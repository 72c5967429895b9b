"""The training engine: the only training loop in geossl.

Device, precision and the distributed strategy come from Lightning Fabric (so ``torchrun`` and
multi-GPU work without a home-made launcher); progress is shown with rich; every named loss is
logged to TensorBoard and a CSV file; checkpoints are atomic and resumable; a non-finite loss
stops the run with a clear message and leaves the last good checkpoint in place.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

import torch
from torch import nn

from geossl.engine.checkpoint import capture_rng, load_checkpoint, restore_rng, save_checkpoint
from geossl.errors import CheckpointError, ConfigError, NonFiniteLossError

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
SCHEDULERS = ("none", "cosine")
SCHEDULE_UNITS = ("epoch", "step")

#: Trainer keys that may differ between a run and its resumption.
RESUME_FREE_KEYS = ("resume", "progress", "checkpoint_every", "threads", "num_workers")


@dataclass
class TrainerConfig:
    """How to train (the ``trainer`` config group).

    Attributes:
        epochs: passes over the training batches; null when the run is measured in ``steps``.
        steps: the run's length in optimiser steps instead of epochs (null: ``epochs`` decides). The training items
            then come as one stream (:class:`~geossl.engine.loader.StreamSampler`): a training set shorter than the
            budget repeats, reshuffled every pass, and batches run on across a pass's end, so a run on 5% of the
            data takes as many updates as one on all of it. ``warmup`` and the schedule's ``T`` count steps
            (``schedule_every`` must be "step"), and so do ``monitor_every`` and ``checkpoint_every``; the losses
            are logged, averaged, at every monitor step. A resumed run skips the items already trained on.
        optimizer: "adam", "adamw" or "sgd".
        lr: learning rate.
        weight_decay: weight decay of the optimiser.
        scheduler: "none" (constant), or "cosine": ``lr * (1 + cos(pi * t / T)) / 2`` over the ``T``
            units of the run after the warm-up (GraphMAE's schedule when stepped per epoch).
        warmup: units of linear warm-up at the start (``lr * (t + 1) / warmup``), before the schedule.
        schedule_every: the unit ``t`` of the schedule and of ``warmup``: "epoch" (stepped after
            every epoch) or "step" (after every optimiser step; ``T`` = epochs x steps per epoch).
        grad_clip: clip the gradient norm to this value (0: off).
        accumulate: optimiser step every this many batches (gradients summed over them, each batch's
            loss divided by ``accumulate``); an epoch's last, shorter window also steps.
        num_workers: worker processes of the data loaders built by :meth:`Engine.loader` (0: load
            in the training process; "auto": :func:`auto_workers` of the cores this process may use).
            Results do not depend on it (every item's randomness comes from a seed drawn in the
            sampler, :class:`~geossl.engine.loader.SeededSampler`).
        accelerator: "auto", "cpu", "cuda", ... (Lightning Fabric).
        devices: devices per node (int) or "auto".
        strategy: "auto", "ddp", ... (Lightning Fabric). Under ``torchrun`` the defaults (one
            device, one node, "auto") become torchrun's processes with DDP (:func:`torchrun_layout`).
        num_nodes: number of machines.
        precision: "32-true", "bf16-mixed", "16-mixed" (Lightning Fabric).
        deterministic: use deterministic algorithms (``torch.use_deterministic_algorithms``,
            cuDNN deterministic, no cuDNN benchmark).
        threads: CPU threads for torch (0: as many as the cores other processes and this run's loader workers
            leave free, from the load average at start, at least 1; see :func:`default_threads`).
        checkpoint_every: write ``checkpoint.pt`` every this many epochs (steps, with ``steps``) and at the end.
        monitor_every: run the method's monitor (RankMe, validation metrics) every this many epochs (steps, with
            ``steps``) and at the end.
        progress: show a progress bar.
        resume: a checkpoint file or run folder to continue from.
    """

    epochs: Optional[int] = 100
    steps: Optional[int] = None
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    scheduler: str = "none"
    warmup: int = 0
    schedule_every: str = "epoch"
    grad_clip: float = 0.0
    accumulate: int = 1
    num_workers: Any = 0
    accelerator: str = "auto"
    devices: Any = 1
    strategy: str = "auto"
    num_nodes: int = 1
    precision: str = "32-true"
    deterministic: bool = True
    threads: int = 0
    checkpoint_every: int = 100
    monitor_every: int = 100
    progress: bool = True
    resume: Optional[str] = None

    def __post_init__(self):
        if self.num_workers == "auto":
            self.num_workers = auto_workers()
        if isinstance(self.num_workers, bool) or not isinstance(self.num_workers, int):
            raise ConfigError(f"trainer.num_workers must be a number of worker processes or 'auto', got {self.num_workers!r}.")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"Unknown trainer.optimizer {self.optimizer!r}. Valid optimizers: {', '.join(OPTIMIZERS)}.")
        if self.scheduler not in SCHEDULERS:
            raise ConfigError(f"Unknown trainer.scheduler {self.scheduler!r}. Valid schedulers: {', '.join(SCHEDULERS)}.")
        if self.schedule_every not in SCHEDULE_UNITS:
            raise ConfigError(f"Unknown trainer.schedule_every {self.schedule_every!r}. Valid choices: {', '.join(SCHEDULE_UNITS)}.")
        if (self.epochs is None) == (self.steps is None):
            raise ConfigError(f"Set one of trainer.epochs and trainer.steps (the run's length) and the other to null; got epochs="
                              f"{self.epochs} and steps={self.steps}.")
        if self.steps is not None and self.schedule_every != "step":
            raise ConfigError("trainer.steps counts the schedule in optimiser steps: set trainer.schedule_every=step.")
        for key, low in (("epochs" if self.steps is None else "steps", 1), ("accumulate", 1), ("warmup", 0), ("num_workers", 0), ("threads", 0),
                         ("checkpoint_every", 1), ("monitor_every", 1)):
            if getattr(self, key) < low:
                raise ConfigError(f"trainer.{key} must be >= {low}, got {getattr(self, key)}.")
        if self.lr < 0 or self.weight_decay < 0 or self.grad_clip < 0:
            raise ConfigError(f"trainer.lr, trainer.weight_decay and trainer.grad_clip must be >= 0, got "
                              f"{self.lr}, {self.weight_decay} and {self.grad_clip}.")


@dataclass
class FitResult:
    """What a finished fit reports.

    Attributes:
        epochs: epochs completed in total (including those before a resume); in a run measured in steps, the passes
            over the training batches its steps amount to (fractional).
        steps: optimiser steps taken in total (including those before a resume).
        seconds: wall time of this fit call (training, monitoring, checkpoints).
        train_seconds: time inside training epochs only (this call): the steps and the waits for their batches.
        data_wait_seconds: the part of ``train_seconds`` spent waiting for the next batch (the loader not keeping up
            with the steps; the first batch of each epoch included).
        seconds_per_epoch: ``train_seconds`` per epoch run in this call.
        last_losses: mean of each named loss in the last epoch.
        monitor: the last monitor values (e.g. ``{"rankme": ...}``).
        monitor_history: ``[(epoch, values)]`` of every monitor call of the run, also those before a resume.
        checkpoint: path of the final checkpoint.
    """

    epochs: float
    seconds: float
    train_seconds: float
    data_wait_seconds: float
    seconds_per_epoch: float
    steps: int = 0
    last_losses: Dict[str, float] = field(default_factory=dict)
    monitor: Dict[str, float] = field(default_factory=dict)
    monitor_history: List[Tuple[int, Dict[str, float]]] = field(default_factory=list)
    checkpoint: Optional[str] = None


def _resumable_view(config: Dict[str, Any]) -> Dict[str, Any]:
    view = json.loads(json.dumps(config, default=str))
    trainer = view.get("trainer", {})
    for key in RESUME_FREE_KEYS:
        trainer.pop(key, None)
    for key in ("run_dir", "out_dir"):
        view.pop(key, None)
    return view


def _differences(a: Dict[str, Any], b: Dict[str, Any], prefix: str = "") -> List[str]:
    keys = sorted(set(a) | set(b))
    out = []
    for k in keys:
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _differences(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}: {va!r} -> {vb!r}")
    return out


_END = object()  # the end of an epoch's batches

#: The most loader workers ``num_workers=auto`` starts (see :func:`auto_workers`).
MAX_AUTO_WORKERS = 8


def visible_cores() -> int:
    """The cores this process may run on (its CPU affinity where the platform has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def auto_workers(cores: Optional[int] = None) -> int:
    """Loader workers for ``trainer.num_workers=auto``: one core is left to the training process and the rest load
    data, up to :data:`MAX_AUTO_WORKERS`; under torchrun the local processes share the cores. One core: 0 (data is
    loaded in the training process), two: 1, sixteen: 8."""
    cores = visible_cores() if cores is None else cores
    local = max(int(os.environ.get("LOCAL_WORLD_SIZE", "1")), 1)
    return max(0, min(cores // local - 1, MAX_AUTO_WORKERS))


def default_threads(workers: int = 0) -> int:
    """CPU threads that do not oversubscribe the machine: this process's cores (its CPU affinity) minus the
    load other processes put on them (the 1-minute load average, rounded) and minus its own ``workers`` (loader worker
    processes, busy making batches), at least 1, and never more than torch's own default. Under torchrun, the local
    processes share the cores. (A torch thread that shares its core with a busy worker slows both.)"""
    cores = visible_cores()
    try:
        busy = round(os.getloadavg()[0])
    except OSError:
        busy = 0
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(1, min(torch.get_num_threads(), (cores - busy) // max(local, 1) - workers))


def torchrun_layout(devices: Any, num_nodes: int, strategy: str) -> tuple[Any, int, str]:
    """Devices, nodes and strategy for Fabric, filled in from ``torchrun``'s environment.

    Under ``torchrun`` (``WORLD_SIZE`` > 1 and ``LOCAL_WORLD_SIZE`` set) a config left at one
    device on one node means "use the processes torchrun started": devices = LOCAL_WORLD_SIZE,
    nodes = WORLD_SIZE / LOCAL_WORLD_SIZE, and strategy "ddp" when it was "auto". Explicit
    settings are kept (Fabric checks them against the environment).
    """
    world, local = int(os.environ.get("WORLD_SIZE", "1")), os.environ.get("LOCAL_WORLD_SIZE")
    if world > 1 and local and devices in (1, "1") and num_nodes == 1:
        devices, num_nodes = int(local), world // int(local)
        strategy = "ddp" if strategy == "auto" else strategy
    return devices, num_nodes, strategy


class Engine:
    """Runs a method's losses through optimisation.

    Args:
        cfg: the trainer config.
        run_dir: folder for ``checkpoint.pt``, ``metrics.csv`` and TensorBoard events.
        seed: global seed (each process of a distributed run adds its rank for data randomness).
        config: the full resolved run config (stored in checkpoints; a resume must match it).
    """

    def __init__(self, cfg: TrainerConfig, run_dir: str | os.PathLike, seed: int = 0, config: Optional[Dict[str, Any]] = None):
        from lightning_fabric import Fabric
        from lightning_fabric.loggers import CSVLogger, TensorBoardLogger

        self.cfg, self.run_dir, self.seed = cfg, Path(run_dir), seed
        self.config = dict(config or {})
        self.monitor_history: List[Tuple[int, Dict[str, float]]] = []
        torch.set_num_threads(cfg.threads if cfg.threads > 0 else default_threads(cfg.num_workers))
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # A resumed run logs its epochs to a CSV of its own: Lightning's CSV logger would delete
        # an existing metrics.csv in its folder.
        csv_version = f"resumed-{time.strftime('%Y%m%d-%H%M%S')}" if cfg.resume else ""
        warnings.filterwarnings("ignore", message="Experiment logs directory .* exists and is not empty")
        # flushed every logged epoch: a killed run keeps the rows of the epochs it finished (the default buffers 100)
        loggers = [CSVLogger(self.run_dir, name="", version=csv_version, flush_logs_every_n_steps=1),
                   TensorBoardLogger(self.run_dir, name="tensorboard", version="")]
        devices, num_nodes, strategy = torchrun_layout(cfg.devices, cfg.num_nodes, cfg.strategy)
        self.fabric = Fabric(accelerator=cfg.accelerator, devices=devices, strategy=strategy,
                             num_nodes=num_nodes, precision=cfg.precision, loggers=loggers)
        self.fabric.launch()
        self._set_determinism(cfg.deterministic)
        self.fabric.seed_everything(seed, verbose=False)

    @property
    def device(self) -> torch.device:
        return self.fabric.device

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoint.pt"

    @staticmethod
    def _set_determinism(deterministic: bool) -> None:
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.deterministic = deterministic
        torch.backends.cudnn.benchmark = not deterministic
        torch.use_deterministic_algorithms(deterministic, warn_only=True)
        # Deterministic mode also fills every torch.empty with NaN by default: pure overhead
        # (about 15% of a GraphMAE epoch on CPU) that changes no result.
        torch.utils.deterministic.fill_uninitialized_memory = False

    def _param_groups(self, method: nn.Module) -> List[Dict[str, Any]]:
        """The optimiser's parameter groups: the method's own (``method.param_groups()``: dicts with
        ``params`` and optionally ``lr_scale``, a factor of ``trainer.lr``, and ``weight_decay``), or
        one group of every trainable parameter."""
        cfg = self.cfg
        if not hasattr(method, "param_groups"):
            return [{"params": [p for p in method.parameters() if p.requires_grad]}]
        groups, seen = [], set()
        for g in method.param_groups():
            params = [p for p in g["params"] if p.requires_grad]
            seen.update(id(p) for p in params)
            group = {"params": params, "lr": cfg.lr * float(g.get("lr_scale", 1.0)),
                     "weight_decay": float(g.get("weight_decay", cfg.weight_decay))}
            groups.append(group)
        missing = [n for n, p in method.named_parameters() if p.requires_grad and id(p) not in seen]
        if missing:
            raise ConfigError(f"{type(method).__name__}.param_groups() leaves out trainable parameters: {', '.join(missing[:5])}.")
        return [g for g in groups if g["params"]]

    def schedule_factor(self, steps_per_epoch: int) -> Callable[[int], float]:
        """The learning-rate factor after ``t`` schedule units (see :class:`TrainerConfig`)."""
        cfg = self.cfg
        total = cfg.steps if cfg.steps is not None else cfg.epochs * (steps_per_epoch if cfg.schedule_every == "step" else 1)
        w = cfg.warmup

        def factor(t: int) -> float:
            if t < w:
                return (t + 1) / w
            if cfg.scheduler == "cosine":
                return (1 + math.cos((t - w) * math.pi / max(total - w, 1))) * 0.5
            return 1.0

        return factor

    def _build_optimizer(self, method: nn.Module, steps_per_epoch: int):
        cfg = self.cfg
        opt = OPTIMIZERS[cfg.optimizer](self._param_groups(method), lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, self.schedule_factor(steps_per_epoch))
        return opt, sched

    def loader(self, dataset, batch_size: int, collate_fn: Optional[Callable] = None, shuffle: bool = True,
               seeded: bool = False, drop_last: bool = False):
        """A ``DataLoader`` with ``trainer.num_workers`` workers over ``dataset``.

        For training (``shuffle``) it uses a ``DistributedSampler``: with one process a seeded
        shuffle per epoch (:meth:`fit` calls ``set_epoch``, so resumed runs see the same order);
        with several, every process takes its own share. ``seeded`` wraps the sampler in a
        :class:`~geossl.engine.loader.SeededSampler`, so ``dataset[(index, seed)]`` receives a seed for
        that item's randomness (augmentations, sampled views) that depends on neither the worker
        count nor an interruption. Workers persist across epochs and each keeps two batches ready.
        """
        from torch.utils.data import DataLoader, DistributedSampler, SequentialSampler

        from geossl.engine.loader import SeededSampler, StreamSampler

        if shuffle:
            sampler = DistributedSampler(dataset, num_replicas=self.fabric.world_size, rank=self.fabric.global_rank,
                                         shuffle=True, seed=self.seed, drop_last=drop_last)
        else:
            sampler = SequentialSampler(dataset)
        if shuffle and self.cfg.steps is not None:  # a run measured in steps: one stream of reshuffled passes
            sampler = StreamSampler(sampler, self.seed if seeded else None)
        elif seeded:
            sampler = SeededSampler(sampler, self.seed)
        workers = self.cfg.num_workers
        # its own generator: starting an epoch's iterator draws the workers' base seed from it, not from the global
        # RNG that the methods' masks use (persistent workers start one iterator per run, not per epoch, so a draw
        # from the global RNG would differ between a run and its resumption)
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, collate_fn=collate_fn, num_workers=workers,
                          drop_last=drop_last, persistent_workers=workers > 0, prefetch_factor=2 if workers else None,
                          generator=torch.Generator().manual_seed(self.seed))

    def _load_resume(self, method: nn.Module, opt, sched) -> int:
        ckpt = load_checkpoint(self.cfg.resume, map_location="cpu")
        if self.config and "config" in ckpt:
            diff = _differences(_resumable_view(ckpt["config"]), _resumable_view(self.config))
            if diff:
                raise CheckpointError(
                    f"Cannot resume from {self.cfg.resume!r}: it was written by a run with a different config "
                    f"({'; '.join(diff[:5])}{'; ...' if len(diff) > 5 else ''}). Resume with the same config."
                )
        try:
            method.load_state_dict(ckpt["model"])
            opt.load_state_dict(ckpt["optimizer"])
            sched.load_state_dict(ckpt["scheduler"])
        except (RuntimeError, KeyError, ValueError) as exc:
            raise CheckpointError(f"Checkpoint {self.cfg.resume!r} does not fit this model: {exc}") from None
        restore_rng(ckpt["rng"])
        self.monitor_history = [(int(e), dict(v)) for e, v in ckpt.get("monitor_history", [])]
        return int(ckpt["step"] if self.cfg.steps is not None else ckpt["epoch"])

    def _save(self, method: nn.Module, opt, sched, epoch: int, losses: Dict[str, float], unit: str = "epoch") -> None:
        """Write the checkpoint after ``epoch`` epochs (``unit="step"``: optimiser steps, kept under ``step`` too)."""
        if self.fabric.is_global_zero:
            save_checkpoint(self.checkpoint_path, {
                "epoch": epoch, unit: epoch, "model": method.state_dict(), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(), "rng": capture_rng(), "config": json.loads(json.dumps(self.config, default=str)),
                "losses": losses, "monitor_history": [[e, v] for e, v in self.monitor_history],
            })
        self.fabric.barrier()

    def fit(self, method: nn.Module, batches: Iterable, monitor: Optional[Callable[[nn.Module], Dict[str, float]]] = None) -> FitResult:
        """Train ``method`` for ``cfg.epochs`` epochs over ``batches`` (re-iterated every epoch).

        Args:
            method: an ``nn.Module`` whose ``forward(batch)`` returns a dict of named losses with
                the total under ``"loss"``.
            batches: an iterable of batches (a list with one graph for full-batch training, or a
                DataLoader); each batch is moved to the engine's device. A loader whose sampler
                has ``set_epoch`` (``DistributedSampler``) is told the epoch before each pass.
            monitor: called with the (unwrapped) method every ``monitor_every`` epochs and at the
                end; returns label-free metrics such as RankMe, which are logged and kept, with the epoch
                they were taken at, in ``FitResult.monitor_history`` (carried through checkpoints, so a
                resumed run has the whole history).

        The method may define ``param_groups()`` (its optimiser groups, see :meth:`_param_groups`),
        ``after_step()``, called after every optimiser step (an EMA target's update), and
        ``before_epoch(epoch)``, called with the number of finished epochs before each epoch (a staged
        method's switch; a resumed run calls it for the epoch it resumes at).

        Raises:
            NonFiniteLossError: a loss became NaN/inf; the checkpoint on disk is the last good one.
        """
        cfg, fabric = self.cfg, self.fabric
        before_epoch = getattr(method, "before_epoch", None)
        if cfg.steps is not None and before_epoch is not None:
            raise ConfigError(f"{type(method).__name__} changes what it trains by epoch (before_epoch), so its run is measured in "
                              "epochs: set trainer.epochs and trainer.steps=null.")
        per_epoch = self._steps_per_epoch(batches) if cfg.steps is None else 1
        opt, sched = self._build_optimizer(method, per_epoch)
        self.monitor_history = []
        start = self._load_resume(method, opt, sched) if cfg.resume else 0
        module, opt = fabric.setup(method, opt)
        if fabric.world_size > 1:
            torch.manual_seed(self.seed + 1000 * fabric.global_rank)
        after_step = getattr(method, "after_step", None)
        progress = self._progress(start, unit="epoch" if cfg.steps is None else "step")
        if cfg.steps is not None:
            return self._fit_steps(method, module, opt, sched, batches, monitor, start, progress, after_step)
        wall0 = time.perf_counter()
        train_seconds, data_wait, last, mon, run_steps = 0.0, 0.0, {}, {}, 0
        per_pass = len(batches) if hasattr(batches, "__len__") else None
        with progress:
            task = progress.add_task("train", total=cfg.epochs, completed=start, info="")
            self._announce(progress, f"{cfg.epochs - start} epoch(s) to run from epoch {start + 1}, "
                                     f"{per_pass if per_pass is not None else 'an unknown number of'} batches each")
            for epoch in range(start, cfg.epochs):
                if before_epoch is not None:
                    before_epoch(epoch)
                module.train()
                if hasattr(getattr(batches, "sampler", None), "set_epoch"):
                    batches.sampler.set_epoch(epoch)  # per-epoch shuffle that a resumed run repeats
                t0 = time.perf_counter()
                sums: Dict[str, float] = {}
                steps, pending = 0, 0
                feed = iter(batches)
                while True:
                    waited = time.perf_counter()
                    batch = next(feed, _END)
                    data_wait += time.perf_counter() - waited
                    if batch is _END:
                        break
                    pending += 1
                    with fabric.no_backward_sync(module, enabled=pending < cfg.accumulate):
                        losses = module(fabric.to_device(batch))
                        loss = losses["loss"]
                        value = float(loss.detach())
                        if not math.isfinite(value):
                            self._non_finite(epoch, value)
                        if pending == 1:
                            opt.zero_grad(set_to_none=True)
                        fabric.backward(loss / cfg.accumulate if cfg.accumulate > 1 else loss)
                    if pending == cfg.accumulate:
                        self._step(module, opt, sched, after_step)
                        pending = 0
                    for k, v in losses.items():
                        sums[k] = sums.get(k, 0.0) + (value if k == "loss" else float(v.detach() if torch.is_tensor(v) else v))
                    steps += 1
                    if per_pass and steps < per_pass:  # within the epoch too (its last step: the epoch line below)
                        run_steps += 1
                        elapsed = max(time.perf_counter() - wall0, 1e-9)
                        progress.update(task, completed=epoch + steps / per_pass,
                                        info=f"step {steps}/{per_pass} loss={value:.4f} {run_steps / elapsed:.2f} steps/s, "
                                             f"{data_wait / elapsed:.0%} waiting for data")
                if pending:
                    self._step(module, opt, sched, after_step)
                if cfg.schedule_every == "epoch":
                    sched.step()
                train_seconds += time.perf_counter() - t0
                last = {k: v / max(steps, 1) for k, v in sums.items()}
                metrics = {f"train/{k}": v for k, v in last.items()}
                metrics["train/lr"] = opt.param_groups[0]["lr"]
                done = epoch + 1
                if monitor is not None and (done % cfg.monitor_every == 0 or done == cfg.epochs):
                    mon = monitor(method)
                    self.monitor_history.append((done, {k: float(v) for k, v in mon.items()}))
                    metrics.update({f"monitor/{k}": v for k, v in mon.items()})
                fabric.log_dict(metrics, step=done)
                if done % cfg.checkpoint_every == 0 or done == cfg.epochs:
                    self._save(method, opt, sched, done, last)
                info = " ".join(f"{k}={v:.4f}" for k, v in last.items()) + "".join(f" {k}={v:.4g}" for k, v in mon.items())
                progress.update(task, completed=done, info=info)
        for logger in fabric.loggers:
            logger.finalize("success")
        ran = cfg.epochs - start
        return FitResult(
            epochs=cfg.epochs, steps=cfg.epochs * math.ceil(per_pass / cfg.accumulate) if per_pass else 0, seconds=time.perf_counter() - wall0, train_seconds=train_seconds, data_wait_seconds=data_wait,
            seconds_per_epoch=train_seconds / max(ran, 1), last_losses=last, monitor=mon, checkpoint=str(self.checkpoint_path),
            monitor_history=list(self.monitor_history),
        )

    def _fit_steps(self, method, module, opt, sched, batches, monitor, start: int, progress, after_step) -> FitResult:
        """:meth:`fit` for a run measured in optimiser steps (``trainer.steps``, see :class:`TrainerConfig`): the batches
        as one stream from step ``start`` on, monitoring, logging and checkpoints at multiples of their step counts."""
        cfg, fabric = self.cfg, self.fabric
        stream = self._stream(batches, start)
        per_pass = len(batches) if hasattr(batches, "__len__") else None
        wall0 = time.perf_counter()
        data_wait, aside, mon = 0.0, 0.0, {}
        sums: Dict[str, float] = {}
        window, last, done, pending = 0, {}, start, 0
        module.train()
        with progress:
            task = progress.add_task("train", total=cfg.steps, completed=start, info="")
            self._announce(progress, f"{cfg.steps - start} optimiser step(s) to run from step {start + 1}"
                                     f"{f', {per_pass} batches a pass over the training data' if per_pass else ''}")
            t0 = time.perf_counter()
            while done < cfg.steps:
                waited = time.perf_counter()
                batch = next(stream, _END)
                data_wait += time.perf_counter() - waited
                if batch is _END:
                    raise ConfigError("The training data holds no batch to train on.")
                pending += 1
                with fabric.no_backward_sync(module, enabled=pending < cfg.accumulate):
                    losses = module(fabric.to_device(batch))
                    value = float(losses["loss"].detach())
                    if not math.isfinite(value):
                        self._non_finite(done, value, unit="step")
                    if pending == 1:
                        opt.zero_grad(set_to_none=True)
                    fabric.backward(losses["loss"] / cfg.accumulate if cfg.accumulate > 1 else losses["loss"])
                for k, v in losses.items():
                    sums[k] = sums.get(k, 0.0) + (value if k == "loss" else float(v.detach() if torch.is_tensor(v) else v))
                window += 1
                if pending < cfg.accumulate:
                    continue
                self._step(module, opt, sched, after_step)
                pending, done = 0, done + 1
                end = done == cfg.steps
                t_aside = time.perf_counter()  # monitoring and checkpoints are not training time
                if done % cfg.monitor_every == 0 or end:
                    last = {k: v / max(window, 1) for k, v in sums.items()}
                    sums, window = {}, 0
                    metrics = {f"train/{k}": v for k, v in last.items()}
                    metrics["train/lr"] = opt.param_groups[0]["lr"]
                    if monitor is not None:
                        mon = monitor(method)
                        module.train()
                        self.monitor_history.append((done, {k: float(v) for k, v in mon.items()}))
                        metrics.update({f"monitor/{k}": v for k, v in mon.items()})
                    fabric.log_dict(metrics, step=done)
                if done % cfg.checkpoint_every == 0 or end:
                    self._save(method, opt, sched, done, last, unit="step")
                aside += time.perf_counter() - t_aside
                elapsed = max(time.perf_counter() - wall0, 1e-9)
                info = (f"loss={value:.4f} {(done - start) / elapsed:.2f} steps/s, {data_wait / elapsed:.0%} waiting for data"
                        + "".join(f" {k}={v:.4g}" for k, v in mon.items()))
                progress.update(task, completed=done, info=info)
            train_seconds = time.perf_counter() - t0 - aside
        for logger in fabric.loggers:
            logger.finalize("success")
        ran = cfg.steps - start
        passes = cfg.steps * cfg.accumulate / per_pass if per_pass else float("nan")
        return FitResult(
            epochs=passes, steps=cfg.steps, seconds=time.perf_counter() - wall0, train_seconds=train_seconds,
            data_wait_seconds=data_wait, seconds_per_epoch=train_seconds / max(ran, 1) * (per_pass or 0) / cfg.accumulate,
            last_losses=last, monitor=mon, checkpoint=str(self.checkpoint_path), monitor_history=list(self.monitor_history))

    def _announce(self, progress, what: str) -> None:
        """Say what the run is about to do, before its first batch (which may be long in coming)."""
        if not (self.cfg.progress and self.fabric.is_global_zero):
            return
        what = f"{what}, {self.cfg.num_workers} loader worker(s); waiting for the first batch"
        if isinstance(progress, PlainProgress):
            progress.note(what)
        else:
            progress.console.print(f"train: {what}")

    def _stream(self, batches, start: int):
        """The training batches of a steps-measured run from step ``start`` on: a loader over a
        :class:`~geossl.engine.loader.StreamSampler` (:meth:`loader`) skips the items already trained on before loading
        any; any other iterable (a list of full graphs) is cycled, pass after pass."""
        from geossl.engine.loader import StreamSampler

        skip = start * self.cfg.accumulate
        sampler = getattr(batches, "sampler", None)
        if isinstance(sampler, StreamSampler):
            sampler.start_at(skip * batches.batch_size)
            return iter(batches)

        def cycle():
            passes = 0
            while True:
                if hasattr(getattr(batches, "sampler", None), "set_epoch"):
                    batches.sampler.set_epoch(passes)
                empty = True
                for batch in batches:
                    empty = False
                    yield batch
                if empty:
                    return
                passes += 1

        return itertools.islice(cycle(), skip, None)

    def _steps_per_epoch(self, batches) -> int:
        """Optimiser steps per epoch (needed by a per-step schedule)."""
        if self.cfg.schedule_every != "step":
            return 1
        try:
            n = len(batches)
        except TypeError:
            raise ConfigError("trainer.schedule_every=step needs batches whose number per epoch is known (len).") from None
        return max(math.ceil(n / self.cfg.accumulate), 1)

    def _step(self, module, opt, sched, after_step) -> None:
        """One optimiser step (after clipping), the per-step schedule, and the method's after-step hook."""
        if self.cfg.grad_clip > 0:
            self.fabric.clip_gradients(module, opt, max_norm=self.cfg.grad_clip)
        opt.step()
        if self.cfg.schedule_every == "step":
            sched.step()
        if after_step is not None:
            after_step()

    def _non_finite(self, epoch: int, value: float, unit: str = "epoch") -> None:
        for logger in self.fabric.loggers:
            logger.finalize("failed")
        if self.checkpoint_path.is_file():
            ckpt = load_checkpoint(self.checkpoint_path)
            kept = f"The last good checkpoint is {self.checkpoint_path} ({unit} {ckpt.get(unit, ckpt['epoch'])})"
            how = f"; resume from it with trainer.resume={self.run_dir} after lowering trainer.lr or adding trainer.grad_clip."
        else:
            kept, how = "No checkpoint had been written yet", "; lower trainer.lr or add trainer.grad_clip and start again."
        raise NonFiniteLossError(f"The loss became {value} in {unit} {epoch + 1}; the run stopped without taking that step. {kept}{how}")

    def _progress(self, start: int, unit: str = "epoch"):
        """A rich progress bar on a terminal; plain lines when the output is not one (a batch job, nohup, CI). ``unit``:
        what the run counts ("epoch", or "step" for a run measured in steps)."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        enabled = self.cfg.progress and self.fabric.is_global_zero
        if enabled and not sys.stdout.isatty():
            return PlainProgress(start, unit=unit)
        return Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TimeRemainingColumn(), TextColumn("{task.fields[info]}"), disable=not enabled, transient=False,
        )


class PlainProgress:
    """Progress as plain lines for output that is not a terminal (a batch job, nohup, CI): what the run is about to do
    (:meth:`note`), then the epoch, the step within it, the losses, steps per second, elapsed and estimated time left,
    at most one line every ``interval`` seconds plus the first step, the first epoch and the last. It has the part of
    rich's ``Progress`` interface the engine uses (``completed`` may be fractional: epochs done plus the share of the
    current one). ``unit``: what ``completed`` counts ("epoch", or "step" for a run measured in steps)."""

    def __init__(self, start: int, interval: float = 30.0, file=None, unit: str = "epoch"):
        self.start, self.interval, self.file, self.unit = start, interval, file, unit
        self.total, self.description, self.t0, self.last, self.updates = 0, "", 0.0, -1e9, 0

    def note(self, text: str) -> None:
        """A line saying what the run does next (before its first step, which may wait long for data)."""
        print(f"{self.description}: {text}", file=self.file or sys.stdout, flush=True)

    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        return False

    def add_task(self, description: str, total: int, completed: int = 0, info: str = "") -> int:
        self.description, self.total = description, total
        return 0

    def update(self, task: int, completed: float, info: str = "") -> None:
        now = time.perf_counter()
        self.updates += 1
        whole = float(completed).is_integer()
        if now - self.last < self.interval and self.updates > 1 and not (whole and completed in (self.start + 1, self.total)):
            return
        self.last = now
        elapsed = now - self.t0
        done = completed - self.start
        eta = elapsed / done * (self.total - completed) if done > 0 else float("nan")
        fmt = lambda sec: time.strftime("%H:%M:%S", time.gmtime(sec)) if math.isfinite(sec) else "?"  # noqa: E731
        at = f"{self.unit} {int(completed) if whole else int(completed) + 1}/{self.total}"
        print(f"{self.description}: {at} {info} elapsed {fmt(elapsed)} eta {fmt(eta)}",
              file=self.file or sys.stdout, flush=True)
