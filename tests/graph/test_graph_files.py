"""Graph-classification files: TU folders are checked before PyG reads them, the GIN text
format parses to the graphs it describes, and saved lists of PyG Data load safely."""

import os
import shutil
from pathlib import Path

import pytest
import torch
from torch_geometric.data import Data

from geossl.errors import DatasetNotFoundError
from geossl.graph.datasets import load_dataset, prepare_graphs
from geossl.graph.graph_files import GraphFileError, read_gin_text

MUTAG = Path(os.environ.get("GEOSSL_DATA", "/nonexistent")) / "tudataset" / "MUTAG" / "raw"
requires_mutag = pytest.mark.skipif(not MUTAG.is_dir(), reason="MUTAG not found under $GEOSSL_DATA")


def _tiny_tu(folder: Path, name: str = "TINY", **override):
    """Two graphs: a triangle (nodes 1-3, label 0) and an edge (nodes 4-5, label 1)."""
    files = {
        "A": "1, 2\n2, 1\n2, 3\n3, 2\n1, 3\n3, 1\n4, 5\n5, 4\n",
        "graph_indicator": "1\n1\n1\n2\n2\n",
        "graph_labels": "0\n1\n",
        "node_labels": "0\n1\n0\n1\n1\n",
    }
    files.update(override)
    folder.mkdir(parents=True, exist_ok=True)
    for part, text in files.items():
        if text is not None:
            (folder / f"{name}_{part}.txt").write_text(text)
    return folder


def test_a_custom_tu_folder_loads_from_any_of_the_layouts(tmp_path):
    for where in (tmp_path / "a" / "tudataset" / "TINY" / "raw", tmp_path / "b" / "TINY", tmp_path / "c"):
        _tiny_tu(where)
        root = where.parents[2] if where.name == "raw" else where.parent if where.name == "TINY" else where
        ds = load_dataset("tu", name="TINY", root=str(root))
        assert ds.task == "graph" and len(ds.data) == 2 and ds.num_classes == 2 and ds.num_features == 2
        g = ds.data[0]
        # triangle: 6 directed edges + 3 self-loops; node labels one-hot
        assert g.num_nodes == 3 and g.edge_index.shape[1] == 9 and g.x.tolist() == [[1, 0], [0, 1], [1, 0]]
        assert [int(d.y) for d in ds.data] == [0, 1]
    assert not any(p.name == "processed" for p in tmp_path.rglob("*"))  # nothing written beside the user's files


def test_a_tu_folder_ending_in_graphs_without_edges_keeps_them(tmp_path):
    """Graphs 3 and 4 have one node each and no edges (issue 45: 4 declared graphs loaded as 2); a middle graph without
    edges stays its own graph too."""
    for name, indicator, labels, a in (("END", "1\n1\n1\n2\n2\n3\n4\n", "0\n1\n0\n1\n", None),
                                       ("MID", "1\n1\n1\n2\n3\n3\n", "0\n1\n0\n", "1, 2\n2, 1\n2, 3\n3, 2\n1, 3\n3, 1\n5, 6\n6, 5\n")):
        override = {"graph_indicator": indicator, "graph_labels": labels, "node_labels": "0\n" * indicator.count("\n")}
        if a:
            override["A"] = a
        _tiny_tu(tmp_path / name, name=name, **override)
        ds = load_dataset("tu", name=name, root=str(tmp_path))
        nodes = [int(n) for n in __import__("numpy").bincount([int(i) for i in indicator.split()])[1:]]
        assert [g.num_nodes for g in ds.data] == nodes and [int(g.y) for g in ds.data] == [int(v) for v in labels.split()]
    assert [g.edge_index.shape[1] for g in load_dataset("tu", name="END", root=str(tmp_path)).data] == [9, 4, 1, 1]  # + self-loops


