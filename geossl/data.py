"""Where datasets live: the data root (only read) and the cache (where processed copies are written)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Optional

from geossl.errors import ConfigError

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


def content_key(files, source: Path) -> str:
    """16 hex digits of a SHA-256 over the files' names and bytes and the folder they come from: a cache
    keyed on it is never stale (an edited label file, another folder with the same dataset name)."""
    h = hashlib.sha256(str(Path(source).resolve()).encode())
    for f in sorted(files, key=lambda p: Path(p).name):
        h.update(Path(f).name.encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def _inside_cache(path: Path) -> Path:
    root = (cache_root() / "datasets").resolve()
    resolved = path.resolve()
    if resolved != root and root not in resolved.parents:
        raise ConfigError(f"{path} is outside the dataset cache {root}; dataset names may not hold path separators or '..'.")
    return path


def check_dataset_name(name: str, what: str = "dataset.name") -> str:
    """A dataset name that is safe as a file-name prefix and a cache folder name: letters, digits and
    ``_ . + -``, not starting with a dot."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(f"{what}={name!r} is not a dataset name: use letters, digits and _ . + - (no path separators, "
                          "no leading dot).")
    return name


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}")


@contextlib.contextmanager
def cache_lock(folder: Path):
    """Hold an exclusive lock on ``folder`` (a lock file beside it) while a library processes a dataset there, so
    that concurrent processes (the ranks of a ``torchrun`` job, two runs started together) never read a processed
    file another is still writing: the first processes it, the others then load the finished file."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def cached_dataset_dir(raw_src: Path, collection: str, name: str) -> Path:
    """A folder ``<cache>/datasets/<collection>/<key>/<name>`` whose ``raw/`` holds links to the files in ``raw_src``.

    Libraries such as PyG write ``processed/`` next to ``raw/``; geossl never writes into the
    data root (it may be shared or read-only, and root ignores permission bits), so the raw
    files are linked (copied where links fail) into the cache once. ``key`` hashes the files' contents
    and the source folder (:func:`content_key`), so an edited file or another folder with the same
    dataset name gets a cache of its own and nothing stale is served. Nothing outside the cache is
    touched; the folder is built under a temporary name and renamed into place.
    """
    check_dataset_name(name)
    files = sorted(p for p in raw_src.iterdir() if p.is_file())
    keyed = _inside_cache(cache_root() / "datasets" / collection / content_key(files, raw_src))
    dst = keyed / name
    if (dst / "raw").is_dir():
        return dst
    keyed.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{keyed.name}.", dir=keyed.parent))
    (tmp / name / "raw").mkdir(parents=True)
    for f in files:
        try:
            os.symlink(f.resolve(), tmp / name / "raw" / f.name)
        except OSError:
            shutil.copy2(f, tmp / name / "raw" / f.name)
    try:
        os.replace(tmp, keyed)
    except OSError:  # another process made it first: use theirs
        shutil.rmtree(tmp, ignore_errors=True)
    return dst
