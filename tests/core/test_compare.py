"""geossl compare: the statistics on summaries with a known answer, labels, and the files it writes."""

import json
import math

import pytest

from geossl.compare import T975, compare, compare_sweep, last_gains, paired_difference, read_runs, t975


def _summary(folder, encoder, fraction, seed, miou, backbone="point_patch_transformer", pretraining="scratch", **extra):
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps({
        "segmentation": "linear", "encoder": encoder, "backbone": backbone, "pretraining": pretraining, "train_fraction": fraction,
        "train_scenes": int(100 * fraction), "seed": seed, "mIoU": miou, "OA": 0.9, "train_seconds": 60.0, "steps": 10,
        "torch_threads": 1, "geossl": "0.1.0", **extra}))


def test_the_t_quantiles_are_students():
    scipy = pytest.importorskip("scipy.stats", reason="the t table is checked against scipy, which comes with the graph extra")
    for df in (1, 2, 5, 10, 30):
        assert T975[df - 1] == pytest.approx(scipy.t.ppf(0.975, df), abs=1e-3)
    assert t975(200) == 1.96


def test_the_paired_difference_and_its_interval_on_a_known_answer():
    d = paired_difference({0: 0.55, 1: 0.58, 2: 0.57, 7: 0.9}, {0: 0.50, 1: 0.52, 2: 0.54})
    # differences 0.05, 0.06, 0.03 over the three shared seeds (seed 7 has no scratch run)
    sd = math.sqrt(((0.05 - 0.14 / 3) ** 2 + (0.06 - 0.14 / 3) ** 2 + (0.03 - 0.14 / 3) ** 2) / 2)
    assert d["seeds"] == [0, 1, 2] and d["mean"] == pytest.approx(0.14 / 3)
    assert d["hi"] - d["mean"] == pytest.approx(4.303 * sd / math.sqrt(3)) and d["lo"] == pytest.approx(2 * d["mean"] - d["hi"])
    assert d["lo"] == pytest.approx(0.00872, abs=1e-4) and d["hi"] == pytest.approx(0.08462, abs=1e-4)
    one = paired_difference({0: 0.6}, {0: 0.5})
    assert one["mean"] == pytest.approx(0.1) and math.isnan(one["lo"]) and paired_difference({1: 0.6}, {0: 0.5}) is None


def test_compare_groups_starts_and_fractions_and_pairs_each_backbone_with_its_scratch(tmp_path):
    scratch, pmae = "point_patch_transformer (from scratch)", "/x/pointmae/seed0/encoder.safetensors"
    for seed, (a, b) in enumerate([(0.50, 0.55), (0.52, 0.58), (0.54, 0.57)]):
        _summary(tmp_path / f"s{seed}", scratch, 0.05, seed, a)
        _summary(tmp_path / f"p{seed}", pmae, 0.05, seed, b, pretraining="pointmae")
    _summary(tmp_path / "s-full", scratch, 1.0, 0, 0.7)
    _summary(tmp_path / "sp", "spunet (from scratch)", 0.05, 0, 0.6, backbone="spunet")  # another backbone: no pairing
    (tmp_path / "unfinished").mkdir()
    runs = read_runs(tmp_path)
    assert len(runs) == 8
    result = compare(runs)
    groups = {(g["start"], g["fraction"]): g for g in result["metrics"]["mIoU"]["groups"]}
    g = groups[("point_patch_transformer from scratch", 0.05)]
    assert g["mean"] == pytest.approx(0.52) and g["std"] == pytest.approx(0.02) and g["seeds"] == [0, 1, 2] and g["train_scenes"] == 5
    assert math.isnan(groups[("point_patch_transformer from scratch", 1.0)]["std"])  # one seed: no deviation
    (p,) = result["metrics"]["mIoU"]["paired"]
    assert (p["start"], p["scratch"], p["fraction"]) == ("point_patch_transformer, pointmae", "point_patch_transformer from scratch", 0.05)
    assert p["mean"] == pytest.approx(0.14 / 3)
    assert result["compute"]["train_minutes_total"] == pytest.approx(8.0)
    report = compare_sweep(tmp_path)
    assert "compare.md" in report and (tmp_path / "compare.png").stat().st_size > 1000
    md = (tmp_path / "compare.md").read_text()
    assert "| point_patch_transformer, pointmae - point_patch_transformer from scratch | +4.7 [+0.9, +8.5] (3) | - |" in md
    assert "| point_patch_transformer from scratch | 52.0 ± 2.0 (3) | 70.0 ± - (1) |" in md
    assert json.loads((tmp_path / "compare.json").read_text())["runs"] == 8


