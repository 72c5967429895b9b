"""Sweeps of runs in Hydra's multirun form: ``geossl finetune -m detection=votenet dataset=rooms encoder=a,b,spunet
dataset.train_fraction=0.05,0.2,1 seed=0,1,2`` runs every combination of the swept values (Hydra's override grammar:
``a,b``, ``range(0,3)``, ``choice(...)``; Hydra's own sweeper expands them), each run in its own process and folder,
and a fine-tuning sweep ends with :func:`geossl.compare.compare_sweep`'s report of the sweep folder, a pretraining sweep
with :func:`geossl.select.select_sweep`'s choice by RankMe.

Settings of the sweep itself, with Hydra's names:

- ``hydra.sweep.dir=<folder>``: the sweep folder (default ``<out_dir>/multirun/<timestamp>``). Started again on the same
  folder, a sweep resumes: a run whose folder holds its ``summary.json`` is not run again, a run that left a checkpoint
  continues from it (``trainer.resume``), and any other started run starts over.
- ``hydra.launcher.n_jobs=<n>``: runs at once (default 1). Each run gets ``trainer.threads`` = the visible cores / n
  (at least 1) unless the command line sets it.

A run's folder is ``<sweep>/run-<hash of its overrides but trainer.threads>`` (the same run keeps its folder when
values are added to the sweep or its threads change), holding the run's own files, ``overrides.json`` and ``log.txt`` (its output).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from geossl.errors import ConfigError
from geossl.io import write_json

#: Sweep settings (Hydra's keys) and their defaults.
SWEEP_KEYS = {"hydra.sweep.dir": None, "hydra.launcher.n_jobs": "1"}


@dataclass
class SweepRun:
    """One run of a sweep: its overrides (as on the command line) and its folder."""

    overrides: List[str]
    folder: Path

    @property
    def done(self) -> bool:
        return (self.folder / "summary.json").is_file()


def finished_runs(folder: str | Path, command: str, keep: Callable[[Dict[str, Any]], bool]) -> List[Dict[str, Any]]:
    """The summaries (``summary.json``) of the finished runs under ``folder`` (any depth) that ``keep`` accepts, each
    with its ``run_dir``; ``command`` (``geossl compare``, ``geossl select``) names the reader in errors."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{command} reads a folder of runs (a sweep's); {str(folder)!r} is not a folder.")
    runs = []
    for path in sorted(folder.rglob("summary.json")):
        try:
            summary = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path} is not a readable run summary ({exc}).") from None
        if isinstance(summary, dict) and keep(summary):
            runs.append({**summary, "run_dir": str(path.parent)})
    return runs


def split_settings(overrides: List[str]) -> Tuple[Dict[str, str], List[str]]:
    """``(settings, run overrides)``: the sweep's own settings (:data:`SWEEP_KEYS`) taken out of ``overrides``."""
    settings = dict(SWEEP_KEYS)
    rest = []
    for o in overrides:
        key, _, value = o.partition("=")
        if key in SWEEP_KEYS:
            settings[key] = value
        elif key.startswith("hydra."):
            raise ConfigError(f"Unknown sweep setting {key!r}. Valid sweep settings: {', '.join(SWEEP_KEYS)}.")
        else:
            rest.append(o)
    return settings, rest


