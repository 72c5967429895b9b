"""``geossl select <folder> by=rankme``: choose a pretraining run without labels, and measure the choice against them.

Garrido, Balestriero, Najman, LeCun. "RankMe: Assessing the Downstream Performance of Pretrained Self-Supervised
Representations by Their Rank", ICML 2023: the effective rank of a set of embeddings (:func:`geossl.eval.rankme`)
tracks downstream accuracy across hyperparameters, so the run of highest rank can be chosen without labels.

The runs are the pretraining runs under a folder (a sweep's: ``geossl pretrain -m ...``, :mod:`geossl.sweep`); each
summary holds its label-free score and, where the dataset has labels, its downstream result:

- RankMe as each run computed it after pretraining: node-level graphs embed every node of the graph (transductive:
  pretraining saw the nodes, never their labels), graph-level datasets every graph (pooled), scenes the points of the
  test scenes; at most 25,600 rows, evenly spaced (the paper's sample size).
- The downstream result and its label-based selection score: the linear probe's test and validation accuracy (nodes),
  the SVC's cross-validated accuracy (graphs; it is its own selection score), the segmentation probe's test and
  validation mIoU (scenes).

Reports: every run by rank, the RankMe-chosen run, the run labels would choose (best validation score), the oracle
(best test result) and the chosen run's shortfall from it; Spearman's and Kendall's (tau-b) rank correlation between
the score and the downstream result. Writes ``select.md``, ``select.json`` and ``select.png`` (the score against the
result, the choices marked) into the folder.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from geossl.errors import ConfigError
from geossl.io import write_json

#: Label-free selection scores a summary can hold (higher is better): by=<name>.
CRITERIA = {"rankme": "RankMe (effective rank of the embeddings)"}

#: Downstream results, in the order looked for: (summary key, its label-based selection key, name).
RESULTS = (("test_acc", "val_acc", "linear-probe test accuracy"), ("cv_acc", "cv_acc", "SVC cross-validated accuracy"),
           ("seg_miou", "seg_val_miou", "segmentation-probe test mIoU"))


def average_ranks(values: Sequence[float]) -> List[float]:
    """1-based ranks of ``values``, ties sharing the average of their ranks."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation: Pearson's correlation of the average ranks (NaN if either is constant)."""
    rx, ry = average_ranks(x), average_ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    sxx, syy = sum((a - mx) ** 2 for a in rx), sum((b - my) ** 2 for b in ry)
    return sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else float("nan")


def kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b: (concordant - discordant) pairs over sqrt of the pairs untied in x times those untied in y."""
    conc = disc = untied_x = untied_y = 0
    n = len(x)
    for i in range(n):
        for j in range(i + 1, n):
            dx, dy = x[i] - x[j], y[i] - y[j]
            untied_x += dx != 0
            untied_y += dy != 0
            if dx * dy > 0:
                conc += 1
            elif dx * dy < 0:
                disc += 1
    return (conc - disc) / math.sqrt(untied_x * untied_y) if untied_x and untied_y else float("nan")


def read_pretraining_runs(folder: str | Path, by: str) -> List[Dict[str, Any]]:
    """The finished runs under ``folder`` (any depth) whose summary holds the score ``by``, each with its ``run_dir``
    and its command-line ``overrides`` (from the ``overrides.json`` a sweep writes; none without one)."""
    from geossl.sweep import finished_runs

    runs = finished_runs(folder, "geossl select", lambda s: isinstance(s.get(by), (int, float)) and math.isfinite(s[by]))
    for run in runs:
        path = Path(run["run_dir"]) / "overrides.json"
        try:
            written = json.loads(path.read_text()) if path.is_file() else {}
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path} is not readable ({exc}).") from None
        overrides = written.get("overrides", []) if isinstance(written, dict) else None
        if not (isinstance(overrides, list) and all(isinstance(o, str) for o in overrides)):
            raise ConfigError(f"{path} does not hold a sweep run's list of overrides.")
        run["overrides"] = overrides
    return runs


def swept_settings(runs: List[Dict[str, Any]]) -> List[Dict[str, str]]:
    """Each run's settings that differ between the runs (``key -> value`` from its overrides)."""
    settings = [dict(o.split("=", 1) for o in r["overrides"] if "=" in o) for r in runs]
    keys = sorted({k for s in settings for k in s})
    varying = [k for k in keys if len({s.get(k) for s in settings}) > 1]
    return [{k: s.get(k, "(default)") for k in varying} for s in settings]


