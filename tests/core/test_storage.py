"""Writes that meet a full disk, a read-only folder or a path through a file: one message naming the file and the
folder, nothing half-written left in place, and no empty run folder behind (issue 45)."""

import contextlib
import errno
import os
import subprocess
import sys

import pytest
import torch

from geossl.errors import StorageError
from geossl.io import atomic_write, write_json
from tests.conftest import requires_cora


@pytest.fixture
def full_disk(tmp_path):
    """A 1 MB tmpfs filled to the last byte; skipped where mounting one is not allowed."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root or mount rights, which this user does not have here (the ENOSPC test below covers the same code)")
    try:
        fd = os.open(mnt / "filler", os.O_WRONLY | os.O_CREAT)
        with contextlib.suppress(OSError):  # write until the disk is full (ENOSPC)
            while os.write(fd, b"\0" * 4096):
                continue
        os.close(fd)
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def test_writers_on_a_full_disk_raise_one_message_naming_the_file(full_disk):
    from safetensors.torch import save_file

    from geossl.engine.checkpoint import save_checkpoint

    writers = {"checkpoint.pt": lambda p: save_checkpoint(p, {"model": {"w": torch.zeros(50_000)}}),
               "encoder.safetensors": lambda p: atomic_write(p, lambda tmp: save_file({"w": torch.zeros(50_000)}, tmp)),
               "summary.json": lambda p: write_json(p, {"x": "y" * 200_000})}
    for name, write in writers.items():
        with pytest.raises(StorageError, match=f"Could not write {full_disk / name}: the disk holding {full_disk} is full"):
            write(full_disk / name)
        assert not (full_disk / name).exists() and not list(full_disk.glob(f".{name}.*"))  # no half file, no temporary


def test_a_write_that_raises_enospc_is_reported_as_a_full_disk(tmp_path):
    def no_space(tmp):
        raise OSError(errno.ENOSPC, "No space left on device", tmp)

    with pytest.raises(StorageError, match="is full"):
        atomic_write(tmp_path / "summary.json", no_space)
    assert not list(tmp_path.iterdir())


@requires_cora
def test_a_cache_that_cannot_be_written_leaves_no_run_folder_and_no_traceback(tmp_path):
    (tmp_path / "afile").write_text("")
    res = subprocess.run([sys.executable, "-m", "geossl", "pretrain", "graph=graphmae", "dataset=cora", "trainer.epochs=1",
                          f"out_dir={tmp_path / 'runs'}"], capture_output=True, text=True, cwd=tmp_path, timeout=300,
                         env={**os.environ, "GEOSSL_CACHE": str(tmp_path / "afile" / "cache")})
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert "Could not write or read" in res.stderr and "afile" in res.stderr
    assert not list((tmp_path / "runs").rglob("2*"))  # the timestamped run folder went again