@pytest.mark.parametrize("override, needle", [
    ({"graph_labels": None}, "TINY_graph_labels.txt is missing"),
    ({"graph_indicator": None}, "TINY_graph_indicator.txt is missing"),
    ({"node_labels": "0\n1\n0\n1\n"}, "TINY_node_labels.txt has 4 lines but TINY_graph_indicator.txt has 5"),
    ({"graph_indicator": "1\n1\n1\n2\n2\n2\n"}, "TINY_node_labels.txt has 5 lines but TINY_graph_indicator.txt has 6"),
    ({"graph_labels": "0\n"}, "TINY_graph_labels.txt has 1 labels but TINY_graph_indicator.txt names 2 graphs"),
    ({"A": "1, 2\n2, 9\n"}, "TINY_A.txt: node ids must lie in 1..5"),
    ({"A": "1, 4\n"}, "TINY_A.txt: line 1 joins nodes of two different graphs"),
    ({"A": "1; 2\n"}, "TINY_A.txt: expected integers"),
    ({"graph_indicator": "1\n1\n1\n3\n3\n"}, "graph ids must run from 1 to 3 without gaps"),
])
def test_inconsistent_tu_folders_are_refused_naming_the_file(tmp_path, override, needle):
    _tiny_tu(tmp_path / "tudataset" / "TINY" / "raw", **override)
    with pytest.raises(GraphFileError, match=needle.replace(".", r"\.")):
        load_dataset("tu", name="TINY", root=str(tmp_path))


def test_missing_tu_folder_lists_where_it_looked(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="ENZYMES_A.txt.*tudataset/ENZYMES/raw.*dataset.download=true"):
        load_dataset("tu", name="ENZYMES", root=str(tmp_path))


def test_gin_text_format_parses_to_the_graphs_it_lists():
    text = "2\n3 1\n0 2 1 2\n0 1 0\n0 1 0\n2 5\n0 1 1\n1 1 0\n"
    g1, g2 = read_gin_text(text, "toy.txt")
    assert g1["label"] == 1 and g1["edge_index"].tolist() == [[0, 0, 1, 2], [1, 2, 0, 0]] and g1["tags"].tolist() == [0, 0, 0]
    assert g2["label"] == 5 and g2["tags"].tolist() == [0, 1] and g2["attributes"] is None
    with pytest.raises(GraphFileError, match="toy.txt, line 4: neighbour ids must lie in 0..2"):
        read_gin_text("1\n3 0\n0 1 1\n0 1 7\n0 0\n", "toy.txt")
    with pytest.raises(GraphFileError, match="ends after 1 of 2 graphs"):
        read_gin_text("2\n1 0\n0 0\n", "toy.txt")


def test_degree_features_when_graphs_have_no_node_features():
    star = Data(edge_index=torch.tensor([[0, 0, 0, 1, 2, 3], [1, 2, 3, 0, 0, 0]]), y=torch.tensor([7]), num_nodes=4)
    pair = Data(edge_index=torch.tensor([[0, 1], [1, 0]]), y=torch.tensor([3]), num_nodes=2)
    ds = prepare_graphs([star, pair], "toy", "memory")
    assert ds.num_features == 4 and ds.num_classes == 2  # degrees 0..3; labels 3, 7 -> 0, 1
    assert ds.data[0].x.argmax(1).tolist() == [3, 1, 1, 1] and ds.data[1].x.argmax(1).tolist() == [1, 1]
    assert [int(d.y) for d in ds.data] == [1, 0]


def test_a_saved_list_of_pyg_data_loads_and_anything_else_is_refused(tmp_path):
    graphs = [Data(x=torch.eye(3), edge_index=torch.tensor([[0, 1], [1, 2]]), y=torch.tensor([i % 2])) for i in range(4)]
    torch.save(graphs, tmp_path / "mine.pt")
    ds = load_dataset("graph_list", path=str(tmp_path / "mine.pt"))
    assert ds.name == "mine" and len(ds.data) == 4 and ds.num_features == 3 and ds.num_classes == 2

    # an arbitrary pickled object is never unpickled (weights_only=True)
    torch.save([Path("/etc/passwd")], tmp_path / "evil.pt")
    with pytest.raises(GraphFileError, match="could not be read as a saved list of PyG Data") as refused:
        load_dataset("graph_list", path=str(tmp_path / "evil.pt"))
    assert "weights_only" not in str(refused.value) and "refuses to unpickle" in str(refused.value)  # no advice to unpickle it
    torch.save({"x": torch.zeros(2)}, tmp_path / "dict.pt")
    with pytest.raises(GraphFileError, match="does not hold a list"):
        load_dataset("graph_list", path=str(tmp_path / "dict.pt"))
    with pytest.raises(DatasetNotFoundError, match="nothere.pt"):
        load_dataset("graph_list", path=str(tmp_path / "nothere.pt"))


@requires_mutag
def test_a_copy_of_mutag_in_a_flat_folder_equals_the_registered_dataset(tmp_path):
    for f in MUTAG.glob("MUTAG_*.txt"):
        shutil.copy(f, tmp_path / f.name)
    flat, registered = load_dataset("tu", name="MUTAG", root=str(tmp_path)), load_dataset("mutag")
    assert len(flat.data) == len(registered.data) == 188
    assert all(torch.equal(a.x, b.x) and torch.equal(a.edge_index, b.edge_index) for a, b in zip(flat.data, registered.data))


