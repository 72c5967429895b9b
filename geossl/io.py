"""Small file helpers shared by checkpoints, encoders and run folders."""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Callable


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_temporaries(path: str | os.PathLike) -> int:
    """Delete ``atomic_write``'s temporary files for ``path`` left by writers that no longer run (a
    process killed mid-write); return how many. Each temporary file names its writer's process id."""
    path = Path(path)
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.(\d+)\..*\.tmp$")
    removed = 0
    if not path.parent.is_dir():
        return 0
    for f in path.parent.iterdir():
        m = pattern.match(f.name)
        if m and int(m.group(1)) != os.getpid() and not _alive(int(m.group(1))):
            try:
                f.unlink()
                removed += 1
            except FileNotFoundError:
                pass
    return removed


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Write a file atomically: ``write(tmp_path)`` fills a temporary file in the same folder,
    which is then renamed over ``path``. A crash mid-write leaves the old file intact, and the next
    write of ``path`` removes the temporary files of writers that died. The file gets the mode the
    umask gives (as ``open`` would), not the private mode of a temporary file.

    Args:
        path: final destination.
        write: callable that writes the complete file to the path it is given.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically write ``obj`` as indented JSON (NaN and infinities become null: strict JSON)."""

    def clean(v):
        if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    def _w(tmp: str) -> None:
        with open(tmp, "w") as fh:
            json.dump(clean(obj), fh, indent=2, sort_keys=True, default=str, allow_nan=False)
            fh.write("\n")

    return atomic_write(path, _w)
