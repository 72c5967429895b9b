"""Wall time of starting the CLI: `geossl --help` and `geossl config graph=graphmae dataset=cora`, each in a fresh
process, 5 runs each (alternating between the installs compared), median. With `--baseline-python <python>` the same
commands run through another install of geossl (another commit) in the same rounds, for a ratio measured in one run.

    python benchmarks/cli_startup.py [--baseline-python /path/to/other/venv/bin/python --baseline-commit <sha>]

Writes the `cli_startup` section of docs/results.md and docs/results/cli_startup.json.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine_line, write_json, write_section  # noqa: E402

COMMANDS = {"geossl --help": ["--help"], "geossl config graph=graphmae dataset=cora": ["config", "graph=graphmae", "dataset=cora"]}


def seconds(python: str, args: list, cwd: str) -> float:
    t = time.perf_counter()
    res = subprocess.run([python, "-m", "geossl", *args], capture_output=True, text=True, cwd=cwd)
    elapsed = time.perf_counter() - t
    if res.returncode != 0:
        raise SystemExit(f"{python} -m geossl {' '.join(args)} failed: {res.stderr[-2000:]}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--baseline-python", default="")
    ap.add_argument("--baseline-commit", default="")
    args = ap.parse_args()
    installs = {"this commit": sys.executable, **({f"baseline ({args.baseline_commit})": args.baseline_python} if args.baseline_python else {})}
    times = {(i, c): [] for i in installs for c in COMMANDS}
    with tempfile.TemporaryDirectory() as cwd:  # a neutral folder: nothing imported from a checkout
        for _ in range(args.runs):
            for install, python in installs.items():
                for command, argv in COMMANDS.items():
                    times[(install, command)].append(seconds(python, argv, cwd))
    rows = [{"install": i, "command": c, "median_s": statistics.median(t), "runs_s": t} for (i, c), t in times.items()]
    write_json("cli_startup", {"machine": machine_line(threads=""), "runs": args.runs, "rows": rows})
    lines = ["## CLI start-up", "",
             f"`python benchmarks/cli_startup.py --baseline-python <other install> --baseline-commit <sha>` — wall time of a fresh "
             f"process per command, {args.runs} runs each, alternating between the installs, median (all runs in "
             "docs/results/cli_startup.json). `config` imports the graph domain alone (its datasets are checked); `--help` "
             "imports no domain.", "", machine_line(threads=""), "",
             "| command | " + " | ".join(installs) + " |", "|---|" + "---|" * len(installs)]
    for command in COMMANDS:
        cells = [f"{statistics.median(times[(i, command)]):.2f} s" for i in installs]
        lines.append(f"| `{command}` | " + " | ".join(cells) + " |")
    write_section("cli_startup", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
