"""Small file helpers shared by checkpoints, encoders and run folders."""

from __future__ import annotations

import json
import os
import re
import tempfile
import tokenize
from pathlib import Path
from typing import Any, Callable

from geossl.errors import StorageError


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
    except Exception as exc:  # a full disk reaches us as OSError, torch's RuntimeError or safetensors' own error
        problem = storage_problem(exc, path.parent)
        if problem is None:
            raise
        raise StorageError(f"Could not write {path}: {problem}. Nothing was replaced: the previous {path.name}, if any, is "
                           "whole.") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


#: Free bytes below which a failed write is taken to have met a full disk.
FULL_DISK_BYTES = 1 << 20


def storage_problem(exc: BaseException, folder: str | os.PathLike) -> str | None:
    """What about ``folder``'s storage made a write fail (a full disk, a read-only or missing folder), in words, or None
    when the failure was something else. A full disk is recognised by its errno or message, or by the folder's disk
    having (almost) no space left, since some writers (torch's) report it only as a short write."""
    import errno
    import shutil

    code = getattr(exc, "errno", None)
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        free = None
    if code == errno.ENOSPC or "No space left" in str(exc) or (free is not None and free < FULL_DISK_BYTES):
        return (f"the disk holding {folder} is full ({free if free is not None else 'unknown'} bytes free); free some space or "
                "write elsewhere (out_dir=, run_dir=, GEOSSL_CACHE=)")
    if isinstance(exc, OSError) and code in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EISDIR):
        return f"{exc.strerror} ({getattr(exc, 'filename', None) or folder}); choose folders you can write (out_dir=, run_dir=, GEOSSL_CACHE=)"
    return None


def load_refusal(exc: BaseException) -> str:
    """Why ``torch.load(..., weights_only=True)`` refused a file, in one line, without torch's advice to load it with
    ``weights_only=False`` (never given for a file the user did not write)."""
    import re

    text = str(exc).strip()
    if text.startswith("Weights only load failed"):
        blocked = re.search(r"(Unsupported global: GLOBAL [\w.]+|Unsupported operand \d+)", text)
        return f"it holds Python objects torch refuses to unpickle safely{': ' + blocked.group(1) if blocked else ''}"
    return text.splitlines()[0] if text else type(exc).__name__


