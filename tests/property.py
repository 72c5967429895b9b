"""Shared machinery of the property tests of file readers: a reader given arbitrary bytes, truncations or
mutations of a valid file either reads it or raises geossl's own error, never another exception, a hang
(Hypothesis' deadline) or an allocation beyond a bound (tracemalloc's peak, which counts NumPy and Python
allocations)."""

from __future__ import annotations

import os
import tempfile
import tracemalloc
from pathlib import Path
from typing import Callable

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from geossl.errors import GeosslError

#: Examples per property: a few dozen in CI; HYPOTHESIS_PROFILE=slow runs many more.
settings.register_profile("ci", max_examples=40, deadline=5000, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("slow", max_examples=500, deadline=20000, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

#: Peak allocation allowed while reading a file of n bytes.
def memory_bound(n: int) -> int:
    return 64 * 2**20 + 50 * n


def variants(valid: bytes) -> st.SearchStrategy[bytes]:
    """Arbitrary bytes, truncations of ``valid``, byte flips in it, and line-level mutations of its text (a line
    replaced by noise or a number replaced by an extreme one)."""
    lines = valid.split(b"\n")
    numbers = st.sampled_from([b"0", b"-1", b"-7", b"99999999999", b"1e308", b"nan", b"inf", b"3.5", b"x", b""])
    truncated = st.integers(0, len(valid)).map(lambda k: valid[:k])
    flipped = st.lists(st.tuples(st.integers(0, max(len(valid) - 1, 0)), st.integers(0, 255)), min_size=1, max_size=8).map(
        lambda flips: bytes(_flip(bytearray(valid), flips)))
    line_swapped = st.tuples(st.integers(0, max(len(lines) - 1, 0)), st.binary(max_size=40)).map(
        lambda t: b"\n".join(lines[: t[0]] + [t[1]] + lines[t[0] + 1:]))
    number_swapped = st.tuples(st.integers(0, max(len(lines) - 1, 0)), numbers).map(
        lambda t: b"\n".join(lines[: t[0]] + [_swap_number(lines[t[0]], t[1])] + lines[t[0] + 1:]))
    return st.one_of(st.binary(max_size=600), truncated, flipped, line_swapped, number_swapped)


def _flip(buf: bytearray, flips) -> bytearray:
    for i, v in flips:
        if buf:
            buf[i % len(buf)] = v
    return buf


def _swap_number(line: bytes, number: bytes) -> bytes:
    parts = line.split(b" ")
    for i in range(len(parts) - 1, -1, -1):
        if parts[i][:1].isdigit() or parts[i][:1] == b"-":
            parts[i] = number
            return b" ".join(parts)
    return line + b" " + number


def message_is_clean(message: str) -> bool:
    """A refusal says something, in one paragraph: a non-empty message of at most three lines."""
    return bool(message.strip()) and len(message.strip().splitlines()) <= 3


def read_or_refuse(read: Callable[[Path], object], data: bytes, name: str, check: Callable[[object], None] = lambda r: None):
    """Write ``data`` as ``name`` in a fresh folder and read it: the result passes ``check``, or the reader
    raised a :class:`GeosslError` with a one-paragraph message; the peak allocation stays within the bound."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        tracemalloc.start()
        try:
            result = read(path)
        except GeosslError as e:
            assert message_is_clean(str(e)), repr(str(e))
            result = None
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        assert peak <= memory_bound(len(data)), f"{peak / 2**20:.0f} MB allocated reading {len(data)} bytes"
        if result is not None:
            check(result)


def one_file_mutated(files: dict) -> st.SearchStrategy:
    """``(name, bytes)``: one of ``files`` (name -> valid bytes) and a variant of its content (:func:`variants`)."""
    return st.sampled_from(sorted(files)).flatmap(lambda name: st.tuples(st.just(name), variants(files[name])))


def write_folder(folder, files: dict, change) -> None:
    """Write ``files`` (relative name -> bytes) into ``folder``, the one named by ``change`` with ``change``'s bytes."""
    name, data = change
    for rel, content in files.items():
        target = Path(folder) / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data if rel == name else content)


#: dtypes an ``.npy`` header may declare: the readers' own, and ones they must refuse (complex, bool, strings, objects).
NPY_DTYPES = ["<f8", "<f4", "<i8", "<i4", "|u1", "<u2", "<c16", "|b1", "<U5", "|O", "<f2", ">f8"]


def npy_bytes(descr: str, shape: tuple, payload: bytes, fortran: bool = False) -> bytes:
    """An ``.npy`` file (format 1.0) whose header declares ``descr`` and ``shape`` whatever ``payload`` holds."""
    header = f"{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {tuple(shape)!r}, }}"
    header += " " * (-(len(header) + 11) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode("latin1") + payload


def npy_headers() -> st.SearchStrategy[bytes]:
    """``.npy`` files with arbitrary declared shapes (up to 10^13 rows: far beyond the bytes present) and dtypes, over
    a short payload: a reader must check the declared size against the file before allocating."""
    dims = st.one_of(st.integers(0, 64), st.integers(0, 10**13))
    shapes = st.one_of(st.tuples(dims), st.tuples(dims, st.sampled_from([1, 3, 6, 10**6])), st.tuples(dims, dims, dims))
    payloads = st.one_of(st.binary(max_size=200), st.integers(0, 64).map(lambda n: np.ones((n, 3)).tobytes()))
    return st.builds(npy_bytes, st.sampled_from(NPY_DTYPES), shapes, payloads, st.booleans())


def npz_bytes(members: dict, compressed: bool) -> bytes:
    """A ``.npz`` archive of ``members`` (name -> ``.npy`` bytes)."""
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED) as z:
        for name, data in members.items():
            z.writestr(f"{name}.npy", data)
    return buf.getvalue()


def nested_json() -> st.SearchStrategy[bytes]:
    """JSON nested 1 to 200,000 levels deep (lists or objects, closed or cut short): deeper than Python's decoder recurses."""
    def build(depth: int, kind: str, closed: bool) -> bytes:
        open_, close = (b"[", b"]") if kind == "list" else (b'{"a":', b"}")
        return open_ * depth + b"1" + (close * depth if closed else b"")

    return st.builds(build, st.one_of(st.integers(1, 50), st.integers(500, 200_000)), st.sampled_from(["list", "object"]),
                     st.booleans())


#: float64 values at and beyond float32's range (about ±3.4e38), and the non-finite ones.
FLOAT32_EDGES = [3.4e38, 3.5e38, -3.5e38, 1e39, -1e300, 1e308, float("nan"), float("inf"), -float("inf"), 1e-45, 0.0, 1.0]


def float64_arrays(rows: int, cols: int) -> st.SearchStrategy[np.ndarray]:
    """``[rows, cols]`` float64 arrays of ordinary values with some of :data:`FLOAT32_EDGES` among them."""
    values = st.one_of(st.floats(-10, 10), st.sampled_from(FLOAT32_EDGES))
    return st.lists(values, min_size=rows * cols, max_size=rows * cols).map(lambda v: np.array(v, np.float64).reshape(rows, cols))
