"""Where datasets live: the data root and a writable cache for read-only roots."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Optional

#: Environment variable naming the data root (tests and CI point it at ``../shared/data``).
DATA_ENV = "GEOSSL_DATA"
#: Environment variable naming the cache where processed copies of read-only data are kept.
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


def writable_dataset_dir(src: Path, relative: str) -> Path:
    """Return a writable folder holding ``src``'s ``raw/`` files.

    Libraries such as PyG write ``processed/`` next to ``raw/``. When ``src`` is writable it is
    used as is; otherwise its ``raw/`` folder is copied once into the cache under ``relative``.
    """
    if os.access(src, os.W_OK):
        return src
    dst = cache_root() / "datasets" / relative
    raw_src, raw_dst = src / "raw", dst / "raw"
    if raw_src.is_dir():
        names = sorted(p.name for p in raw_src.iterdir())
        if not raw_dst.is_dir() or sorted(p.name for p in raw_dst.iterdir()) != names:
            tmp = dst.parent / f".{dst.name}.copying"
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(raw_src, tmp / "raw")
            shutil.rmtree(dst, ignore_errors=True)
            os.replace(tmp, dst)
    return dst
