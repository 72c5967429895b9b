"""Write a benchmark's section into docs/results.md (between its BEGIN/END markers)."""

from __future__ import annotations

import functools
import json
import platform
import re
import statistics
import subprocess
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results.md"
HEADER = "# Measured results\n\nEvery number on this page was written by a script in `benchmarks/`; rerun it to reproduce.\n"


def mean_std(values):
    """Mean and population standard deviation (as the GraphMAE reference code reports)."""
    values = [float(v) for v in values]
    return statistics.fmean(values), statistics.pstdev(values) if len(values) > 1 else 0.0


@functools.cache
def cpu_name() -> str:
    """This machine's CPU model (/proc/cpuinfo's model name; read once)."""
    try:
        return next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def machine_line(threads: str | None = None) -> str:
    """The machine, versions, commit and date of a results section. ``threads`` says how many torch threads the
    timed work used (default: this process's count, "<n> torch threads"; "" leaves threads out)."""
    if threads is None:
        threads = f"{torch.get_num_threads()} torch threads"
    cpu = cpu_name()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    return (f"Machine: {cpu}, {threads + ', ' if threads else ''}torch {torch.__version__}, "
            f"Python {platform.python_version()}; geossl commit {commit or 'unknown'}; {time.strftime('%Y-%m-%d')}.")


def matmul_gflops(repeats: int = 20) -> float:
    """This machine's dense float32 matmul rate right now ([2708, 1433] x [1433, 512], Cora's first
    layer). Shared machines drift by a third or more over an hour; a timing is comparable to
    another only at a similar rate."""
    a, b = torch.randn(2708, 1433), torch.randn(1433, 512)
    for _ in range(3):
        a @ b
    t = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * 2708 * 1433 * 512 * repeats / (time.perf_counter() - t) / 1e9


def write_section(name: str, body: str) -> None:
    """Replace (or append) the section ``name`` of docs/results.md with ``body``."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    text = RESULTS.read_text() if RESULTS.exists() else HEADER
    block = f"<!-- BEGIN {name} -->\n{body.strip()}\n<!-- END {name} -->"
    pattern = re.compile(rf"<!-- BEGIN {re.escape(name)} -->.*?<!-- END {re.escape(name)} -->", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(text)


def read_json(name: str) -> dict:
    """What :func:`write_json` recorded under ``name`` (docs/results/<name>.json), or {} when nothing was."""
    path = ROOT / "docs" / "results" / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def machine_free(obj):
    """``obj`` with every absolute path made machine-free: a run folder becomes its name (``seed0``), a file its run
    folder and name (``seed0/encoder.safetensors``), so recorded results say which run, not where it lay."""
    if isinstance(obj, dict):
        return {k: machine_free(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [machine_free(v) for v in obj]
    if isinstance(obj, str) and obj.startswith("/") and " " not in obj and "\n" not in obj:
        parts = Path(obj).parts[1:]
        keep = 2 if Path(obj).suffix else 1
        return "/".join(parts[-keep:]) if parts else obj
    return obj


class TimedBatches:
    """Training batches for the engine (``Engine.fit``) that time the run as it goes: ``make(i)`` builds batch ``i``
    (timed as data), and the time from handing a batch to the engine to the engine's request for the next is the
    engine's step (forward, backward, clipping, optimiser and schedule). The first ``warmup`` steps are not counted;
    one batch more is made, so that every counted step is closed by the next request.

    Attributes after a fit: ``data_s`` and ``step_s``, a list each, one entry per counted step.
    """

    def __init__(self, make, steps: int, warmup: int = 2):
        self.make, self.steps, self.warmup = make, steps, warmup
        self.data_s, self.step_s = [], []

    def __len__(self) -> int:
        return self.warmup + self.steps + 1

    def __iter__(self):
        handed = None
        for i in range(len(self)):
            t0 = time.perf_counter()
            if handed is not None and self.warmup <= i - 1:
                self.step_s.append(t0 - handed)
            batch = self.make(i)
            if self.warmup <= i < self.warmup + self.steps:
                self.data_s.append(time.perf_counter() - t0)
            handed = time.perf_counter()
            yield batch


def engine_fit(cfg, method, batches, seed: int = 0):
    """Train ``method`` over ``batches`` with the engine of ``cfg.trainer`` (progress off) in a temporary run folder."""
    import tempfile

    from geossl.engine import Engine
    from geossl.pipeline import trainer_config

    trainer = trainer_config(cfg)
    trainer.progress = False
    with tempfile.TemporaryDirectory() as run_dir:
        return Engine(trainer, run_dir, seed=seed).fit(method, batches)


def write_json(name: str, data) -> Path:
    """``docs/results/<name>.json``: ``data`` with its paths machine-free (:func:`machine_free`)."""
    path = ROOT / "docs" / "results" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(machine_free(data), indent=2, sort_keys=True) + "\n")
    return path


def geossl_run(args: list, run_dir: Path) -> dict:
    """The summary of ``python -m geossl <args> run_dir=<run_dir>``, run in a process of its own with its output in
    ``<run_dir>.log``; a run that already has its ``summary.json`` is reused."""
    import sys

    if not (run_dir / "summary.json").is_file():
        cmd = [sys.executable, "-m", "geossl", *args, f"run_dir={run_dir}"]
        log_path = run_dir.parent / f"{run_dir.name}.log"
        with open(log_path, "w") as log:
            if subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT).returncode != 0:
                raise SystemExit(f"{' '.join(cmd[2:])} failed: see {log_path}")
    return json.loads((run_dir / "summary.json").read_text())
