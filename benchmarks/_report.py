"""Write a benchmark's section into docs/results.md (between its BEGIN/END markers)."""

from __future__ import annotations

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


def machine_line(threads: str | None = None) -> str:
    """The machine, versions, commit and date of a results section. ``threads`` says how many torch threads the
    timed work used (default: this process's count, "<n> torch threads"; "" leaves threads out)."""
    if threads is None:
        threads = f"{torch.get_num_threads()} torch threads"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or "unknown CPU"
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
