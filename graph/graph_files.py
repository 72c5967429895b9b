"""Readers and checks for graph-classification files: the TU raw format and the GIN text format.

TU raw format (Morris et al., "TUDataset", 2020), files ``<NAME>_<part>.txt`` in one folder:
``A`` (one ``i, j`` edge per line, 1-based node ids), ``graph_indicator`` (graph id of node i,
1-based), ``graph_labels`` (one per graph) and optionally ``node_labels``, ``node_attributes``,
``edge_labels``, ``edge_attributes``. PyG's ``TUDataset`` parses it; :func:`check_tu_folder`
refuses inconsistent folders first, with a message naming the file, because PyG would either
crash deep inside its parser or silently build wrong graphs.

GIN text format (Xu et al., "How Powerful are Graph Neural Networks?", ICLR 2019, used for COLLAB
and REDDIT-BINARY): first line the number of graphs; per graph a line ``n label`` and then ``n``
lines ``tag k nbr_1 ... nbr_k [attributes...]`` with 0-based neighbour ids.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path
from typing import List, Optional

import numpy as np
import torch

from geossl.errors import GeosslError

#: Files every TU dataset needs, and what they hold.
TU_REQUIRED = {
    "A": "the edge list (one 'i, j' pair per line)",
    "graph_indicator": "the graph id of every node",
    "graph_labels": "one class label per graph (graph classification needs them)",
}
#: Optional per-node and per-edge files: their line count must match the nodes or the edges.
TU_PER_NODE = ("node_labels", "node_attributes")
TU_PER_EDGE = ("edge_labels", "edge_attributes")


class GraphFileError(GeosslError, ValueError):
    """A graph dataset file is missing, unreadable or inconsistent with the others."""


def _rows(path: Path) -> List[str]:
    """The lines of a TU text file; blank lines may only end it (PyG's reader takes every line)."""
    try:
        lines = path.read_bytes().decode("utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise GraphFileError(f"{path} is not a text file ({err.reason} at byte {err.start}).") from None
    while lines and not lines[-1].strip():
        lines.pop()
    blank = next((i for i, line in enumerate(lines) if not line.strip()), None)
    if blank is not None:
        raise GraphFileError(f"{path}, line {blank + 1} is blank: a TU file has one entry on every line.")
    return lines


def _ints(path: Path, lines: List[str], columns: int) -> np.ndarray:
    """The integers of ``lines``, exactly ``columns`` per line (comma- or space-separated)."""
    split = [line.replace(",", " ").split() for line in lines]
    bad = next((i for i, parts in enumerate(split) if len(parts) != columns), None)
    if bad is not None:
        raise GraphFileError(f"{path}, line {bad + 1}: expected {columns} integer(s) on each line.")
    try:
        values = np.array([v for parts in split for v in parts], dtype=np.int64)
    except (ValueError, OverflowError) as err:
        raise GraphFileError(f"{path}: expected integers, {err}.") from None
    return values.reshape(len(lines), columns)


def _check_attributes(path: Path) -> None:
    """Node attributes must be rows of one number of comma-separated finite floats."""
    width = None
    for i, line in enumerate(_rows(path), start=1):
        try:
            values = [float(v) for v in line.split(",")]
        except ValueError:
            raise GraphFileError(f"{path}, line {i}: expected comma-separated numbers, got {line[:60]!r}.") from None
        if width is None:
            width = len(values)
        if len(values) != width:
            raise GraphFileError(f"{path}, line {i}: {len(values)} attributes where line 1 has {width}.")
        if not all(np.isfinite(values)):
            raise GraphFileError(f"{path}, line {i}: a node attribute is NaN or infinite; fix or remove it (the data, not "
                                 "the learning rate, is at fault).")


def check_tu_folder(folder: Path, name: str) -> np.ndarray:
    """Refuse a TU raw folder whose files are missing or disagree with each other.

    Checks: the required files exist; every file parses; ``graph_indicator`` has one id per node,
    graph ids run 1..G without gaps and nodes of a graph are contiguous; ``graph_labels`` has G
    lines; per-node files have one line per node; edges in ``A`` name existing nodes of one graph;
    per-edge files have one line per edge.

    Args:
        folder: the folder holding ``<name>_*.txt``.
        name: the dataset name used in the file names.

    Returns:
        the number of nodes of each graph (``[G]``, from ``graph_indicator``: the count of graphs, also of those
        without edges).

    Raises:
        GraphFileError: naming the file and the problem.
    """
    path = lambda part: folder / f"{name}_{part}.txt"  # noqa: E731
    for part, what in TU_REQUIRED.items():
        if not path(part).is_file():
            raise GraphFileError(f"{path(part)} is missing: a TU dataset needs {path(part).name}, {what}.")
    ind_lines = _rows(path("graph_indicator"))
    indicator = _ints(path("graph_indicator"), ind_lines, 1)[:, 0]
    n = len(indicator)
    if n == 0:
        raise GraphFileError(f"{path('graph_indicator')} is empty: the dataset has no nodes.")
    graphs = int(indicator.max())
    if indicator.min() < 1 or len(np.unique(indicator)) != graphs:
        raise GraphFileError(f"{path('graph_indicator')}: graph ids must run from 1 to {graphs} without gaps.")
    if np.any(np.diff(indicator) < 0):
        raise GraphFileError(f"{path('graph_indicator')}: the nodes of each graph must be listed together, in graph order.")
    labels = _rows(path("graph_labels"))
    _ints(path("graph_labels"), labels, 1)
    if path("node_labels").is_file():
        node_labels = _rows(path("node_labels"))
        _ints(path("node_labels"), node_labels, len(node_labels[0].replace(",", " ").split()) if node_labels else 1)
    if len(labels) != graphs:
        raise GraphFileError(
            f"{path('graph_labels')} has {len(labels)} labels but {path('graph_indicator').name} names {graphs} graphs."
        )
    if path("node_attributes").is_file():
        _check_attributes(path("node_attributes"))
    for part in TU_PER_NODE:
        if path(part).is_file() and len(_rows(path(part))) != n:
            raise GraphFileError(
                f"{path(part)} has {len(_rows(path(part)))} lines but {path('graph_indicator').name} has {n} "
                f"(one per node): graph indicator length and node count disagree."
            )
    a_lines = _rows(path("A"))
    if not a_lines:
        raise GraphFileError(f"{path('A')} lists no edges.")
    edges = _ints(path("A"), a_lines, 2)
    if edges.size and (edges.min() < 1 or edges.max() > n):
        raise GraphFileError(f"{path('A')}: node ids must lie in 1..{n} (the number of lines in {path('graph_indicator').name}).")
    if edges.size and np.any(indicator[edges[:, 0] - 1] != indicator[edges[:, 1] - 1]):
        bad = int(np.argmax(indicator[edges[:, 0] - 1] != indicator[edges[:, 1] - 1]))
        raise GraphFileError(f"{path('A')}: line {bad + 1} joins nodes of two different graphs.")
    for part in TU_PER_EDGE:
        if path(part).is_file() and len(_rows(path(part))) != len(a_lines):
            raise GraphFileError(f"{path(part)} has {len(_rows(path(part)))} lines but {path('A').name} has {len(a_lines)} edges.")
    return np.bincount(indicator)[1:]


def read_gin_text(text: str, source: str) -> List[dict]:
    """Parse the GIN text format into per-graph dicts ``{edge_index, tags, label, attributes}``.

    Args:
        text: the file's content.
        source: the file's name, for error messages.

    Returns:
        One dict per graph: ``edge_index`` (2 x E, 0-based, both directions as listed),
        ``tags`` (node tags), ``label`` (the raw label), ``attributes`` (n x d float or None).
    """
    lines = text.splitlines()
    pos = 0

    def fail(msg: str):
        raise GraphFileError(f"{source}, line {pos + 1}: {msg} (GIN text format: a graph count, then per graph "
                             "'n label' and n lines 'tag k neighbour_1 ... neighbour_k').")

    try:
        count = int(lines[0])
    except (IndexError, ValueError):
        fail("the first line must be the number of graphs")
    if count < 1 or count > len(lines):
        fail(f"the file cannot hold {count} graphs")
    pos, graphs = 1, []
    for _ in range(count):
        if pos >= len(lines):
            fail(f"the file ends after {len(graphs)} of {count} graphs")
        head = lines[pos].split()
        if len(head) != 2 or not all(_is_int(h) for h in head) or int(head[0]) < 1:
            fail("expected 'n label' (n >= 1 nodes, an integer label)")
        n, label = int(head[0]), int(head[1])
        if pos + 1 + n > len(lines):
            fail(f"graph {len(graphs)} has {n} nodes but the file ends first")
        tags, src, dst, attrs = np.empty(n, np.int64), [], [], []
        for i in range(n):
            pos += 1
            try:
                row = np.array(lines[pos].split(), dtype=np.float64)
            except ValueError:
                fail("a node line must hold numbers")
            if row.size < 2 or not np.isfinite(row).all() or np.abs(row).max() > 2**52 or row[1] < 0 or row.size < 2 + int(row[1]) \
                    or np.any(row[:2 + int(row[1])] != np.round(row[:2 + int(row[1])])):
                fail("a node line needs its integer tag, its neighbour count k and k integer neighbours (then finite attributes)")
            k = int(row[1])
            tags[i] = int(row[0])
            nbrs = row[2:2 + k].astype(np.int64)
            if nbrs.size and (nbrs.min() < 0 or nbrs.max() >= n):
                fail(f"neighbour ids must lie in 0..{n - 1}")
            src.append(np.full(k, i, np.int64))
            dst.append(nbrs)
            if row.size > 2 + k:
                attrs.append(row[2 + k:])
        pos += 1
        edge_index = torch.from_numpy(np.stack([np.concatenate(src or [np.empty(0, np.int64)]),
                                                np.concatenate(dst or [np.empty(0, np.int64)])]))
        attributes = torch.tensor(np.stack(attrs), dtype=torch.float32) if len(attrs) == n and n else None
        graphs.append({"edge_index": edge_index, "tags": torch.from_numpy(tags), "label": label, "attributes": attributes})
    return graphs


#: The most bytes a GIN text file may expand to from its zip (COLLAB's is 84 MB).
MAX_GIN_TEXT = 1 << 30


def read_gin_file(path: Path, name: str) -> List[dict]:
    """Read ``<name>.txt`` in the GIN text format from ``path``: a ``.zip`` holding
    ``<name>/<name>.txt`` (as the GIN authors ship it) or the ``.txt`` itself."""
    try:
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as zf:
                members = [m for m in zf.infolist() if m.filename.endswith(f"{name}.txt") and "__MACOSX" not in m.filename]
                if not members:
                    raise GraphFileError(f"{path} holds no {name}.txt (GIN text format); it has: "
                                         f"{', '.join(zf.namelist()[:5]) or 'nothing'}.")
                if members[0].compress_size > path.stat().st_size:
                    raise GraphFileError(f"{path}: {members[0].filename} claims {members[0].compress_size} compressed bytes, more than "
                                         "the archive holds.")
                if members[0].file_size > MAX_GIN_TEXT:
                    raise GraphFileError(f"{path}: {members[0].filename} would expand to {members[0].file_size} bytes, more than "
                                         f"{MAX_GIN_TEXT}.")
                with zf.open(members[0]) as fh:
                    raw = fh.read(MAX_GIN_TEXT + 1)
            return read_gin_text(raw.decode("utf-8"), f"{path}:{members[0].filename}")
        return read_gin_text(path.read_bytes().decode("utf-8"), str(path))
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError) as err:
        raise GraphFileError(f"{path} is not a readable zip archive: {type(err).__name__}: {err}") from None
    except UnicodeDecodeError as err:
        raise GraphFileError(f"{path}: the GIN text is not UTF-8 ({err.reason} at byte {err.start}).") from None


def _is_int(text: str) -> bool:
    try:
        int(text)
        return True
    except ValueError:
        return False


def find_file(candidates: List[Path]) -> Optional[Path]:
    """The first existing file among ``candidates``."""
    return next((c for c in candidates if c.is_file()), None)
