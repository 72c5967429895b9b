"""Train the encoder zoo (geossl/zoo/): every entry from its documented command at one thread, packaged with its model
card (geossl/zoo/cards.json), its output checksum on the zoo's fixed input and its small check evaluation; the
README's zoo table and docs/results.md (section zoo) are written from the cards.

    python benchmarks/zoo.py --out <folder>                           # train what is missing, package every entry
    python benchmarks/zoo.py --out <folder> --entries graphmae-cora   # some entries (the others' cards are kept)
    python benchmarks/zoo.py --out <folder> --retrain graphmae-cora   # train again in <folder>/<name>-again and compare
                                                                      # the packaged file's sha256 with the shipped one

A zoo file holds the trained weights and a header without time stamps or paths (method, dataset, seed, epochs,
in_dim, the zoo name), so that the same weights give the same bytes; the commit goes on the card, not in the file.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import ROOT, machine_line, write_section  # noqa: E402

ZOO = ROOT / "geossl" / "zoo"
README = ROOT / "README.md"

ROOMS_CHECK = ["dataset=rooms", "eval.train_scenes=16", "dataset.splits.val=[1000,1008]", "dataset.splits.test=[2000,2016]",
               "seed=0"]
ROOMS_CHECK_TEXT = "seg probe, 16 training rooms, 8 validation rooms, 16 test rooms"

#: name -> what it trains and how it is checked. ``recorded``: (summary key, scale, what the full protocol is);
#: ``check``: (overrides of ``geossl evaluate encoder=<name>``, summary key, scale, what it is, tolerance in points).
ENTRIES = {
    "graphmae-cora": dict(
        command=["pretrain", "graph=graphmae", "dataset=cora", "seed=0"],
        data="Cora (2,708 nodes)",
        recorded=("test_acc", 100, "linear probe test accuracy (%), public split"),
        check=(["dataset=cora", "seed=0"], "test_acc", 100, "linear probe test accuracy (%), public split", 0.5)),
    "graphmae-mutag": dict(
        command=["pretrain", "graph=graphmae", "dataset=mutag", "seed=0"],
        data="MUTAG (188 graphs)",
        recorded=("cv_acc", 1, "SVC 10-fold accuracy (%)"),
        check=(["dataset=mutag", "seed=0"], "cv_acc", 1, "SVC 10-fold accuracy (%)", 0.5)),
    "pointmae-rooms": dict(
        command=["pretrain", "scene=pointmae", "dataset=rooms", "seed=0"],
        data="procedural rooms (1,000 training rooms)",
        recorded=("seg_miou", 100, "seg probe mIoU (%), 200 training rooms, 100 test rooms"),
        check=(ROOMS_CHECK, "seg_miou", 100, f"{ROOMS_CHECK_TEXT}, mIoU (%)", 0.5)),
    "gaussian2scene-rooms": dict(
        command=["pretrain", "scene=gaussian2scene", "dataset=rooms", "transform.budget=view_crop", "scene.render_radius=0.1",
                 "scene.scale_init=0.04", "dataset.cache=true", "seed=0"],
        data="procedural rooms (1,000 training rooms), view crops",
        recorded=("seg_miou", 100, "seg probe mIoU (%), 200 training rooms, 100 test rooms"),
        check=(ROOMS_CHECK, "seg_miou", 100, f"{ROOMS_CHECK_TEXT}, mIoU (%)", 0.5)),
    "gaussian2scene-spunet-rooms": dict(
        command=["pretrain", "scene=gaussian2scene", "encoder=spunet", "dataset=rooms", "dataset.cache=true", "seed=0"],
        data="procedural rooms (1,000 training rooms)",
        recorded=("seg_miou", 100, "seg probe mIoU (%), 200 training rooms, 100 test rooms"),
        check=(ROOMS_CHECK, "seg_miou", 100, f"{ROOMS_CHECK_TEXT}, mIoU (%)", 0.5)),
}

def commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()


#: the checkout's commit when this script started (the code it runs; later commits during a long run do not count)
STARTED_AT = None


def train(name: str, run_dir: Path) -> dict:
    """The summary of the entry's command at one thread in ``run_dir`` (a finished run there is reused)."""
    if not (run_dir / "summary.json").is_file():
        run_dir.mkdir(parents=True, exist_ok=True)
        if not (run_dir / "commit.txt").is_file():  # the commit the run started at (a resumed run keeps it)
            (run_dir / "commit.txt").write_text((STARTED_AT or commit()) + "\n")
        cmd = [sys.executable, "-P", "-m", "geossl", *ENTRIES[name]["command"], "trainer.threads=1", "trainer.progress=false"]
        cmd += [f"trainer.resume={run_dir}"] if (run_dir / "checkpoint.pt").is_file() else [f"run_dir={run_dir}"]
        print(" ".join(cmd[3:]), flush=True)
        with open(run_dir.parent / f"{run_dir.name}.log", "a") as log:
            if subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT).returncode != 0:
                raise SystemExit(f"{name}: training failed, see {run_dir.parent / f'{run_dir.name}.log'}")
    return json.loads((run_dir / "summary.json").read_text())


