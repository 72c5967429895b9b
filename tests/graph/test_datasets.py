import pytest
import torch

from geossl.errors import DatasetNotFoundError, UnknownNameError
from geossl.graph.datasets import load_dataset
from tests.conftest import requires_citeseer


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
    with pytest.raises(UnknownNameError, match="citeseer, cora, pubmed"):
        load_dataset("corra")
