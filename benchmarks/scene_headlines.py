"""The README's headline scene commands end to end at their defaults, as a user runs them: the wall time of the process,
the time of its training loop, the part of that spent waiting for batches, and the result each prints (held-out PSNR,
probe mIoU, mAP), to compare with the recorded protocols.

    python benchmarks/scene_headlines.py                      # all three, one after another
    python benchmarks/scene_headlines.py --commands pointmae  # one

Writes the `scene_headlines` section of docs/results.md and docs/results/scene_headlines.json (a rerun of some commands
keeps the others' rows).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine_line, read_json, write_json, write_section  # noqa: E402

#: The commands as the README gives them, and the summary keys of the result each reports.
COMMANDS = {
    "gaussian2scene": (["pretrain", "scene=gaussian2scene", "dataset=rooms"], ["test_render_psnr", "test_baseline_psnr", "seg_miou"]),
    "pointmae": (["pretrain", "scene=pointmae", "dataset=rooms"], ["seg_miou"]),
    "votenet": (["finetune", "detection=votenet", "dataset=rooms"], ["mAP@0.25", "mAP@0.5"]),
}


def run(name: str, folder: Path) -> dict:
    args, keys = COMMANDS[name]
    run_dir = folder / name
    t = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "geossl", *args, "trainer.progress=false", f"run_dir={run_dir}"],
                         capture_output=True, text=True, cwd=folder)
    wall = time.perf_counter() - t
    if res.returncode != 0:
        raise SystemExit(f"geossl {' '.join(args)} failed:\n{res.stderr[-3000:]}")
    s = json.loads((run_dir / "summary.json").read_text())
    steps = s["train_seconds"] - s["data_wait_seconds"]
    return {"command": "geossl " + " ".join(args), "name": name, "wall_s": wall, "train_s": s["train_seconds"],
            "data_wait_s": s["data_wait_seconds"], "steps_s": steps, "epochs": s["epochs"],
            "results": {k: s.get(k) for k in keys}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--commands", nargs="+", choices=list(COMMANDS), default=list(COMMANDS))
    args = ap.parse_args()
    from geossl.engine.engine import auto_workers, default_threads

    rows = {r["name"]: r for r in read_json("scene_headlines").get("rows", [])}
    with tempfile.TemporaryDirectory() as folder:
        for name in args.commands:
            rows[name] = {**run(name, Path(folder)), "machine": machine_line(threads="")}
    ordered = [rows[n] for n in COMMANDS if n in rows]
    write_json("scene_headlines", {"rows": ordered, "auto_workers": auto_workers(), "threads": default_threads(auto_workers())})
    lines = ["## The headline scene commands end to end", "",
             "`python benchmarks/scene_headlines.py` — each command as the README gives it (its defaults: 1,000 training "
             "rooms, loader workers `auto`), one seed, in a process of its own; wall: the whole process (start-up, "
             "training, the final evaluation); training loop: its epochs; waiting: the part of the loop the engine spent "
             "waiting for batches; loop / steps and wall / steps: over the sum of the steps (the loop less the waits).", ""]
    lines += sorted({r["machine"] for r in ordered})
    lines += ["", "| command | wall (min) | training loop (min) | waiting for data (min) | loop / steps | wall / steps | result |",
              "|---|---|---|---|---|---|---|"]
    for r in ordered:
        result = ", ".join(f"{k} {v:.2f}" if isinstance(v, (int, float)) else f"{k} {v}" for k, v in r["results"].items())
        lines.append(f"| `{r['command']}` | {r['wall_s'] / 60:.1f} | {r['train_s'] / 60:.1f} | {r['data_wait_s'] / 60:.1f} | "
                     f"**{r['train_s'] / r['steps_s']:.2f}** | {r['wall_s'] / r['steps_s']:.2f} | {result} |")
    write_section("scene_headlines", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