def expand(overrides: List[str]) -> List[List[str]]:
    """The runs of a multirun command line: every combination of the swept values, in Hydra's order (Hydra's parser and
    its basic sweeper)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as exc:
        raise ConfigError(f"Cannot read the sweep {' '.join(overrides)!r}: {exc}") from None
    return [run for batch in BasicSweeper.split_arguments(parsed, None) for run in batch]


def run_folder(sweep_dir: Path, overrides: List[str]) -> Path:
    """The folder of the run with ``overrides`` (named by a hash of them, order-free). ``trainer.threads`` does not name
    the run: the sweep sets it per process, and a run resumed with other threads is the same run."""
    named = sorted(o for o in overrides if o.split("=", 1)[0].lstrip("+") != "trainer.threads")
    key = hashlib.sha1("\n".join(named).encode()).hexdigest()[:10]
    return sweep_dir / f"run-{key}"


def plan(command: str, overrides: List[str]) -> Tuple[Path, int, List[SweepRun]]:
    """``(sweep folder, jobs, runs)`` of ``geossl <command> -m <overrides>``; every run's config is composed and checked
    (names, keys, files) before any run starts, so a typo fails the sweep at once."""
    from geossl.pipeline import configure

    settings, rest = split_settings(overrides)
    try:
        jobs = int(settings["hydra.launcher.n_jobs"])
    except ValueError:
        jobs = 0
    if jobs < 1:
        raise ConfigError(f"hydra.launcher.n_jobs must be a number of runs at once (>= 1), got {settings['hydra.launcher.n_jobs']!r}.")
    if any(o.split("=", 1)[0] in ("run_dir", "trainer.resume") for o in rest):
        raise ConfigError("A sweep gives every run its own folder under hydra.sweep.dir; run_dir= and trainer.resume= are not sweep keys.")
    runs = expand(rest)
    cfgs = [configure(command, run)[1] for run in runs]
    if settings["hydra.sweep.dir"]:
        sweep_dir = Path(settings["hydra.sweep.dir"])
    else:
        sweep_dir = Path(str(cfgs[0].get("out_dir") or "runs")) / "multirun" / time.strftime("%Y%m%d-%H%M%S")
    return sweep_dir, jobs, [SweepRun(run, run_folder(sweep_dir, run)) for run in runs]


def _launch(command: str, run: SweepRun, threads: Optional[int]) -> Tuple[SweepRun, int, float]:
    """Run one run in its own process (resuming its checkpoint where it left one); its output goes to ``log.txt``."""
    if (run.folder / "checkpoint.pt").is_file():
        where = [f"trainer.resume={run.folder}"]
    else:
        if run.folder.exists():
            shutil.rmtree(run.folder)
        where = [f"run_dir={run.folder}"]
    run.folder.mkdir(parents=True, exist_ok=True)
    write_json(run.folder / "overrides.json", {"command": command, "overrides": run.overrides})
    extra = [f"trainer.threads={threads}"] if threads else []
    t0 = time.perf_counter()
    with open(run.folder / "log.txt", "a") as log:
        # -P (Python >= 3.11): the working directory is not put on the run's import path, so a folder named geossl there
        # is not imported in place of the installed package
        safe = ["-P"] if sys.version_info >= (3, 11) else []
        rc = subprocess.call([sys.executable, *safe, "-m", "geossl", command, *run.overrides, *where, *extra],
                             stdout=log, stderr=subprocess.STDOUT)
    return run, rc, time.perf_counter() - t0


def sweep(command: str, overrides: List[str], out=None) -> int:
    """Run ``geossl <command> -m <overrides>`` (see the module docstring); returns 0 when every run finished, else 1.
    A fine-tuning sweep ends with the comparison of the sweep folder (:func:`geossl.compare.compare_sweep`)."""
    out = out or sys.stdout
    sweep_dir, jobs, runs = plan(command, overrides)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    with sweep_lock(sweep_dir):
        return _sweep(command, overrides, sweep_dir, jobs, runs, out)


@contextlib.contextmanager
def sweep_lock(sweep_dir: Path):
    """Hold ``<sweep>/sweep.lock`` (this process's id) while a sweep runs in the folder: a second sweep started on the
    same folder would restart the first one's unfinished runs, so it is refused while that process lives."""
    lock = sweep_dir / "sweep.lock"
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            try:
                pid = int(lock.read_text().strip() or 0)
            except (OSError, ValueError):
                pid = 0
            if pid and _alive(pid):
                raise ConfigError(f"Another sweep (process {pid}) is running in {sweep_dir}; wait for it, or give this one "
                                  "another hydra.sweep.dir.") from None
            lock.unlink(missing_ok=True)  # left by a sweep that died: taken over
    try:
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        yield
    finally:
        lock.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep(command: str, overrides: List[str], sweep_dir: Path, jobs: int, runs: List[SweepRun], out) -> int:
    from geossl.engine.engine import visible_cores

    write_json(sweep_dir / "sweep.json", {"command": command, "overrides": overrides, "runs": [
        {"folder": r.folder.name, "overrides": r.overrides} for r in runs]})
    todo = [r for r in runs if not r.done]
    user_threads = any(o.split("=", 1)[0] == "trainer.threads" for o in overrides)
    threads = None if user_threads else max(1, visible_cores() // jobs)
    print(f"sweep: {len(runs)} runs in {sweep_dir} ({len(runs) - len(todo)} finished before), {jobs} at once"
          f"{f', {threads} thread(s) each' if threads else ''}", file=out, flush=True)
    swept = {o.split("=", 1)[0] for r in runs for o in r.overrides if sum(o in q.overrides for q in runs) < len(runs)}
    failed = []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(_launch, command, r, threads) for r in todo]
        for i, future in enumerate(as_completed(futures), 1):
            run, rc, seconds = future.result()
            state = "done" if rc == 0 and run.done else f"FAILED (exit {rc}; its output: {run.folder / 'log.txt'})"
            if state != "done":
                failed.append(run)
            shown = " ".join(o for o in run.overrides if o.split("=", 1)[0] in swept)
            print(f"sweep: [{i}/{len(todo)}] {state} in {seconds / 60:.1f} min: {shown} -> {run.folder}",
                  file=out, flush=True)
    finished = f"sweep: {len(runs) - len(failed)} of {len(runs)} runs finished in {sweep_dir}"
    if command == "finetune":  # fine-tuning sweeps answer "did pretraining help?"
        from geossl.compare import compare_sweep

        finished += f"; comparison: {compare_sweep(sweep_dir)}"
    elif command == "pretrain":  # pretraining sweeps: the run RankMe chooses, against the labels where there are some
        from geossl.select import select_sweep

        finished += f"; selection by RankMe (also in {sweep_dir / 'select.md'}):\n{select_sweep(sweep_dir)}"
    print(finished, file=out, flush=True)
    return 1 if failed else 0