def select(runs: List[Dict[str, Any]], by: str = "rankme") -> Dict[str, Any]:
    """The choice of ``by`` among ``runs`` and, where the runs report a downstream result, the choice labels make, the
    oracle and the rank correlations (see the module docstring)."""
    if by not in CRITERIA:
        raise ConfigError(f"Unknown selection score by={by!r}. Valid choices: {', '.join(CRITERIA)}.")
    if not runs:
        raise ConfigError(f"No finished run with a {by} score to select from.")
    settings = swept_settings(runs)
    rows = [{"run_dir": r["run_dir"], "settings": s, "score": float(r[by]), "method": r.get("method"), "dataset": r.get("dataset")}
            for r, s in zip(runs, settings)]
    chosen = max(range(len(rows)), key=lambda i: rows[i]["score"])
    out: Dict[str, Any] = {"by": by, "runs": rows, "chosen": chosen, "result": None}
    found = next(((k, v, name) for k, v, name in RESULTS if all(isinstance(r.get(k), (int, float)) for r in runs)), None)
    if found is None:
        return out
    key, val_key, name = found
    for row, r in zip(rows, runs):
        row["result"], row["validation"] = float(r[key]), float(r[val_key]) if isinstance(r.get(val_key), (int, float)) else None
    scores, results = [r["score"] for r in rows], [r["result"] for r in rows]
    oracle = max(range(len(rows)), key=lambda i: results[i])
    by_labels = max(range(len(rows)), key=lambda i: rows[i]["validation"] if rows[i]["validation"] is not None else -math.inf)
    out.update(result=key, result_name=name, validation=val_key, oracle=oracle, by_labels=by_labels,
               shortfall=results[oracle] - results[chosen],
               spearman=spearman(scores, results) if len(rows) > 1 else float("nan"),
               kendall=kendall_tau_b(scores, results) if len(rows) > 1 else float("nan"))
    return out


def _fmt(x: Optional[float]) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4g}"


def markdown(sel: Dict[str, Any]) -> str:
    """The selection as text: the choices, the correlations, every run by score."""
    rows, by = sel["runs"], sel["by"]
    keys = sorted({k for r in rows for k in r["settings"]})
    first = rows[0]
    lines = [f"# Selection by {by}: {len(rows)} runs ({first.get('method')} on {first.get('dataset')})", ""]

    def said(i: int) -> str:
        r = rows[i]
        what = ", ".join(f"{k}={v}" for k, v in r["settings"].items()) or Path(r["run_dir"]).name
        extra = f", {sel['result']} {_fmt(r['result'])}" if sel["result"] else ""
        return f"{what} ({by} {_fmt(r['score'])}{extra}) -> {r['run_dir']}"

    lines.append(f"- chosen by {by}: {said(sel['chosen'])}")
    if sel["result"]:
        if sel["validation"] != sel["result"]:
            lines.append(f"- chosen by labels (best {sel['validation']}): {said(sel['by_labels'])}")
        lines.append(f"- oracle (best {sel['result']}): {said(sel['oracle'])}")
        lines.append(f"- {by}'s choice is {_fmt(sel['shortfall'])} below the oracle; rank correlation of {by} with the "
                     f"{sel['result_name']}: Spearman {_fmt(sel['spearman'])}, Kendall tau-b {_fmt(sel['kendall'])}")
    else:
        lines.append("- the runs report no downstream result, so the choice is not checked against labels")
    lines += ["", "| " + " | ".join([*keys, by, *(["validation", sel["result"]] if sel["result"] else [])]) + " |",
              "|" + "---|" * (len(keys) + 1 + (2 if sel["result"] else 0))]
    for i in sorted(range(len(rows)), key=lambda i: -rows[i]["score"]):
        r = rows[i]
        cells = [str(r["settings"].get(k, "")) for k in keys] + [_fmt(r["score"])]
        if sel["result"]:
            cells += [_fmt(r["validation"]), _fmt(r["result"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(sel: Dict[str, Any], path: Path, title: Optional[str] = None) -> Optional[Path]:
    """The score against the downstream result, one point per run, the choices marked; None without results."""
    if not sel["result"]:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sel["runs"]
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    ax.scatter([r["score"] for r in rows], [r["result"] for r in rows], s=18, color="0.4", label="runs")
    for key, marker, colour, label in (("chosen", "o", "C0", f"chosen by {sel['by']}"), ("by_labels", "s", "C1", "chosen by validation"),
                                       ("oracle", "*", "C2", "best test")):
        r = rows[sel[key]]
        ax.scatter([r["score"]], [r["result"]], s=90, marker=marker, facecolors="none", edgecolors=colour, label=label)
    ax.set_xlabel(CRITERIA[sel["by"]].split(" (")[0])
    ax.set_ylabel(sel["result"])
    ax.set_title(title or f"{rows[0].get('method')} on {rows[0].get('dataset')}: Spearman {_fmt(sel['spearman'])}", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def select_sweep(folder: str | Path, by: str = "rankme") -> str:
    """Select among the runs under ``folder``, separately for every method and dataset among them (a sweep over datasets
    chooses per dataset); write ``select.md``, ``select.json`` (one selection, or ``{"groups": [...]}``) and
    ``select.png`` (``select-<method>-<dataset>.png`` per group when there are several) into it; return the text."""
    if by not in CRITERIA:
        raise ConfigError(f"Unknown selection score by={by!r}. Valid choices: {', '.join(CRITERIA)}.")
    folder = Path(folder)
    runs = read_pretraining_runs(folder, by)
    if not runs:
        return f"no finished pretraining run with a {by} score under {folder} yet"
    groups: Dict[tuple, List[Dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault((str(r.get("method")), str(r.get("dataset"))), []).append(r)
    selections = [select(group, by) for group in groups.values()]
    text = "\n".join(markdown(sel) for sel in selections)
    write_json(folder / "select.json", selections[0] if len(selections) == 1 else {"groups": selections})
    (folder / "select.md").write_text(text)
    try:
        for (method, dataset), sel in zip(groups, selections):
            plot(sel, folder / ("select.png" if len(selections) == 1 else f"select-{method}-{dataset}.png"))
    except ImportError:  # matplotlib comes with the scene extra; the tables do not need it
        text += "\n(no select.png: matplotlib is not installed)\n"
    return text