def test_pretrained_files_of_one_method_are_told_apart_by_their_paths(tmp_path):
    for i, where in enumerate(("/w/pre/g2s/seed0/encoder.safetensors", "/w/pre/g2s_crops/seed0/encoder.safetensors")):
        _summary(tmp_path / str(i), where, 1.0, 0, 0.5, pretraining="gaussian2scene")
    starts = set(compare(read_runs(tmp_path))["starts"])
    assert starts == {"point_patch_transformer, gaussian2scene (g2s/seed0/encoder.safetensors)",
                      "point_patch_transformer, gaussian2scene (g2s_crops/seed0/encoder.safetensors)"}


def test_validation_curves_are_averaged_over_seeds_per_start_and_fraction(tmp_path):
    scratch = "point_patch_transformer (from scratch)"
    for seed, (a, b) in enumerate([(0.2, 0.4), (0.4, 0.6)]):
        _summary(tmp_path / f"s{seed}", scratch, 0.05, seed, b, val_curve=[{"step": 5, "val_mIoU": a}, {"step": 10, "val_mIoU": b}])
    _summary(tmp_path / "late", scratch, 1.0, 0, 0.5, val_curve=[{"step": 10, "val_mIoU": 0.5}])
    result = compare(read_runs(tmp_path))
    (five, full) = sorted(result["curves"]["val_mIoU"], key=lambda c: c["fraction"])
    assert five["start"] == "point_patch_transformer from scratch" and five["steps"] == [5, 10]
    assert five["mean"] == pytest.approx([0.3, 0.5]) and five["n"] == [2, 2]
    assert full["steps"] == [10] and full["mean"] == pytest.approx([0.5])
    assert "curves.png" in compare_sweep(tmp_path) and (tmp_path / "curves.png").stat().st_size > 1000
    # the seed mean rose 0.3 -> 0.5 over the last interval at 5%; 100% has one validation step: no change to give
    (gain,) = last_gains(result["curves"]["val_mIoU"])
    assert (gain["fraction"], gain["from_step"], gain["to_step"]) == (0.05, 5, 10) and gain["gain"] == pytest.approx(0.2)
    assert "| point_patch_transformer from scratch | +20.0 (5→10) |" in (tmp_path / "compare.md").read_text()


def test_a_last_validation_change_is_only_given_over_the_same_seeds():
    curves = [{"start": "a", "fraction": 1.0, "steps": [5, 10], "mean": [0.2, 0.9], "n": [2, 1]},
              {"start": "b", "fraction": 1.0, "steps": [5, 10, 15], "mean": [0.2, 0.5, 0.45], "n": [2, 2, 2]}]
    (gain,) = last_gains(curves)
    assert gain["start"] == "b" and gain["gain"] == pytest.approx(-0.05) and (gain["from_step"], gain["to_step"]) == (10, 15)


def test_a_last_validation_change_skips_steps_only_some_seeds_reached():
    # one seed validated every 250 steps, two others every 625: 2750 has one seed, 2500 and 3000 all three
    curves = [{"start": "c", "fraction": 1.0, "steps": [2250, 2500, 2750, 3000], "mean": [0.70, 0.80, 0.83, 0.82],
               "n": [1, 3, 1, 3]}]
    (gain,) = last_gains(curves)
    assert (gain["from_step"], gain["to_step"]) == (2500, 3000) and gain["gain"] == pytest.approx(0.02)


