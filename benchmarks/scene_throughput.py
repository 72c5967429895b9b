"""Scene runs against their data: how fast rooms are made and read back, how fast a training step consumes them, and
whether the loader keeps up with the steps in the headline commands.

    python benchmarks/scene_throughput.py --rooms 16 --steps 4 --train-rooms 64 --epochs 2

1. Data rates, in one process at one thread (torch and NumPy's BLAS): rooms made per second (``make_room`` at the
   dataset's defaults: 50,000 points and four 320x240 ray-cast views), and training items per second of each headline
   command (its room made, or read back from the room cache; its views picked; its training transforms).
2. Step rates: items per second that a training step consumes, a fixed batch of 8 through the engine, at 1 and 2
   threads: Gaussian2Scene stage 1 and stage 2, Point-MAE, and VoteNet fine-tuning.
3. The headline commands end to end on a reduced split (``dataset.splits.train=[0,<train-rooms>]``, ``<epochs>``
   epochs, Gaussian2Scene half in each stage, no probe), at their defaults otherwise: the process's wall time, the
   time in the training loop, and the part of it spent waiting for batches (the engine's ``data_wait_seconds``),
   with ``trainer.num_workers=0`` (the default before loader workers) and at the default (``auto``).

Each part runs in processes of its own. Writes the `scene_throughput` section of docs/results.md and
docs/results/scene_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import TimedBatches, engine_fit, machine_line, read_json, write_json, write_section  # noqa: E402

#: The headline commands: (label, task, overrides)
HEADLINES = {
    "gaussian2scene": ("pretrain", ["scene=gaussian2scene", "dataset=rooms"]),
    "pointmae": ("pretrain", ["scene=pointmae", "dataset=rooms"]),
    "votenet": ("finetune", ["detection=votenet", "dataset=rooms"]),
}


def _one_thread() -> None:
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(1)


def data_rates(rooms: int) -> dict:
    """Rooms made per second, and each headline's training items per second made and read from the cache (one core)."""
    from geossl.pipeline import configure
    from geossl.pointcloud.rooms import make_room

    _one_thread()
    make_room(10_000)  # imports, open3d's start
    t = time.perf_counter()
    for seed in range(rooms):
        make_room(seed)
    out = {"rooms_made_per_s": rooms / (time.perf_counter() - t)}
    for name, (task, overrides) in HEADLINES.items():
        _, cfg, adapter = configure(task, overrides)
        train = adapter.load_dataset(cfg).split("train")
        t = time.perf_counter()
        for i in range(rooms):
            train[(i, i)]
        out[f"{name}_items_made_per_s"] = rooms / (time.perf_counter() - t)
        with tempfile.TemporaryDirectory() as cache:
            os.environ["GEOSSL_CACHE"] = cache
            _, cfg, adapter = configure(task, [*overrides, "dataset.cache=true"])
            cached = adapter.load_dataset(cfg).split("train")
            for i in range(rooms):
                cached[(i, i)]  # the first pass makes and stores them
            t = time.perf_counter()
            for i in range(rooms):
                cached[(i, i)]
            out[f"{name}_items_read_per_s"] = rooms / (time.perf_counter() - t)
            files = list(Path(cache).rglob("*.safetensors"))
            out[f"{name}_cache_mb_per_room"] = sum(f.stat().st_size for f in files) / max(len(files), 1) / 2**20
            del os.environ["GEOSSL_CACHE"]
    return out


def step_rates(threads: int, steps: int) -> dict:
    """Items per second a training step consumes (batch of 8, the same batch every step, through the engine)."""
    from geossl.pipeline import build_encoder, build_method, configure
    from geossl.points import collate
    from geossl.pointcloud.detection.finetune import build_detector
    from geossl.pointcloud.finetuned import FinetuneTraining

    torch.set_num_threads(threads)
    out = {"threads": threads}
    cases = [("gaussian2scene stage 1", "gaussian2scene", ["scene.stage1_epochs=1"]),
             ("gaussian2scene stage 2", "gaussian2scene", ["scene.stage1_epochs=0"]),
             ("pointmae", "pointmae", []), ("votenet", "votenet", [])]
    for label, name, extra in cases:
        task, overrides = HEADLINES[name]
        _, cfg, adapter = configure(task, [*overrides, *extra, f"trainer.threads={threads}", "trainer.epochs=1"])
        data = adapter.load_dataset(cfg)
        train = data.split("train")
        batch = collate([train[(i, i)] for i in range(8)])
        torch.manual_seed(0)
        if task == "pretrain":
            model = build_method(cfg, adapter, data)
        else:
            model = FinetuneTraining(build_detector(cfg, data, build_encoder(cfg, "scene", data.in_dim)))
        timed = TimedBatches(lambda i: batch, steps, warmup=1)
        engine_fit(cfg, model, timed)
        out[label] = 8 * steps / sum(timed.step_s)
    return out


