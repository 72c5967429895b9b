import pytest
import torch

from geossl.errors import DatasetNotFoundError, UnknownNameError
from geossl.graph.datasets import load_dataset
from tests.conftest import requires_citeseer, requires_cora


def test_cora_known_sizes(cora):
    d = cora.data
    assert (d.num_nodes, cora.num_features, cora.num_classes) == (2708, 1433, 7)
    assert (int(d.train_mask.sum()), int(d.val_mask.sum()), int(d.test_mask.sum())) == (140, 500, 1000)
    # 5278 undirected edges stored both ways, plus one self-loop per node
    assert d.edge_index.shape[1] == 2 * 5278 + 2708
    loops = d.edge_index[0] == d.edge_index[1]
    assert int(loops.sum()) == 2708
    # row-normalised bag of words, almost all zeros
    assert torch.allclose(d.x.sum(1), torch.ones(2708))
    assert float((d.x == 0).float().mean()) > 0.98


@requires_citeseer
def test_citeseer_known_sizes():
    ds = load_dataset("citeseer")
    assert (ds.data.num_nodes, ds.num_features, ds.num_classes) == (3327, 3703, 6)
    assert int(ds.data.train_mask.sum()) == 120


def test_missing_dataset_says_where_it_looked(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("cora", root=str(tmp_path))
    msg = str(info.value)
    assert str(tmp_path / "planetoid" / "Cora" / "raw") in msg and "GEOSSL_DATA" in msg and "dataset.download=true" in msg


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(UnknownNameError, match="citeseer, collab, cora, dgl, graph_list.*Did you mean 'cora'"):
        load_dataset("corra")


def _tu_present(name):
    import os
    from pathlib import Path

    return (Path(os.environ.get("GEOSSL_DATA", "/nonexistent")) / "tudataset" / name / "raw").is_dir()


@pytest.mark.skipif(not _tu_present("MUTAG"), reason="MUTAG not found under $GEOSSL_DATA")
def test_mutag_known_sizes_by_name_and_through_tu():
    ds = load_dataset("mutag")
    assert ds.task == "graph" and len(ds.data) == 188 and ds.num_classes == 2 and ds.num_features == 7
    assert sum(int(g.y) for g in ds.data) == 125  # 125 mutagenic, 63 not
    assert len(load_dataset("tu", name="MUTAG").data) == 188


@pytest.mark.skipif(not _tu_present("IMDB-BINARY"), reason="IMDB-BINARY not found under $GEOSSL_DATA")
def test_imdb_binary_gets_degree_features():
    ds = load_dataset("imdb-binary")
    # no node labels: one-hot degree (max degree 135 -> 136 columns), then self-loops added once
    assert len(ds.data) == 1000 and ds.num_classes == 2 and ds.num_features == 136
    g = ds.data[0]
    loops = g.edge_index[0] == g.edge_index[1]
    assert int(loops.sum()) == g.num_nodes
    deg = torch.bincount(g.edge_index[0][~loops], minlength=g.num_nodes)
    assert torch.equal(g.x.argmax(1), deg)


@pytest.mark.skipif(not _tu_present("PROTEINS"), reason="PROTEINS not found under $GEOSSL_DATA")
def test_proteins_and_nci1_known_sizes():
    proteins, nci1 = load_dataset("proteins"), load_dataset("nci1")
    assert (len(proteins.data), proteins.num_features, sum(g.num_nodes for g in proteins.data)) == (1113, 3, 43471)
    assert (len(nci1.data), nci1.num_features, nci1.num_classes) == (4110, 37, 2)


@pytest.mark.slow
def test_gin_format_reddit_binary_known_sizes():
    ds = load_dataset("reddit-binary")
    assert len(ds.data) == 2000 and ds.num_classes == 2 and sum(g.num_nodes for g in ds.data) == 859254
    assert sum(int((g.y == 0).sum()) for g in ds.data) == 1000


@requires_cora
def test_loading_never_writes_into_the_data_root(tmp_path, monkeypatch):
    import os
    import shutil
    from pathlib import Path

    src = Path(os.environ["GEOSSL_DATA"]) / "planetoid" / "Cora" / "raw"
    root = tmp_path / "data"
    shutil.copytree(src, root / "planetoid" / "Cora" / "raw")
    monkeypatch.setenv("GEOSSL_CACHE", str(tmp_path / "cache"))
    before = sorted(str(p) for p in root.rglob("*"))
    assert load_dataset("cora", root=str(root)).data.num_nodes == 2708
    assert sorted(str(p) for p in root.rglob("*")) == before
    assert len(list((tmp_path / "cache" / "datasets" / "planetoid").glob("*/Cora/processed"))) == 1  # <content key>/Cora
    assert load_dataset("cora", root=str(root)).data.num_nodes == 2708  # second load reuses the cache


@requires_citeseer
def test_citeseer_raw_self_loops_weigh_two_when_kept():
    """CiteSeer's raw graph file lists 124 self-loops (PyG drops them); kept, they weigh 2 in A + I."""
    plain = load_dataset("citeseer").data
    kept = load_dataset("citeseer", keep_raw_self_loops=True).data
    assert not hasattr(plain, "self_loop_weight")
    assert int((kept.self_loop_weight == 2).sum()) == 124
    assert int((kept.self_loop_weight == 1).sum()) == 3327 - 124
    assert torch.equal(kept.edge_index, plain.edge_index)  # the edge list itself is unchanged


def test_cora_has_no_raw_self_loops(cora):
    assert not hasattr(load_dataset("cora", keep_raw_self_loops=True).data, "self_loop_weight")


def test_raw_self_loop_nodes_reads_an_adjacency_list_and_refuses_other_pickles(tmp_path):
    import collections
    import pickle

    from geossl.graph.datasets import raw_self_loop_nodes

    graph = collections.defaultdict(list, {0: [1, 0], 1: [0, 2], 2: [1, 2, 2], 3: []})
    (tmp_path / "ind.toy.graph").write_bytes(pickle.dumps(graph, protocol=2))
    assert raw_self_loop_nodes(tmp_path / "ind.toy.graph").tolist() == [0, 2]
    (tmp_path / "ind.bad.graph").write_bytes(pickle.dumps(collections.OrderedDict(a=[1])))
    with pytest.raises(pickle.UnpicklingError, match="OrderedDict is not allowed"):
        raw_self_loop_nodes(tmp_path / "ind.bad.graph")
