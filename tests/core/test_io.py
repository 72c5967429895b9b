"""Atomic writes: file modes follow the umask, and temporary files of killed writers are cleaned up."""

import json
import os
import subprocess
import sys

import pytest
import torch

import geossl
from geossl.engine.checkpoint import save_checkpoint
from geossl.io import atomic_write, write_json


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_written_files_get_the_mode_the_umask_gives(tmp_path, umask, mode):
    from geossl.graph.encoders import GCN

    old = os.umask(umask)
    try:
        files = [write_json(tmp_path / "summary.json", {"a": 1}), save_checkpoint(tmp_path / "checkpoint.pt", {"w": torch.zeros(2)}),
                 geossl.save_encoder(GCN(3, hidden=4), tmp_path / "encoder.safetensors")]
        with open(tmp_path / "plain.txt", "w") as fh:  # what open() gives, for comparison
            fh.write("x")
    finally:
        os.umask(old)
    assert {f.name: oct(f.stat().st_mode & 0o777) for f in files} == {f.name: oct(mode) for f in files}
    assert (tmp_path / "plain.txt").stat().st_mode & 0o777 == mode


def test_temporary_files_of_killed_writers_are_removed_by_the_next_write(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".checkpoint.pt.{dead.pid}.x1y2.tmp"
    live = tmp_path / f".checkpoint.pt.{os.getppid()}.z3.tmp"  # a writer that is still running
    other = tmp_path / f".summary.json.{dead.pid}.q.tmp"  # another file's
    for f in (stale, live, other):
        f.write_bytes(b"half a checkpoint")
    atomic_write(tmp_path / "checkpoint.pt", lambda p: open(p, "wb").write(b"ok"))
    assert not stale.exists() and live.exists() and other.exists() and (tmp_path / "checkpoint.pt").read_bytes() == b"ok"


def test_summaries_are_strict_json(tmp_path):
    write_json(tmp_path / "s.json", {"nan": float("nan"), "inf": [float("inf")], "x": 1.5})
    text = (tmp_path / "s.json").read_text()
    assert "NaN" not in text and json.loads(text) == {"nan": None, "inf": [None], "x": 1.5}


def test_reset_peak_rss_forgets_an_earlier_peak():
    import torch

    from geossl.io import peak_rss_mb, reset_peak_rss

    block = torch.ones(64 * 2**20 // 4)  # 64 MB touched
    high = peak_rss_mb()
    del block
    if not reset_peak_rss():
        pytest.skip("this kernel does not let a process restart its peak (no /proc/self/clear_refs)")
    assert peak_rss_mb() < high - 32
