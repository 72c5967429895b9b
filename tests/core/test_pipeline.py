"""The shared run pipeline's run folders: claimed atomically, never shared by two runs."""

import threading
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from geossl.errors import ConfigError
from geossl.pipeline import new_run_dir, run_dir_for


def test_runs_started_in_the_same_second_get_folders_of_their_own(tmp_path):
    got, lock = [], threading.Lock()

    def claim():
        path = new_run_dir(tmp_path / "graphmae-cora")
        with lock:
            got.append(path)

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(got)) == 8 and all(p.is_dir() for p in got)


def test_a_run_dir_that_holds_a_run_is_refused_unless_resumed(tmp_path):
    held = tmp_path / "old"
    held.mkdir()
    (held / "config.yaml").write_text("seed: 0\n")
    cfg = OmegaConf.create({"run_dir": str(held), "out_dir": str(tmp_path), "trainer": {"resume": None}})
    with pytest.raises(ConfigError, match="already holds a run.*trainer.resume"):
        run_dir_for(cfg, "graphmae-cora")
    cfg.trainer.resume = str(held)
    assert run_dir_for(cfg, "graphmae-cora") == held
    empty = OmegaConf.create({"run_dir": str(tmp_path / "fresh"), "out_dir": str(tmp_path), "trainer": {"resume": None}})
    assert run_dir_for(empty, "x") == Path(tmp_path / "fresh") and (tmp_path / "fresh").is_dir()
