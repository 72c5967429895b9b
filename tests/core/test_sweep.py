"""Sweep planning: Hydra's expansion, run folders that do not depend on order, the sweep's own settings."""

import pytest

from geossl.errors import ConfigError
from geossl.sweep import expand, plan, run_folder, split_settings


def test_every_combination_in_hydras_order_and_folders_named_by_the_overrides(tmp_path):
    runs = expand(["a=1,2", "seed=range(0,3)", "b=[0,6]"])
    assert len(runs) == 6 and runs[0] == ["a=1", "seed=0", "b=[0,6]"] and runs[-1] == ["a=2", "seed=2", "b=[0,6]"]
    assert run_folder(tmp_path, ["x=1", "y=2"]) == run_folder(tmp_path, ["y=2", "x=1"]) != run_folder(tmp_path, ["x=1", "y=3"])
    # threads do not name a run: the same run resumed at other threads keeps its folder
    assert run_folder(tmp_path, ["x=1", "trainer.threads=1"]) == run_folder(tmp_path, ["x=1"]) == run_folder(tmp_path, ["x=1", "+trainer.threads=2"])


def test_the_sweeps_own_settings_are_taken_out_and_checked(tmp_path):
    settings, rest = split_settings(["seed=0,1", f"hydra.sweep.dir={tmp_path}", "hydra.launcher.n_jobs=3"])
    assert rest == ["seed=0,1"] and settings == {"hydra.sweep.dir": str(tmp_path), "hydra.launcher.n_jobs": "3"}
    with pytest.raises(ConfigError, match="Unknown sweep setting 'hydra.launcher.jobs'"):
        split_settings(["hydra.launcher.jobs=2"])
    with pytest.raises(ConfigError, match="n_jobs must be a number of runs at once"):
        plan("pretrain", ["graph=graphmae", "dataset=mutag", "hydra.launcher.n_jobs=0"])
    with pytest.raises(ConfigError, match="run_dir= and trainer.resume= are not sweep keys"):
        plan("pretrain", ["graph=graphmae", "dataset=mutag", "run_dir=x"])


def test_a_pretraining_sweep_plans_a_folder_per_seed(tmp_path):
    sweep_dir, jobs, runs = plan("pretrain", ["graph=graphmae", "dataset=mutag", "seed=0,1", f"hydra.sweep.dir={tmp_path}"])
    assert sweep_dir == tmp_path and jobs == 1 and [r.overrides[-1] for r in runs] == ["seed=0", "seed=1"]
    assert len({r.folder for r in runs}) == 2 and not any(r.done for r in runs)
    with pytest.raises(ConfigError, match="Unknown dataset 'mutagg'"):
        plan("pretrain", ["graph=graphmae", "dataset=mutag,mutagg"])


def test_one_sweep_at_a_time_in_a_folder(tmp_path):
    import os
    import subprocess
    import sys

    from geossl.sweep import sweep_lock

    with sweep_lock(tmp_path):
        assert (tmp_path / "sweep.lock").read_text() == str(os.getpid())
        with pytest.raises(ConfigError, match=f"Another sweep \\(process {os.getpid()}\\) is running in"):
            with sweep_lock(tmp_path):
                raise AssertionError("a second sweep was let into the folder")
    assert not (tmp_path / "sweep.lock").exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    (tmp_path / "sweep.lock").write_text(dead)  # left by a sweep that died: taken over
    with sweep_lock(tmp_path):
        assert (tmp_path / "sweep.lock").read_text() == str(os.getpid())