def _label_efficiency():
    """benchmarks/label_efficiency.py as a module (benchmarks/ is not a package)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "label_efficiency.py"
    spec = importlib.util.spec_from_file_location("label_efficiency", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_label_efficiency_record_keeps_its_runs_and_takes_a_sweeps_new_ones(tmp_path, monkeypatch):
    le = _label_efficiency()
    monkeypatch.setattr(le, "RECORDS", tmp_path / "records")
    le.RECORDS.mkdir()
    scratch = "point_patch_transformer (from scratch)"
    kept = {"encoder": scratch, "backbone": "point_patch_transformer", "pretraining": "scratch", "train_fraction": 0.05,
            "train_scenes": 5, "seed": 0, "mIoU": 0.5, "OA": 0.9, "steps": 10, "torch_threads": [1, 2], "train_seconds": 120.0}
    stale = {**kept, "seed": 1, "mIoU": 0.1, "torch_threads": 1}
    (le.RECORDS / "segmentation-rooms.json").write_text(json.dumps({"commits": ["aaaaaaa"], "runs": [kept, stale]}))
    sweep = tmp_path / "out" / "segmentation-rooms"
    _summary(sweep / "run-1", scratch, 0.05, 1, 0.54)  # the same start, fraction and seed as ``stale``: replaces it
    _summary(sweep / "run-2", "/w/pre/pointmae/seed0/encoder.safetensors", 0.05, 0, 0.56, pretraining="pointmae")
    (sweep / "commit.txt").write_text("bbbbbbb\n")
    data = le.recorded_runs("segmentation-rooms", tmp_path / "out")
    assert data["commits"] == ["aaaaaaa", "bbbbbbb"]
    by = {(r["encoder"], r["seed"]): r for r in data["runs"]}
    assert set(by) == {(scratch, 0), (scratch, 1), ("pointmae/seed0/encoder.safetensors", 0)}
    assert by[(scratch, 0)]["mIoU"] == 0.5 and by[(scratch, 1)]["mIoU"] == 0.54 and "run_dir" not in by[(scratch, 1)]
    assert by[("pointmae/seed0/encoder.safetensors", 0)]["pretrained_start"] is None  # no config.yaml beside that file
    result = compare(data["runs"])
    assert result["compute"]["threads"] == [1, 2] and result["compute"]["train_minutes_total"] == pytest.approx(4.0)
    (p,) = result["metrics"]["mIoU"]["paired"]
    assert p["seeds"] == [0] and p["mean"] == pytest.approx(0.06)
    assert le.recorded_runs("segmentation-scannet", tmp_path / "out") == {"commits": [], "runs": []}


def test_the_label_efficiency_record_names_the_cpu_of_each_run(tmp_path, monkeypatch):
    le = _label_efficiency()
    monkeypatch.setattr(le, "RECORDS", tmp_path / "records")
    monkeypatch.setattr(le, "cpu_name", lambda: "Test CPU 9000")  # the machine writing the report, which ran the sweep
    le.RECORDS.mkdir()
    scratch = "spunet (from scratch)"
    old = {"encoder": scratch, "backbone": "spunet", "pretraining": "scratch", "train_fraction": 1.0, "seed": 0, "mIoU": 0.5}
    (le.RECORDS / "segmentation-rooms.json").write_text(json.dumps({"commits": [], "runs": [old, {**old, "seed": 1, "cpu": "Old CPU"}]}))
    sweep = tmp_path / "out" / "segmentation-rooms"
    _summary(sweep / "run-1", scratch, 1.0, 2, 0.54)
    runs = le.recorded_runs("segmentation-rooms", tmp_path / "out")["runs"]
    assert [r.get("cpu") for r in runs] == [None, "Old CPU", "Test CPU 9000"]
    assert le.cpus(runs) == "CPUs (2 cores each): Old CPU: 1 run; Test CPU 9000: 1 run; not recorded: 1 run."
