"""geossl select: the rank correlations against scipy, the choices on fake summaries with a known answer, its files and
its errors, and a two-run pretraining sweep selected end to end through the CLI."""

import json
import math
import random

import pytest

from geossl.errors import ConfigError
from geossl.select import average_ranks, kendall_tau_b, select, select_sweep, spearman, read_pretraining_runs


def _run(folder, rankme, test_acc=None, val_acc=None, dataset="cora", **overrides):
    folder.mkdir(parents=True)
    summary = {"method": "graphmae", "dataset": dataset, "rankme": rankme}
    if test_acc is not None:
        summary.update(test_acc=test_acc, val_acc=val_acc)
    (folder / "summary.json").write_text(json.dumps(summary))
    (folder / "overrides.json").write_text(json.dumps({"command": "pretrain", "overrides": [
        "graph=graphmae", "dataset=cora", *(f"{k.replace('__', '.')}={v}" for k, v in overrides.items())]}))


def test_average_ranks_share_ties():
    assert average_ranks([3.0, 1.0, 3.0, 2.0]) == [3.5, 1.0, 3.5, 2.0]


def test_rank_correlations_equal_scipys_with_and_without_ties():
    stats = pytest.importorskip("scipy.stats", reason="checked against scipy, which comes with the graph extra")
    rng = random.Random(0)
    for n in (3, 7, 20):
        for tied in (False, True):
            x = [rng.randint(0, 4) if tied else rng.random() for _ in range(n)]
            y = [rng.randint(0, 4) if tied else rng.random() for _ in range(n)]
            assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
            assert kendall_tau_b(x, y) == pytest.approx(stats.kendalltau(x, y).statistic, abs=1e-12)
    assert spearman([1, 2, 3], [5, 6, 7]) == pytest.approx(1.0) and kendall_tau_b([1, 2, 3], [7, 6, 5]) == pytest.approx(-1.0)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3])) and math.isnan(kendall_tau_b([1, 2, 3], [4, 4, 4]))


def test_select_on_known_runs(tmp_path):
    # rankme orders the runs 0.25 < 0.75 < 0.5; test accuracy 0.80 < 0.84 < 0.82 (the same order but one swap away from
    # rankme's); validation would pick mask 0.5
    _run(tmp_path / "a", 30.0, 0.80, 0.78, graph__mask_rate=0.25)
    _run(tmp_path / "b", 50.0, 0.82, 0.81, graph__mask_rate=0.5)
    _run(tmp_path / "c", 40.0, 0.84, 0.80, graph__mask_rate=0.75)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "summary.json").write_text(json.dumps({"method": "graphmae", "test_acc": 0.9}))  # no rankme: not a candidate
    runs = read_pretraining_runs(tmp_path, "rankme")
    assert len(runs) == 3
    sel = select(runs)
    rows = sel["runs"]
    assert rows[sel["chosen"]]["settings"] == {"graph.mask_rate": "0.5"}
    assert rows[sel["by_labels"]]["settings"] == {"graph.mask_rate": "0.5"}
    assert rows[sel["oracle"]]["settings"] == {"graph.mask_rate": "0.75"}
    assert sel["shortfall"] == pytest.approx(0.02)
    # ranks: rankme (1, 3, 2), accuracy (1, 2, 3): Spearman 1 - 6 * 2 / (3 * 8) = 0.5; Kendall (2 - 1) / 3
    assert sel["spearman"] == pytest.approx(0.5) and sel["kendall"] == pytest.approx(1 / 3)

    text = select_sweep(tmp_path)
    assert "chosen by rankme: graph.mask_rate=0.5" in text and "oracle (best test_acc): graph.mask_rate=0.75" in text
    saved = json.loads((tmp_path / "select.json").read_text())
    assert saved["chosen"] == sel["chosen"] and (tmp_path / "select.md").read_text() == text
    assert (tmp_path / "select.png").stat().st_size > 1000


def test_a_sweep_over_datasets_chooses_per_dataset(tmp_path):
    _run(tmp_path / "a", 30.0, 0.80, 0.78, graph__mask_rate=0.25)
    _run(tmp_path / "b", 50.0, 0.82, 0.81, graph__mask_rate=0.5)
    _run(tmp_path / "c", 90.0, 0.70, 0.70, dataset="citeseer", graph__mask_rate=0.25)
    _run(tmp_path / "d", 10.0, 0.60, 0.65, dataset="citeseer", graph__mask_rate=0.5)
    text = select_sweep(tmp_path)
    assert "2 runs (graphmae on cora)" in text and "2 runs (graphmae on citeseer)" in text
    groups = json.loads((tmp_path / "select.json").read_text())["groups"]
    chosen = {g["runs"][0]["dataset"]: g["runs"][g["chosen"]]["settings"] for g in groups}
    assert chosen == {"cora": {"graph.mask_rate": "0.5"}, "citeseer": {"graph.mask_rate": "0.25"}}
    assert (tmp_path / "select-graphmae-cora.png").is_file() and (tmp_path / "select-graphmae-citeseer.png").is_file()


def test_select_without_labels_only_chooses(tmp_path):
    _run(tmp_path / "a", 3.0, graph__lam=0.1)
    _run(tmp_path / "b", 9.0, graph__lam=1.0)
    sel = select(read_pretraining_runs(tmp_path, "rankme"))
    assert sel["runs"][sel["chosen"]]["settings"] == {"graph.lam": "1.0"} and sel["result"] is None
    assert "not checked against labels" in select_sweep(tmp_path) and not (tmp_path / "select.png").exists()


def test_bad_input_is_refused_with_the_choices(tmp_path):
    with pytest.raises(ConfigError, match="Valid choices: rankme"):
        select_sweep(tmp_path, by="accuracy")
    with pytest.raises(ConfigError, match="not a folder"):
        select_sweep(tmp_path / "missing")
    assert "no finished pretraining run" in select_sweep(tmp_path)
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "summary.json").write_text("{not json")
    with pytest.raises(ConfigError, match="readable run summary"):
        select_sweep(tmp_path)


def test_a_two_run_pretraining_sweep_then_select_through_the_cli(tmp_path):
    from tests.cli.test_cli import TINY, geossl
    from tests.conftest import _planetoid_present

    if not _planetoid_present("Cora"):
        pytest.skip("Cora not found under $GEOSSL_DATA")
    sweep = tmp_path / "sweep"
    res = geossl("pretrain", "-m", "graph=barlow_twins", "dataset=cora", "graph.edge_drop=0.1,0.5", *TINY,
                 "encoder.hidden=32", "encoder.out_dim=16", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "selection by RankMe" in res.stdout and (sweep / "select.md").is_file()
    res = geossl("select", str(sweep), "by=rankme", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "chosen by rankme: graph.edge_drop=" in res.stdout and "Spearman" in res.stdout
    saved = json.loads((sweep / "select.json").read_text())
    assert len(saved["runs"]) == 2 and saved["result"] == "test_acc"
    res = geossl("select", str(sweep), "by=val_acc", cwd=tmp_path)
    assert res.returncode == 2 and "Valid choices: rankme" in res.stderr
