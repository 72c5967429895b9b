"""``geossl compare <folder>``: did pretraining help? The fine-tuning runs under a folder (a sweep's, :mod:`geossl.sweep`),
grouped by start (the backbone from scratch, or a pretrained encoder file) and training fraction, compared on every
test metric they report (mAP@0.25 and @0.5 for detection, mIoU and OA for segmentation).

For every start and fraction: the mean and the sample standard deviation over seeds. For every pretrained start: its
paired difference from the same backbone trained from scratch, over the seeds both ran at that fraction (each seed's
pretrained score minus its scratch score: the seed fixes the fine-tuning's initialisation of the head, its data order
and its augmentations), with a 95% Student-t interval (mean ± t(0.975, n-1) sd / sqrt(n); none for one seed).

Writes ``compare.md`` (tables), ``compare.json`` (every number and run), ``compare.png`` (each metric against the
label fraction, one line per start, error bars: the standard deviation) and ``curves.png`` (the validation metrics
against the optimiser step, averaged over seeds: whether a start's runs had flattened) into the folder.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from geossl.errors import ConfigError
from geossl.io import write_json

#: The test metrics compared, where runs report them (in this order).
METRICS = ("mAP@0.25", "mAP@0.5", "mIoU", "OA")

#: t(0.975, df) for df = 1..30 (two-sided 95%); beyond 30 the normal's 1.96 is within 2% of it.
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110,
        2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (``df`` >= 1)."""
    return T975[df - 1] if df <= len(T975) else 1.96


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """``(mean, sample standard deviation)``; the deviation of one value is NaN."""
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else float("nan")
    return mean, std


def paired_difference(pretrained: Dict[int, float], scratch: Dict[int, float]) -> Optional[Dict[str, Any]]:
    """The mean of ``pretrained[s] - scratch[s]`` over the seeds ``s`` both have, with its 95% t interval
    (``lo``/``hi``: NaN for one seed); None when they share no seed."""
    seeds = sorted(set(pretrained) & set(scratch))
    if not seeds:
        return None
    diffs = [pretrained[s] - scratch[s] for s in seeds]
    mean, sd = mean_std(diffs)
    half = t975(len(diffs) - 1) * sd / math.sqrt(len(diffs)) if len(diffs) > 1 else float("nan")
    return {"mean": mean, "lo": mean - half, "hi": mean + half, "n": len(diffs), "seeds": seeds, "differences": diffs}


def read_runs(folder: str | Path) -> List[Dict[str, Any]]:
    """The summaries of the finished fine-tuning runs under ``folder`` (any depth), each with its ``run_dir``."""
    from geossl.sweep import finished_runs

    return finished_runs(folder, "geossl compare", lambda s: "train_fraction" in s and any(m in s for m in METRICS))


def start_labels(runs: List[Dict[str, Any]]) -> Dict[str, str]:
    """A readable name for every start (the summaries' ``encoder``): ``<backbone> from scratch`` or ``<backbone>,
    <pretraining method>``; pretrained files that would share a name get their path below the files' common folder."""
    by_encoder = {r["encoder"]: r for r in runs}
    labels = {}
    for encoder, r in by_encoder.items():
        backbone = r.get("backbone") or str(encoder).split(" ")[0]
        labels[encoder] = f"{backbone} from scratch" if r.get("pretraining") in (None, "scratch") else f"{backbone}, {r['pretraining']}"
    for label in set(labels.values()):
        same = [e for e, v in labels.items() if v == label]
        if len(same) > 1:
            parts = [Path(e).parts for e in same]
            common = 0
            while all(len(p) > common + 1 and p[common] == parts[0][common] for p in parts):
                common += 1
            for e, p in zip(same, parts):
                labels[e] = f"{label} ({'/'.join(p[common:])})"
    return labels