def headline_run(name: str, workers: str, train_rooms: int, epochs: int, folder: Path, python: str = sys.executable,
                 label: str = "") -> dict:
    """One headline command on ``train_rooms`` rooms for ``epochs`` epochs with ``trainer.num_workers=<workers>`` (its
    default when empty) under ``python`` (another install of geossl for a before/after comparison): its wall time and
    what its summary says of the training loop."""
    task, overrides = HEADLINES[name]
    short = [f"dataset.splits.train=[0,{train_rooms}]", f"trainer.epochs={epochs}", "trainer.progress=false"]
    if workers:
        short.append(f"trainer.num_workers={workers}")
    if task == "pretrain":
        short.append("eval=none")
    else:  # a short fine-tune: validation and test on 8 rooms each, monitored once at the end
        short += ["dataset.splits.val=[1000,1008]", "dataset.splits.test=[2000,2008]", f"trainer.monitor_every={epochs}"]
    if name == "gaussian2scene":
        short.append(f"scene.stage1_epochs={epochs // 2}")
    run_dir = folder / f"{name}-workers-{workers or 'default'}-{label}"
    t = time.perf_counter()
    res = subprocess.run([python, "-m", "geossl", task, *overrides, *short, f"run_dir={run_dir}"], capture_output=True,
                         text=True, cwd=folder)
    wall = time.perf_counter() - t
    if res.returncode != 0:
        raise SystemExit(f"{name} with {workers} workers failed:\n{res.stderr[-3000:]}")
    summary = json.loads((run_dir / "summary.json").read_text())
    wait = summary.get("data_wait_seconds")  # None: a geossl from before the engine timed it
    return {"command": name, "workers": workers or "default", "geossl": label, "wall_s": wall,
            "train_s": summary["train_seconds"], "data_wait_s": wait,
            "steps_s": None if wait is None else summary["train_seconds"] - wait}


def _in_process(*args: str, python: str = sys.executable) -> dict:
    res = subprocess.run([python, __file__, *args], capture_output=True, text=True, cwd=tempfile.gettempdir())
    if res.returncode != 0:
        raise SystemExit(res.stderr[-3000:])
    return json.loads(res.stdout.strip().splitlines()[-1])


def _commit(python: str) -> str:
    """The commit an install of geossl was built from, as its package says (its source folder's git HEAD)."""
    res = subprocess.run([python, "-c", "import geossl, pathlib; print(pathlib.Path(geossl.__file__).parent)"],
                         capture_output=True, text=True, cwd=tempfile.gettempdir())
    where = json.loads(next(Path(res.stdout.strip()).parent.glob("geossl-*.dist-info/direct_url.json")).read_text())["url"]
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          cwd=where.removeprefix("file://")).stdout.strip() or "unknown"