def package(name: str, run_dir: Path, summary: dict, out_file: Path) -> dict:
    """Write the zoo file of ``run_dir``'s encoder to ``out_file``; return its card (without the check)."""
    from geossl import zoo
    from geossl.encoder import load_encoder, read_encoder_header, save_encoder

    source = run_dir / "encoder.safetensors"
    header = read_encoder_header(source)
    meta = header["metadata"]
    encoder = load_encoder(source)
    keep = {k: meta[k] for k in ("method", "dataset", "seed", "epochs", "in_dim") if k in meta}
    save_encoder(encoder, out_file, metadata={**keep, "zoo": name})  # the same weights and config as the run's file
    entry = ENTRIES[name]
    key, scale, protocol = entry["recorded"]
    return {
        "name": name, "file": out_file.name, "bytes": out_file.stat().st_size, "sha256": zoo.sha256(out_file),
        "method": meta.get("method"), "encoder": header["encoder"], "domain": header["domain"], "data": entry["data"],
        "command": "geossl " + " ".join(entry["command"]) + " trainer.threads=1", "threads": 1,
        "train_minutes": round(float(summary.get("pretrain_seconds", 0.0)) / 60, 2),
        "recorded": {"metric": protocol, "value": round(float(summary[key]) * scale, 2), "protocol": protocol},
        "checksum": {**zoo.output_checksum(load_encoder(out_file), header["domain"]), "tolerance": 1e-4},
    }


def check(name: str, file: Path) -> dict:
    """The entry's small check evaluation of ``file`` (in this process, one thread)."""
    import torch

    from geossl.pipeline import configure

    overrides, key, scale, what, tolerance = ENTRIES[name]["check"]
    torch.set_num_threads(1)
    task, cfg, adapter = configure("evaluate", [f"encoder={file}", *overrides, "trainer.threads=1"])
    summary = task.run(cfg, adapter)
    return {"overrides": overrides, "metric": what, "key": key, "scale": scale,
            "value": round(float(summary[key]) * scale, 4), "tolerance": tolerance}


def write_cards(cards: dict) -> None:
    """Write ``cards`` merged into the cards on disk (another invocation may have packaged other entries meanwhile)."""
    on_disk = json.loads((ZOO / "cards.json").read_text())["encoders"] if (ZOO / "cards.json").is_file() else []
    cards.update({c["name"]: c for c in on_disk if c["name"] not in cards})
    (ZOO / "cards.json").write_text(json.dumps({"encoders": [cards[n] for n in sorted(cards)]}, indent=2) + "\n")