def compare(runs: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Every metric's groups (start x fraction: mean, sample std, seeds) and pretrained starts' paired differences from
    their backbone's scratch start, plus the runs' compute (see the module docstring)."""
    labels = start_labels(runs)
    scratch_of = {r.get("backbone"): r["encoder"] for r in runs if r.get("pretraining") in (None, "scratch")}
    out: Dict[str, Any] = {"metrics": {}, "starts": {}, "runs": len(runs)}
    for r in runs:
        out["starts"][labels[r["encoder"]]] = {"encoder": r["encoder"], "backbone": r.get("backbone"), "pretraining": r.get("pretraining")}
    for metric in [m for m in METRICS if any(m in r for r in runs)]:
        table: Dict[tuple, Dict[int, float]] = {}
        for r in runs:
            if r.get(metric) is not None:
                table.setdefault((r["encoder"], float(r["train_fraction"])), {})[int(r["seed"])] = float(r[metric])
        groups, paired = [], []
        for (encoder, fraction), by_seed in sorted(table.items(), key=lambda kv: (labels[kv[0][0]], kv[0][1])):
            mean, std = mean_std(list(by_seed.values()))
            scenes = sorted({r["train_scenes"] for r in runs if r["encoder"] == encoder and float(r["train_fraction"]) == fraction})
            groups.append({"start": labels[encoder], "fraction": fraction, "train_scenes": scenes[0] if len(scenes) == 1 else scenes,
                           "n": len(by_seed), "mean": mean, "std": std, "seeds": sorted(by_seed), "values": [by_seed[s] for s in sorted(by_seed)]})
            backbone = out["starts"][labels[encoder]]["backbone"]
            base = scratch_of.get(backbone)
            if base is not None and base != encoder and (base, fraction) in table:
                diff = paired_difference(by_seed, table[(base, fraction)])
                if diff is not None:
                    paired.append({"start": labels[encoder], "scratch": labels[base], "fraction": fraction, **diff})
        out["metrics"][metric] = {"groups": groups, "paired": paired}
    out["curves"] = validation_curves(runs, labels)
    minutes = [float(r.get("train_seconds", 0.0)) / 60 for r in runs]
    out["compute"] = {"train_minutes_total": sum(minutes), "train_minutes_per_run": mean_std(minutes)[0] if minutes else float("nan"),
                      "threads": sorted({t for r in runs for t in _as_list(r.get("torch_threads")) if t is not None}),
                      "steps": sorted({r.get("steps") for r in runs if r.get("steps") is not None}),
                      "geossl": sorted({r.get("geossl") for r in runs if r.get("geossl")})}
    return out


def _as_list(value) -> list:
    """``value`` as a list: a run records its thread count, or (a record that kept only its folder's) the counts."""
    return list(value) if isinstance(value, (list, tuple)) else [value]


def validation_curves(runs: List[Dict[str, Any]], labels: Dict[str, str]) -> Dict[str, List[Dict[str, Any]]]:
    """The runs' validation curves (their summaries' ``val_curve``: the validation metrics at the monitored steps),
    averaged over seeds per start and fraction: ``{metric: [{start, fraction, steps, mean, n}]}`` (``n``: the seeds at
    each step)."""
    table: Dict[str, Dict[tuple, Dict[int, List[float]]]] = {}
    for r in runs:
        for point in r.get("val_curve") or []:
            for key, value in point.items():
                if key != "step" and value is not None and math.isfinite(float(value)):
                    group = table.setdefault(key, {}).setdefault((labels[r["encoder"]], float(r["train_fraction"])), {})
                    group.setdefault(int(point["step"]), []).append(float(value))
    return {key: [{"start": start, "fraction": fraction, "steps": sorted(by_step),
                   "mean": [sum(by_step[t]) / len(by_step[t]) for t in sorted(by_step)], "n": [len(by_step[t]) for t in sorted(by_step)]}
                  for (start, fraction), by_step in sorted(groups.items())]
            for key, groups in table.items()}


def last_gains(curves: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Whether the runs had flattened: for every start and fraction of one validation metric's mean curves (as
    :func:`validation_curves` gives them), the change of the seed mean over the last validation interval,
    ``{start, fraction, from_step, to_step, gain}``. The interval starts at the latest earlier step with as many seeds'
    values as the last step, so the change is not a change of seeds (runs from commits that validated at another
    interval add steps only some seeds have); a curve with no such step gives nothing."""
    gains = []
    for c in curves:
        i = next((i for i in reversed(range(len(c["steps"]) - 1)) if c["n"][i] == c["n"][-1]), None)
        if i is not None:
            gains.append({"start": c["start"], "fraction": c["fraction"], "from_step": c["steps"][i], "to_step": c["steps"][-1],
                          "gain": c["mean"][-1] - c["mean"][i]})
    return gains


def plot_curves(result: Dict[str, Any], path: Path) -> Optional[Path]:
    """A PNG of the mean validation curves: one row per validation metric, one column per label fraction, one line per
    start (None when the runs recorded no curve)."""
    curves = result.get("curves") or {}
    if not curves:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = list(curves)
    fractions = sorted({c["fraction"] for m in metrics for c in curves[m]})
    fig, axes = plt.subplots(len(metrics), len(fractions), figsize=(4.5 * len(fractions), 3.5 * len(metrics)), squeeze=False)
    for i, metric in enumerate(metrics):
        for j, fraction in enumerate(fractions):
            ax = axes[i][j]
            for c in (c for c in curves[metric] if c["fraction"] == fraction):
                ax.plot(c["steps"], [100 * v for v in c["mean"]], marker="o", label=f"{c['start']} ({max(c['n'])} seeds)")
            ax.set_title(f"{100 * fraction:g}% of the training scenes", fontsize=9)
            ax.set_xlabel("optimiser step")
            ax.set_ylabel(f"{metric} (%)")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=6)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _pct(x: float) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{100 * x:.1f}"


def _signed(x: float) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{100 * x:+.1f}"


def _row(label: str, entries: List[Dict[str, Any]], start: str, fractions: List[float], cell) -> str:
    """A table row: ``cell(entry)`` of ``start``'s entry at each fraction ("-" where it has none)."""
    cells = []
    for f in fractions:
        e = next((e for e in entries if e["start"] == start and e["fraction"] == f), None)
        cells.append("-" if e is None else cell(e))
    return f"| {label} | " + " | ".join(cells) + " |"


def markdown(result: Dict[str, Any]) -> str:
    """The comparison as Markdown tables: per metric, mean ± std (seeds) per start and fraction, and the paired
    differences from scratch with their 95% intervals; per validation metric, each start and fraction's change over
    the last validation interval (:func:`last_gains`); values in % (points of the metric)."""
    lines = []
    for metric, m in result["metrics"].items():
        fractions = sorted({g["fraction"] for g in m["groups"]})
        head = " | ".join(f"{100 * f:g}%" for f in fractions)
        lines += [f"**{metric}** (%: mean ± sample std over seeds, seeds in brackets)", "", f"| start | {head} |",
                  "|---|" + "---|" * len(fractions)]
        for start in dict.fromkeys(g["start"] for g in m["groups"]):
            lines.append(_row(start, m["groups"], start, fractions, lambda g: f"{_pct(g['mean'])} ± {_pct(g['std'])} ({g['n']})"))
        lines.append("")
        if m["paired"]:
            lines += [f"Paired difference from scratch, {metric} (points; mean over the shared seeds [95% t interval] (seeds))", "",
                      f"| start - scratch | {head} |", "|---|" + "---|" * len(fractions)]
            scratch = {p["start"]: p["scratch"] for p in m["paired"]}
            for start, base in scratch.items():
                lines.append(_row(f"{start} - {base}", m["paired"], start, fractions,
                                  lambda p: f"{100 * p['mean']:+.1f} [{_signed(p['lo'])}, {_signed(p['hi'])}] ({p['n']})"))
            lines.append("")
    for metric, curves in (result.get("curves") or {}).items():
        gains = last_gains(curves)
        if not gains:
            continue
        fractions = sorted({g["fraction"] for g in gains})
        lines += [f"Last validation interval, {metric} (points: the seed mean's change from the latest earlier validation step "
                  "every seed reached to the last one; near 0: the runs had flattened)", "",
                  "| start | " + " | ".join(f"{100 * f:g}%" for f in fractions) + " |", "|---|" + "---|" * len(fractions)]
        for start in dict.fromkeys(g["start"] for g in gains):
            lines.append(_row(start, gains, start, fractions, lambda g: f"{_signed(g['gain'])} ({g['from_step']}→{g['to_step']})"))
        lines.append("")
    c = result["compute"]
    lines.append(f"Compute: {result['runs']} runs, {c['train_minutes_total']:.1f} training minutes in all "
                 f"({c['train_minutes_per_run']:.1f} per run); torch threads {c['threads']}; steps {c['steps']}; geossl {c['geossl']}.")
    return "\n".join(lines) + "\n"


def plot(result: Dict[str, Any], path: Path) -> Path:
    """A PNG of every metric against the label fraction (log axis), one line per start (each start a little to the right
    of the one before), error bars: the std."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError("geossl compare draws its plot with matplotlib, which is not installed: pip install 'geossl[scene]'.") from None
    metrics = list(result["metrics"])
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        groups = result["metrics"][metric]["groups"]
        for k, start in enumerate(dict.fromkeys(g["start"] for g in groups)):
            mine = sorted((g for g in groups if g["start"] == start), key=lambda g: g["fraction"])
            dodge = 1.04 ** k  # starts side by side at each fraction, so their error bars do not hide each other
            ax.errorbar([g["fraction"] * dodge for g in mine], [100 * g["mean"] for g in mine],
                        yerr=[0.0 if not math.isfinite(g["std"]) else 100 * g["std"] for g in mine], marker="o", capsize=3, label=start)
        ax.set_xscale("log")
        fractions = sorted({g["fraction"] for g in groups})
        ax.set_xticks(fractions, [f"{100 * f:g}%" for f in fractions])
        ax.set_xlabel("training scenes with labels")
        ax.set_ylabel(f"{metric} (%)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def compare_sweep(folder: str | Path) -> str:
    """Compare the runs under ``folder`` and write ``compare.md``, ``compare.json`` and ``compare.png`` into it; returns
    where they are (or that no run has finished)."""
    folder = Path(folder)
    runs = read_runs(folder)
    if not runs:
        return f"no finished fine-tuning run under {folder} yet"
    result = compare(runs)
    write_json(folder / "compare.json", {**result, "run_dirs": [r["run_dir"] for r in runs]})
    (folder / "compare.md").write_text(markdown(result))
    plot(result, folder / "compare.png")
    curves = plot_curves(result, folder / "curves.png")
    return f"{folder / 'compare.md'} (and compare.json, compare.png{', curves.png' if curves else ''})"