def memory_bytes() -> int:
    """This machine's physical memory in bytes (0 where the platform does not say)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 0


def check_fits(nbytes: float, what: str) -> None:
    """Refuse, before anything is allocated, settings whose memory (``nbytes``, the caller's lower estimate) exceeds
    this machine's physical memory; ``what`` names the settings (``dataset.num_nodes=...``)."""
    from geossl.errors import ConfigError

    total = memory_bytes()
    if total and nbytes > total:
        raise ConfigError(f"{what} would take at least {nbytes / 2**30:,.0f} GiB of memory, more than this machine's "
                          f"{total / 2**30:,.0f} GiB: lower it.")


def finite_or_none(v: Any) -> Any:
    """``v`` with every NaN or infinite float (in nested dicts, lists and tuples) made None, as strict JSON has it."""
    if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
        return None
    if isinstance(v, dict):
        return {k: finite_or_none(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [finite_or_none(x) for x in v]
    return v


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically write ``obj`` as indented JSON (NaN and infinities become null: strict JSON, :func:`finite_or_none`)."""

    def _w(tmp: str) -> None:
        with open(tmp, "w") as fh:
            json.dump(finite_or_none(obj), fh, indent=2, sort_keys=True, default=str, allow_nan=False)
            fh.write("\n")

    return atomic_write(path, _w)


#: Bytes of each PLY scalar type.
_PLY_SIZES = {"char": 1, "uchar": 1, "int8": 1, "uint8": 1, "short": 2, "ushort": 2, "int16": 2, "uint16": 2, "int": 4,
              "uint": 4, "int32": 4, "uint32": 4, "float": 4, "float32": 4, "double": 8, "float64": 8}


def ply_header_problem(path: str | os.PathLike, max_header: int = 1 << 16) -> str | None:
    """What is wrong with a PLY file's header before a PLY library reads it, or None.

    The element counts a header declares must fit in the bytes that follow it (each binary row takes its
    properties' bytes, each text row at least two bytes per property), so a crafted count cannot make
    the reader allocate more than the file could hold.
    """
    with open(path, "rb") as fh:
        head = fh.read(max_header)
        size = os.fstat(fh.fileno()).st_size
    end = head.find(b"end_header")
    if not head.startswith(b"ply") or end < 0:
        return "it does not start with a PLY header ending in end_header"
    data_start = head.find(b"\n", end)
    remaining = size - (data_start + 1 if data_start >= 0 else size)
    fmt, elements = None, []
    for raw_line in head[:end].decode("ascii", "replace").splitlines():
        words = raw_line.split()
        if not words:
            continue
        if words[0] == "format" and len(words) >= 2:
            fmt = words[1]
        elif words[0] == "element":
            if len(words) != 3 or not words[2].isdigit():
                return f"malformed element line {raw_line.strip()[:60]!r}"
            elements.append([int(words[2]), 0, 0])
        elif words[0] == "property" and elements:
            if len(words) >= 2 and words[1] == "list":
                size_of = _PLY_SIZES.get(words[2] if len(words) > 2 else "", 0)
                if not size_of:
                    return f"malformed list property {raw_line.strip()[:60]!r}"
                elements[-1][1] += size_of
            elif len(words) >= 2 and words[1] in _PLY_SIZES:
                elements[-1][1] += _PLY_SIZES[words[1]]
            else:
                return f"unknown property type in {raw_line.strip()[:60]!r}"
            elements[-1][2] += 1
    if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
        return f"unknown PLY format {fmt!r}"
    need = sum(count * (row if fmt != "ascii" else 2 * max(props, 1)) for count, row, props in elements)
    if need > remaining:
        return f"its header declares {sum(c for c, _, _ in elements)} rows needing at least {need} bytes, and {remaining} follow the header"
    return None


def load_npy(path: str | os.PathLike, error: type):
    """A ``.npy`` array read without pickle, its header's shape checked against the bytes in the file before
    anything is allocated; any problem raises ``error`` (the caller's GeosslError) naming the file."""
    import numpy as np

    path = Path(path)
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            if version not in readers:
                raise ValueError(f"NumPy format version {version} is not read here (1.0 and 2.0 are)")
            shape, fortran, dtype = readers[version](fh, max_header_size=10_000)
            need = int(np.prod(shape, dtype=object)) * dtype.itemsize
            if dtype.hasobject or need > os.fstat(fh.fileno()).st_size - fh.tell():
                raise ValueError(f"its header declares {shape} {dtype} ({need} bytes), more than the file holds"
                                 if not dtype.hasobject else "it holds Python objects")
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, TypeError, SyntaxError, MemoryError, tokenize.TokenError) as e:  # numpy parses headers
        raise error(f"{path} is not a readable NumPy array: {type(e).__name__}: {e}") from None


def check_npz(path: str | os.PathLike, error: type, max_rows: int, max_bytes: int, rows_key: str = "") -> None:
    """Refuse, before any array of it is read, a ``.npz`` whose members declare more than they can hold: each member's
    ``.npy`` header is read from the archive and its shape checked against the member's uncompressed size (as the
    archive records it, which the decompressor enforces) and against the bounds ``max_rows`` (rows of any array) and
    ``max_bytes`` (all members together, uncompressed; ``rows_key`` names the setting that raises the bound). Any problem
    raises ``error`` naming the file."""
    import zipfile

    import numpy as np

    path = Path(path)
    try:
        with zipfile.ZipFile(path) as z:
            total = 0
            for info in z.infolist():
                total += info.file_size
                if total > max_bytes:
                    raise ValueError(f"its arrays take more than {max_bytes} bytes uncompressed"
                                     + (f" (the bound follows {rows_key}={max_rows})" if rows_key else ""))
                with z.open(info) as fh:
                    version = np.lib.format.read_magic(fh)
                    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
                    if version not in readers:
                        raise ValueError(f"{info.filename}: NumPy format version {version} is not read here (1.0 and 2.0 are)")
                    shape, _, dtype = readers[version](fh, max_header_size=10_000)
                    header = fh.tell()
                need = int(np.prod(shape, dtype=object)) * dtype.itemsize
                if dtype.hasobject:
                    raise ValueError(f"{info.filename} holds Python objects")
                if need > info.file_size - header:
                    raise ValueError(f"{info.filename}: its header declares {shape} {dtype} ({need} bytes), more than it holds")
                if shape and shape[0] > max_rows:
                    raise ValueError(f"{info.filename} declares {shape[0]} rows, more than the {max_rows} allowed"
                                     + (f" ({rows_key}={max_rows}; raise it to read such a file)" if rows_key else ""))
    except (ValueError, OSError, EOFError, TypeError, SyntaxError, MemoryError, zipfile.BadZipFile, tokenize.TokenError) as e:
        raise error(f"{path} is not a readable NumPy archive: {type(e).__name__}: {e}") from None


def reset_peak_rss() -> bool:
    """Restart this process's resident high-water mark (what :func:`peak_rss_mb` reads), so that a later reading is
    the peak of what ran since. Linux only (``/proc/self/clear_refs``); returns whether it was restarted."""
    clear = Path("/proc/self/clear_refs")
    if not clear.exists():
        return False
    try:
        clear.write_text("5")
    except OSError:  # a kernel or sandbox that does not allow it: peaks then include earlier phases
        return False
    return True


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB: the kernel's high-water mark of this program (``VmHWM``), which,
    unlike ``getrusage``'s ``ru_maxrss``, does not carry over the peak of the process that started it."""
    import resource

    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # no /proc: may include the parent's peak
