"""Shared test fixtures: real data from $GEOSSL_DATA (../shared/data here) and a private cache."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if not os.environ.get("GEOSSL_DATA") and (REPO.parent / "shared" / "data").is_dir():
    os.environ["GEOSSL_DATA"] = str(REPO.parent / "shared" / "data")


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Processed dataset copies go to a per-session folder, not the user's cache."""
    old = os.environ.get("GEOSSL_CACHE")
    os.environ["GEOSSL_CACHE"] = str(tmp_path_factory.mktemp("geossl-cache"))
    yield
    if old is None:
        os.environ.pop("GEOSSL_CACHE", None)
    else:
        os.environ["GEOSSL_CACHE"] = old


def _planetoid_present(name: str) -> bool:
    root = os.environ.get("GEOSSL_DATA")
    return bool(root) and (Path(root) / "planetoid" / name / "raw").is_dir()


requires_cora = pytest.mark.skipif(not _planetoid_present("Cora"), reason="Cora not found under $GEOSSL_DATA (set it to ../shared/data)")
requires_citeseer = pytest.mark.skipif(not _planetoid_present("CiteSeer"), reason="CiteSeer not found under $GEOSSL_DATA")


@pytest.fixture(scope="session")
def cora():
    if not _planetoid_present("Cora"):
        pytest.skip("Cora not found under $GEOSSL_DATA")
    from geossl.graph.datasets import load_dataset

    return load_dataset("cora")


def _scene_present(folder: str) -> bool:
    root = os.environ.get("GEOSSL_DATA")
    return bool(root) and (Path(root) / "3d" / folder).is_dir()


requires_sevenscenes = pytest.mark.skipif(not _scene_present("7scenes_tsdf_fusion_every5th"), reason="7-Scenes frames not under $GEOSSL_DATA/3d")
requires_redwood = pytest.mark.skipif(not _scene_present("redwood_livingroom1_open3d"), reason="Redwood sample not under $GEOSSL_DATA/3d")
requires_scannet = pytest.mark.skipif(not _scene_present("scannet_scene0000_mmdet3d"), reason="ScanNet samples not under $GEOSSL_DATA/3d")


def run_killed_after_epoch(monkeypatch, epoch: int, run) -> object:
    """``run()`` with the engine killed (KeyboardInterrupt) right after it writes the checkpoint of ``epoch``, as a run
    stopped there would be; the engine is whole again afterwards. Returns what ``run()`` returned."""
    from geossl.engine.engine import Engine

    save = Engine._save

    def killed(self, method, opt, sched, done, losses):
        save(self, method, opt, sched, done, losses)
        if done == epoch:
            raise KeyboardInterrupt

    monkeypatch.setattr(Engine, "_save", killed)
    try:
        return run()
    finally:
        monkeypatch.setattr(Engine, "_save", save)