def render(record: dict) -> str:
    """The results section of a recorded run (what :func:`main` wrote to docs/results/scene_throughput.json)."""
    a, data, before, steps, runs = record["args"], record["data"], record["data_before"], record["steps"], record["runs"]
    then, cores, workers = record["before"], record["cores"], record["auto_workers"]
    rates = {"gaussian2scene": ("gaussian2scene stage 2", "gaussian2scene stage 1"), "pointmae": ("pointmae",),
             "votenet": ("votenet",)}
    lines = ["## Scene data against the step", "",
             f"`python benchmarks/scene_throughput.py --rooms {a['rooms']} --steps {a['steps']} --train-rooms "
             f"{a['train_rooms']} --epochs {a['epochs']}" + (" --before <python of an install of an earlier commit>" if then else "")
             + "` — rooms at the dataset's defaults (50,000 points, four 320x240 views); each headline command's training item "
             "at its defaults (its preset's transforms and views). Data rates: one process, one thread (torch and NumPy's "
             f"BLAS), {a['rooms']} rooms. Step rates: a fixed batch of 8 through the engine, mean of {a['steps']} steps "
             "after one warm-up.", "", record["machine"], "",
             f"Making a room (points and four ray-cast views): **{data['rooms_made_per_s']:.1f} rooms/s per core**"
             + (f" ({before['rooms_made_per_s']:.1f} at {then}, before)." if before else "."), "",
             "| command | items/s per core, made | items/s per core, read from the room cache | cache per room (MB) | "
             "step consumes, items/s at 1 thread | at 2 threads | workers to keep up at 2 threads (made / read) |",
             "|---|---|---|---|---|---|---|"]
    for name, labels in rates.items():
        made, read = data[f"{name}_items_made_per_s"], data[f"{name}_items_read_per_s"]
        was = f" ({before[f'{name}_items_made_per_s']:.1f} before)" if before else ""
        for label in labels:
            one, two = steps[0][label], steps[1][label]
            lines.append(f"| {label if name == 'gaussian2scene' else name} | {made:.1f}{was} | {read:.1f} | "
                         f"{data[f'{name}_cache_mb_per_room']:.1f} | {one:.1f} | {two:.1f} | {two / made:.1f} / {two / read:.2f} |")
    made = data["gaussian2scene_items_made_per_s"]
    lines += ["", "Workers to keep up: the items a step consumes per second over the items one core makes (or reads) per "
              "second. A GPU step consumes far more; its rate is not measured here (no GPU has run "
              "`benchmarks/gpu_check.py --parts scene`), and the same division gives its workers. `trainer.num_workers=auto` "
              f"starts the visible cores but one, at most 8: at {made:.0f} Gaussian2Scene items/s per core, 8 workers feed a "
              f"step of up to about {8 * made:.0f} items/s (a batch of 8 every {1000 / made:.0f} ms); a faster step needs the "
              "room cache (`dataset.cache=true`) or more cores."]
    lines += ["", f"End to end on {a['train_rooms']} training rooms for {a['epochs']} epochs (Gaussian2Scene: "
              f"{a['epochs'] // 2} in each stage; no probe; fine-tuning validated once on 8 rooms and tested on 8), "
              f"{cores} visible cores, so `trainer.num_workers=auto` starts {workers} worker(s). "
              "Training loop: the epochs' time; waiting: the part of it the engine spent waiting for the next batch; "
              "loop / steps: the training loop over the sum of its steps (1.00: the data is hidden).", "",
              "| command | geossl | trainer.num_workers | process wall (s) | training loop (s) | waiting for data (s) | "
              "sum of steps (s) | loop / steps |",
              "|---|---|---|---|---|---|---|---|"]
    for r in runs:
        waited = "-" if r["data_wait_s"] is None else f"{r['data_wait_s']:.1f}"
        stepped = "-" if r["steps_s"] is None else f"{r['steps_s']:.1f}"
        ratio = "-" if r["steps_s"] is None else f"**{r['train_s'] / max(r['steps_s'], 1e-9):.2f}**"
        lines.append(f"| {r['command']} | {r['geossl']} | {r['workers']} | {r['wall_s']:.0f} | {r['train_s']:.1f} | {waited} | "
                     f"{stepped} | {ratio} |")
    if then:
        lines += ["", f"before: geossl at {then}, at its own defaults (no loader workers, the generator before it was made "
                  "faster); it did not time its waits for data. With `trainer.num_workers=0` the rooms are made in the "
                  "training process, between its steps, and the steps themselves ran slower there (the sum of steps "
                  "column) than beside a worker."]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rooms", type=int, default=16, help="rooms timed per data rate")
    ap.add_argument("--steps", type=int, default=4, help="steps timed per step rate (after one warm-up)")
    ap.add_argument("--train-rooms", type=int, default=64, help="training rooms of the end-to-end runs")
    ap.add_argument("--epochs", type=int, default=2, help="epochs of the end-to-end runs")
    ap.add_argument("--before", help="the python of another geossl install (an earlier commit): its data rates and its "
                                     "headline runs at its own defaults are measured too")
    ap.add_argument("--render", action="store_true", help="write the section again from the recorded JSON, measuring nothing")
    ap.add_argument("--part", choices=["data", "steps"], help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.part == "data":
        print(json.dumps(data_rates(args.rooms)))
        return
    if args.part == "steps":
        print(json.dumps(step_rates(args.threads, args.steps)))
        return
    if args.render:
        write_section("scene_throughput", render(read_json("scene_throughput")))
        return
    from geossl.engine.engine import auto_workers, visible_cores

    data = _in_process("--part", "data", "--rooms", str(args.rooms))
    before = _in_process("--part", "data", "--rooms", str(args.rooms), python=args.before) if args.before else None
    steps = [_in_process("--part", "steps", "--threads", str(t), "--steps", str(args.steps)) for t in (1, 2)]
    runs = []
    with tempfile.TemporaryDirectory() as folder:
        for name in HEADLINES:
            if args.before:
                runs.append(headline_run(name, "", args.train_rooms, args.epochs, Path(folder), args.before, "before"))
            runs += [headline_run(name, workers, args.train_rooms, args.epochs, Path(folder), label="this commit")
                     for workers in ("0", "")]
    record = {"machine": machine_line(threads=""), "data": data, "data_before": before, "steps": steps, "runs": runs,
              "cores": visible_cores(), "auto_workers": auto_workers(), "before": _commit(args.before) if args.before else None,
              "args": {"rooms": args.rooms, "steps": args.steps, "train_rooms": args.train_rooms, "epochs": args.epochs}}
    write_json("scene_throughput", record)
    write_section("scene_throughput", render(record))
    print(render(record))


if __name__ == "__main__":
    main()