def test_a_dataset_name_cannot_reach_outside_the_cache(tmp_path, monkeypatch):
    from geossl.errors import ConfigError

    monkeypatch.setenv("GEOSSL_CACHE", str(tmp_path / "cache"))
    victim = tmp_path / "cache" / "datasets" / "keep"
    victim.mkdir(parents=True)
    (victim / "precious.txt").write_text("x")
    _tiny_tu(tmp_path / "data" / "tudataset" / "TINY" / "raw")
    for name in ("../keep", "..", "a/b", "/etc", ".hidden"):
        with pytest.raises(ConfigError, match="is not a dataset name"):
            load_dataset("tu", name=name, root=str(tmp_path / "data"), download=True)
    assert (victim / "precious.txt").is_file()


def test_the_processed_cache_follows_the_files_content_and_their_folder(tmp_path, monkeypatch):
    """An edited label file (same size) and a second folder with the same dataset name each get their own
    processed copy: no stale labels, no other folder's edges."""
    monkeypatch.setenv("GEOSSL_CACHE", str(tmp_path / "cache"))
    first = _tiny_tu(tmp_path / "one" / "TINY")
    assert [int(g.y) for g in load_dataset("tu", name="TINY", root=str(tmp_path / "one")).data] == [0, 1]
    (first / "TINY_graph_labels.txt").write_text("1\n0\n")  # same size, other labels
    assert [int(g.y) for g in load_dataset("tu", name="TINY", root=str(tmp_path / "one")).data] == [1, 0]
    _tiny_tu(tmp_path / "two" / "TINY", A="1, 2\n2, 1\n4, 5\n5, 4\n")  # the triangle lost an edge pair
    assert load_dataset("tu", name="TINY", root=str(tmp_path / "two")).data[0].edge_index.shape[1] == 2 + 3
    assert load_dataset("tu", name="TINY", root=str(tmp_path / "one")).data[0].edge_index.shape[1] == 6 + 3


def test_node_attributes_without_node_labels_are_the_features(tmp_path):
    _tiny_tu(tmp_path / "TINY", node_labels=None, node_attributes="0.5, 1.0\n1.5, 2.0\n2.5, 3.0\n3.5, 4.0\n4.5, 5.0\n")
    ds = load_dataset("tu", name="TINY", root=str(tmp_path))
    assert ds.num_features == 2 and ds.data[0].x.tolist() == [[0.5, 1.0], [1.5, 2.0], [2.5, 3.0]]
    _tiny_tu(tmp_path / "bare" / "TINY", node_labels=None)  # neither labels nor attributes: degree features
    bare = load_dataset("tu", name="TINY", root=str(tmp_path / "bare"))
    assert bare.num_features == 3 and bare.data[0].x.sum(0).tolist() == [0.0, 0.0, 3.0]  # triangle: degree 2


def test_non_finite_node_attributes_name_the_file_and_line(tmp_path):
    _tiny_tu(tmp_path / "TINY", node_labels=None, node_attributes="0.5, 1.0\n1.5, nan\n2.5, 3.0\n3.5, 4.0\n4.5, 5.0\n")
    with pytest.raises(GraphFileError, match="TINY_node_attributes.txt, line 2: a node attribute is NaN or infinite"):
        load_dataset("tu", name="TINY", root=str(tmp_path))


def test_a_truncated_processed_file_in_the_cache_is_made_again(tmp_path, monkeypatch):
    """A processed/data.pt cut short (a disk that filled up while PyG wrote it) made every later run fail, blaming the
    raw data (issue 45); the cache's processed folder is now made again once."""
    monkeypatch.setenv("GEOSSL_CACHE", str(tmp_path / "cache"))
    _tiny_tu(tmp_path / "data" / "TINY")
    first = load_dataset("tu", name="TINY", root=str(tmp_path / "data"))
    (processed,) = [p for p in (tmp_path / "cache").rglob("processed/*.pt") if p.name.startswith("data")]
    processed.write_bytes(processed.read_bytes()[:100])
    again = load_dataset("tu", name="TINY", root=str(tmp_path / "data"))
    assert [g.edge_index.tolist() for g in again.data] == [g.edge_index.tolist() for g in first.data]
    assert len(processed.read_bytes()) > 100
