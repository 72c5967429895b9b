"""Where datasets live: the data root (only read) and the cache (where processed copies are written)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Optional

#: Environment variable naming the data root (tests and CI point it at ``../shared/data``).
DATA_ENV = "GEOSSL_DATA"
#: Environment variable naming the cache where processed datasets are written.
CACHE_ENV = "GEOSSL_CACHE"


def data_root(root: Optional[str | os.PathLike] = None) -> Path:
    """The folder datasets are read from: ``root`` if given, else ``$GEOSSL_DATA``, else
    ``~/.cache/geossl/data``."""
    if root not in (None, ""):
        return Path(root).expanduser()
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    return Path.home() / ".cache" / "geossl" / "data"


def cache_root() -> Path:
    """Writable cache folder: ``$GEOSSL_CACHE`` or ``~/.cache/geossl``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "geossl").expanduser()


def cached_dataset_dir(raw_src: Path, relative: str) -> Path:
    """A folder in the cache whose ``raw/`` holds links to the files in ``raw_src``.

    Libraries such as PyG write ``processed/`` next to ``raw/``; geossl never writes into the
    data root (it may be shared or read-only, and root ignores permission bits), so the raw
    files are linked (copied where links fail) into ``<cache>/datasets/<relative>/raw`` once.
    """
    dst = cache_root() / "datasets" / relative
    raw_dst = dst / "raw"
    names = sorted(p.name for p in raw_src.iterdir() if p.is_file())
    if raw_dst.is_dir() and sorted(p.name for p in raw_dst.iterdir()) == names and all(
        (raw_dst / n).resolve() == (raw_src / n).resolve() or (raw_dst / n).stat().st_size == (raw_src / n).stat().st_size
        for n in names
    ):
        return dst
    tmp = dst.parent / f".{dst.name}.linking"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "raw").mkdir(parents=True)
    for name in names:
        try:
            os.symlink((raw_src / name).resolve(), tmp / "raw" / name)
        except OSError:
            shutil.copy2(raw_src / name, tmp / "raw" / name)
    shutil.rmtree(dst, ignore_errors=True)  # stale processed/ files go with it
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, dst)
    return dst