def write_docs(cards: dict, retrained: dict, missing: list) -> None:
    """README's zoo table (between its markers) and docs/results.md section zoo."""
    from geossl import zoo

    table = zoo.table(cards)  # the cards this script wrote (an installed geossl may hold older ones)
    total = sum(c["bytes"] for c in cards.values()) / 1e6
    block = (f"{table}\n\n{len(cards)} files, {total:.1f} MB in all, shipped in the package (`geossl/zoo/`); each is checked "
             "against its sha256 before it is loaded.")
    text = README.read_text()
    start, end = "<!-- BEGIN zoo -->", "<!-- END zoo -->"
    if start in text:
        head, rest = text.split(start, 1)
        README.write_text(f"{head}{start}\n{block}\n{end}{rest.split(end, 1)[1]}")
    rows = ["| name | trained by | training time (1 thread) | recorded | check (fast) | check value | retrained: same sha256 |",
            "|---|---|---|---|---|---|---|"]
    for n in sorted(cards):
        c = cards[n]
        again = retrained.get(n, "not rerun")
        took = f"{c['train_minutes']:.1f} min" if c["train_minutes"] >= 1 else f"{60 * c['train_minutes']:.0f} s"
        rows.append(f"| `{n}` | `{c['command']}` at {c['commit']} | {took} | {c['recorded']['metric']}: "
                    f"**{c['recorded']['value']}** | {c['check']['metric']} | {c['check']['value']:.2f} ± {c['check']['tolerance']} | "
                    f"{again} |")
    body = ["## The encoder zoo", "",
            "`python benchmarks/zoo.py --out <folder>` — each entry's command at one thread, its encoder re-saved without "
            "time stamps (geossl/zoo/<name>.safetensors), its card in geossl/zoo/cards.json. 'recorded': the run's own "
            "evaluation; 'check': the small evaluation `tests/core/test_zoo.py` reruns on the shipped file, with the "
            "tolerance it must meet; 'retrained': `--retrain <name>` trained the entry again from its command and "
            "compared the packaged file's sha256. Training times: the runs shared the two cores with two to four other runs, so "
            "they are not speeds.", "", *rows, ""]
    if missing:
        body.append("Not built: " + ", ".join(f"`{m}`" for m in missing) + ".")
        body.append("")
    body.append(machine_line(threads="1 torch thread"))
    write_section("zoo", "\n".join(body))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="folder for the training runs")
    ap.add_argument("--entries", nargs="+", choices=list(ENTRIES), default=None, help="entries to (re)package")
    ap.add_argument("--retrain", nargs="*", default=[], help="entries to train again and compare by sha256")
    ap.add_argument("--same-weights", nargs="*", default=[],
                    help="<name>=<encoder file>=<what it is>: record whether the entry's weights equal that file's")
    ap.add_argument("--docs-only", action="store_true", help="rewrite README and docs from the cards")
    args = ap.parse_args()
    global STARTED_AT
    STARTED_AT = commit()
    cards_file = ZOO / "cards.json"
    cards = {c["name"]: c for c in json.loads(cards_file.read_text())["encoders"]} if cards_file.is_file() else {}
    retrained_file = ROOT / "docs" / "results" / "zoo_retrained.json"
    retrained = json.loads(retrained_file.read_text()) if retrained_file.is_file() else {}
    for name in ([] if args.docs_only else (args.entries or [])):
        t0 = time.perf_counter()
        run_dir = args.out / name
        summary = train(name, run_dir)
        card = package(name, run_dir, summary, ZOO / f"{name}.safetensors")
        card["commit"] = run_commit(run_dir)
        card["check"] = check(name, ZOO / f"{name}.safetensors")
        cards[name] = card
        write_cards(cards)
        print(f"{name}: {card['bytes'] / 1e6:.1f} MB sha256 {card['sha256'][:12]} recorded {card['recorded']['value']} "
              f"check {card['check']['value']} ({time.perf_counter() - t0:.0f} s)", flush=True)
    for name in args.retrain:
        again = args.out / f"{name}-again"
        summary = train(name, again)
        file = args.out / f"{name}-again.safetensors"
        card = package(name, again, summary, file)
        same = card["sha256"] == cards[name]["sha256"]
        retrained[name] = "yes" if same else f"no ({card['sha256'][:12]})"
        retrained_file.parent.mkdir(parents=True, exist_ok=True)
        retrained_file.write_text(json.dumps(retrained, indent=2) + "\n")
        print(f"{name} retrained: sha256 {'the same' if same else 'different'}", flush=True)
    for spec in args.same_weights:
        name, file, what = spec.split("=", 2)
        same = same_weights(ZOO / cards[name]["file"], Path(file))
        retrained[name] = f"not retrained; weights {'bitwise equal' if same else 'not equal'} to {what}"
        retrained_file.write_text(json.dumps(retrained, indent=2) + "\n")
    write_docs(cards, retrained, [n for n in ENTRIES if n not in cards])


def same_weights(a: Path, b: Path) -> bool:
    """Whether two encoder files hold the same tensors (names, shapes and every bit)."""
    from safetensors.torch import load_file

    x, y = load_file(str(a)), load_file(str(b))
    return x.keys() == y.keys() and all(x[k].dtype == y[k].dtype and x[k].shape == y[k].shape and bool((x[k] == y[k]).all()) for k in x)


def run_commit(run_dir: Path) -> str:
    """The commit a run was trained at: its ``commit.txt`` (written when this script started it) or unknown."""
    path = run_dir / "commit.txt"
    return path.read_text().split()[0] if path.is_file() else "unknown"


if __name__ == "__main__":
    main()
