"""Property tests of the graph-file readers (TU folders, the GIN text format, saved lists of PyG Data):
read correctly or refused with geossl's error."""

import io
import tempfile
import zipfile
from pathlib import Path

import torch
from hypothesis import given

from geossl.graph.datasets import graph_list, load_dataset, load_gin_format
from tests.property import one_file_mutated, read_or_refuse, variants, write_folder

TU = {f"TINY_{part}.txt": text for part, text in {
    "A": b"1, 2\n2, 1\n2, 3\n3, 2\n1, 3\n3, 1\n4, 5\n5, 4\n", "graph_indicator": b"1\n1\n1\n2\n2\n", "graph_labels": b"0\n1\n",
    "node_labels": b"0\n1\n0\n1\n1\n", "node_attributes": b"0.5, 1\n1, 2\n0, 0\n3, 1\n2, 2\n"}.items()}


def _graphs_ok(ds):
    assert len(ds.data) >= 1 and ds.num_classes >= 1
    for g in ds.data:
        assert g.x.ndim == 2 and g.x.shape[1] == ds.num_features and torch.isfinite(g.x).all()
        assert g.edge_index.numel() == 0 or int(g.edge_index.max()) < g.x.shape[0]


@given(one_file_mutated(TU))
def test_tu_folders(change):
    with tempfile.TemporaryDirectory() as d:
        write_folder(d, TU, change)
        read_or_refuse(lambda _: load_dataset("tu", name="TINY", root=d), b"", "unused", _graphs_ok)


GIN = b"2\n3 0\n0 2 1 2\n1 2 0 2\n0 2 0 1\n2 1\n1 1 1\n1 1 0\n"


def _gin_ok(ds):
    _graphs_ok(ds)


def _zip(text: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("TINY/TINY.txt", text)
    return buf.getvalue()


@given(variants(GIN))
def test_gin_text(data):
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "tudataset_gin_format").mkdir()
        (Path(d) / "tudataset_gin_format" / "TINY.zip").write_bytes(_zip(data))
        read_or_refuse(lambda _: load_gin_format("TINY", d), b"", "unused", _gin_ok)


@given(variants(_zip(GIN)))
def test_gin_zip(data):
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "tudataset_gin_format").mkdir()
        (Path(d) / "tudataset_gin_format" / "TINY.zip").write_bytes(data)
        read_or_refuse(lambda _: load_gin_format("TINY", d), b"", "unused", _gin_ok)


def _graph_list_bytes() -> bytes:
    from torch_geometric.data import Data

    graphs = [Data(x=torch.rand(3, 2), edge_index=torch.tensor([[0, 1], [1, 2]]), y=torch.tensor([i % 2])) for i in range(4)]
    buf = io.BytesIO()
    torch.save(graphs, buf)
    return buf.getvalue()


@given(variants(_graph_list_bytes()))
def test_saved_graph_lists(data):
    read_or_refuse(lambda p: graph_list(str(p)), data, "graphs.pt", _graphs_ok)
