"""DGL interop (geossl.graph.interop): conversions both ways, DGL graphs into geossl's encoders and methods,
DGL's datasets, and geossl's GAT and GIN layers against dgl.nn's on real graphs."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import requires_citeseer, requires_cora

import importlib.util  # noqa: E402

if importlib.util.find_spec("dgl") is None:
    pytest.skip("the dgl extra is not installed (pip install -e '.[dgl]' torch==2.13.0)", allow_module_level=True)

from geossl.graph.interop import InteropError, as_pyg, from_dgl, import_dgl, to_dgl  # noqa: E402

dgl = import_dgl()
import dgl.nn  # noqa: E402, F811  (dgl.nn is a subpackage: imported to be used as dgl.nn)

DATA = Path(os.environ.get("GEOSSL_DATA", "/nonexistent"))
requires_mutag = pytest.mark.skipif(not (DATA / "tudataset" / "MUTAG" / "raw").is_dir(), reason="MUTAG not under $GEOSSL_DATA")


def _equal_data(a, b, keys):
    for key in keys:
        assert torch.equal(getattr(a, key), getattr(b, key)), key


@pytest.fixture(scope="module")
def mutag_batch():
    if not (DATA / "tudataset" / "MUTAG" / "raw").is_dir():
        pytest.skip("MUTAG not under $GEOSSL_DATA")
    from torch_geometric.data import Batch

    from geossl.graph.datasets import load_dataset

    return Batch.from_data_list(load_dataset("mutag").data[:16])


def test_import_works_without_graphbolt_and_graphbolt_says_why():
    assert dgl.__version__ == "2.1.0"
    version = torch.__version__.split("+")[0]
    if not (Path(dgl.__file__).parent / "graphbolt" / f"libgraphbolt_pytorch_{version}.so").exists():
        with pytest.raises(ImportError, match="GraphBolt"):
            dgl.graphbolt.FusedCSCSamplingGraph
    # a fresh interpreter: importing geossl's DGL support is all it takes
    res = subprocess.run([sys.executable, "-W", "error::UserWarning", "-c",
                          "import geossl.graph, dgl, dgl.nn, dgl.data; print(dgl.__version__)"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and res.stdout.strip() == "2.1.0", res.stderr


@requires_citeseer
def test_node_graph_round_trip_is_exact():
    from geossl.graph.datasets import load_dataset

    data = load_dataset("citeseer", keep_raw_self_loops=True).data  # self-loops and 124 loop weights of 2
    data.edge_weight = torch.rand(data.num_edges)
    g = to_dgl(data)
    assert g.num_nodes() == data.num_nodes and g.num_edges() == data.num_edges
    assert set(g.ndata) == {"feat", "label", "train_mask", "val_mask", "test_mask", "self_loop_weight"} and set(g.edata) == {"weight"}
    assert torch.equal(torch.stack(g.edges(order="eid")), data.edge_index)
    back = from_dgl(g)
    _equal_data(back, data, ["x", "y", "edge_index", "train_mask", "val_mask", "test_mask", "self_loop_weight", "edge_weight"])
    assert int((back.edge_index[0] == back.edge_index[1]).sum()) == data.num_nodes  # the self-loop state survives


def test_batched_graphs_keep_their_membership(mutag_batch):
    g = to_dgl(mutag_batch)
    assert g.batch_size == 16
    assert torch.equal(g.batch_num_nodes(), torch.diff(mutag_batch.ptr))
    back = from_dgl(g, graph_labels=mutag_batch.y)
    _equal_data(back, mutag_batch, ["x", "edge_index", "batch", "ptr", "y"])
    with pytest.raises(InteropError, match="15 rows for a batch of 16"):
        from_dgl(g, graph_labels=mutag_batch.y[:15])


@requires_cora
def test_encoders_and_methods_take_a_dgl_graph_converted_once(cora, tmp_path):
    import geossl
    from geossl.encoder import save_encoder
    from geossl.graph.encoders.gat import GAT
    from geossl.graph.methods.graphmae import GraphMAE

    data = cora.data
    g = to_dgl(data)
    torch.manual_seed(0)
    encoder = GAT(data.num_features, hidden=32, heads=2, layers=2).eval()
    assert torch.equal(encoder(g), encoder(data))
    assert as_pyg(g) is as_pyg(g)  # remembered, not converted per step
    first = as_pyg(g)
    g.ndata["feat"] = data.x * 2  # a changed graph is converted again
    assert as_pyg(g) is not first and torch.equal(as_pyg(g).x, data.x * 2)
    g.ndata["feat"] = data.x

    path = save_encoder(encoder, tmp_path / "encoder.safetensors")
    assert torch.equal(geossl.load_encoder(path)(g), encoder(data))

    method = GraphMAE(GAT(data.num_features, hidden=32, heads=2, layers=2), in_dim=data.num_features, mask_rate=0.5)
    torch.manual_seed(1)
    from_pyg = method(data)
    torch.manual_seed(1)
    from_dgl_graph = method(g)
    assert torch.equal(from_pyg["loss"], from_dgl_graph["loss"])


@requires_cora
def test_selftask_builds_and_trains_on_a_dgl_graph(cora):
    from geossl.graph.encoders.gcn import GCN
    from geossl.graph.methods.selftask import SelfTask

    data, g = cora.data, to_dgl(cora.data)
    losses = []
    for graph in (data, g):
        torch.manual_seed(0)
        method = SelfTask(GCN(data.num_features, hidden=16), data.num_features, data=graph, num_classes=7,
                          task="pairwise_distance+edge_mask", seed=0)
        torch.manual_seed(1)
        losses.append(method(graph))
        assert set(method.accuracies(graph)) >= {"train_acc", "val_acc", "test_acc"}
    assert all(torch.equal(losses[0][k], losses[1][k]) for k in losses[0])


def test_gin_takes_a_batched_dgl_graph(mutag_batch):
    from geossl.graph.encoders.gin import GIN

    encoder = GIN(mutag_batch.num_features, hidden=16, layers=2).eval()
    assert torch.equal(encoder(to_dgl(mutag_batch)), encoder(mutag_batch))


def test_bad_graphs_are_refused_with_the_reason():
    from geossl.graph.encoders.gat import GAT

    hetero = dgl.heterograph({("user", "follows", "user"): ([0, 1], [1, 2]), ("user", "buys", "item"): ([0], [0])})
    with pytest.raises(InteropError, match="heterogeneous.*to_homogeneous"):
        from_dgl(hetero)
    g = dgl.graph(([0, 1, 2], [1, 2, 0]))
    encoder = GAT(4, hidden=8, heads=2, layers=1)
    with pytest.raises(InteropError, match=r"no node features.*ndata\['feat'\]"):
        encoder(g)
    g.ndata["feat"] = torch.randn(3, 4)
    with pytest.raises(InteropError, match="on cpu and the model on meta"):
        as_pyg(g, torch.device("meta"))
    assert encoder(g).shape == (3, 8)
    with pytest.raises(InteropError, match="expects a dgl.DGLGraph"):
        from_dgl(torch.zeros(3))


def _gat_pair(in_dim, out_dim, heads, residual):
    from geossl.graph.encoders.gat import GATLayer

    ours = GATLayer(in_dim, out_dim, heads, residual=residual, activation="elu")
    theirs = dgl.nn.GATConv(in_dim, out_dim, heads, residual=residual, activation=torch.nn.functional.elu)
    with torch.no_grad():
        theirs.fc.weight.copy_(ours.fc.weight)
        theirs.attn_l.copy_(ours.attn_l)
        theirs.attn_r.copy_(ours.attn_r)
        ours.bias.copy_(torch.randn_like(ours.bias))
        if theirs.has_linear_res:  # DGL keeps the bias in its linear residual then
            theirs.res_fc.weight.copy_(ours.res_fc.weight)
            theirs.res_fc.bias.copy_(ours.bias)
        else:
            theirs.bias.copy_(ours.bias)
    return ours, theirs


def _gat_params(ours, theirs):
    """Corresponding parameters of GATLayer and GATConv."""
    pairs = [(ours.fc.weight, theirs.fc.weight), (ours.attn_l, theirs.attn_l), (ours.attn_r, theirs.attn_r)]
    if theirs.has_linear_res:
        return pairs + [(ours.res_fc.weight, theirs.res_fc.weight), (ours.bias, theirs.res_fc.bias)]
    return pairs + [(ours.bias, theirs.bias)]


def _compare(ours, theirs, x, edge_index, g, flatten):
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_a = ours(xa, edge_index)
    out_b = theirs(g, xb)
    out_b = out_b.flatten(1) if flatten else out_b
    torch.testing.assert_close(out_a, out_b, rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(out_a)
    out_a.backward(grad)
    out_b.backward(grad)
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-4, atol=1e-5)
    pairs = _gat_params(ours, theirs)
    assert len(pairs) == len(list(ours.parameters())) == len(list(theirs.parameters()))
    for pa, pb in pairs:
        torch.testing.assert_close(pa.grad, pb.grad, rtol=1e-4, atol=1e-4)


@requires_cora
@pytest.mark.parametrize("in_dim_first, out_dim, heads, residual", [(True, 8, 4, False), (True, 16, 1, True), (False, 512, 2, False)])
def test_gat_layer_equals_dgl_gatconv_on_cora(cora, in_dim_first, out_dim, heads, residual):
    """Both of GATLayer's products (project first; aggregate first when the input is narrower than a head)."""
    torch.manual_seed(0)
    data = cora.data  # self-loops added, as GATConv needs
    x = data.x if in_dim_first else torch.randn(data.num_nodes, 64)
    ours, theirs = _gat_pair(x.shape[1], out_dim, heads, residual)
    _compare(ours, theirs, x, data.edge_index, to_dgl(data), flatten=True)


def test_gat_layer_equals_dgl_gatconv_on_a_mutag_batch(mutag_batch):
    torch.manual_seed(0)
    ours, theirs = _gat_pair(mutag_batch.num_features, 8, 4, True)
    _compare(ours, theirs, mutag_batch.x, mutag_batch.edge_index, to_dgl(mutag_batch), flatten=True)


class _GINLayer(torch.nn.Module):
    """geossl's GIN layer (gin.gin_layer: PyG's GINConv with its neighbour sum as one CSR product)."""

    def __init__(self, conv, adj_t):
        super().__init__()
        self.conv, self.adj_t = conv, adj_t

    def forward(self, x, edge_index):
        from geossl.graph.encoders.gin import gin_layer

        return gin_layer(self.conv, x, self.adj_t)


def test_gin_layer_equals_dgl_ginconv_on_cora_and_a_mutag_batch(cora, mutag_batch):
    from torch_geometric.nn import GINConv

    from geossl.graph.encoders.gin import neighbour_sum_matrix

    for data in (cora.data, mutag_batch):
        torch.manual_seed(0)
        mlp = torch.nn.Sequential(torch.nn.Linear(data.num_features, 32), torch.nn.ReLU(), torch.nn.Linear(32, 16))
        conv = GINConv(mlp, train_eps=True)
        with torch.no_grad():
            conv.eps.fill_(0.25)
        ours = _GINLayer(conv, neighbour_sum_matrix(data.edge_index, data.num_nodes, torch.float32))
        import copy

        theirs = dgl.nn.GINConv(copy.deepcopy(mlp), "sum", init_eps=0.25, learn_eps=True)
        # parameters in the same order: eps, then the MLP's
        ours_params = dict(ours.named_parameters())
        theirs_params = dict(theirs.named_parameters())
        assert sorted(k.replace("conv.nn.", "apply_func.").replace("conv.", "") for k in ours_params) == sorted(theirs_params)
        xa, xb = data.x.clone().requires_grad_(), data.x.clone().requires_grad_()
        out_a, out_b = ours(xa, data.edge_index), theirs(to_dgl(data), xb)
        torch.testing.assert_close(out_a, out_b, rtol=1e-5, atol=1e-5)
        grad = torch.randn_like(out_a)
        out_a.backward(grad)
        out_b.backward(grad)
        torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-4, atol=1e-5)
        for k, p in ours_params.items():
            torch.testing.assert_close(p.grad, theirs_params[k.replace("conv.nn.", "apply_func.").replace("conv.", "")].grad,
                                       rtol=1e-4, atol=1e-4, msg=k)


def _dgl_folder(tmp_path, name, args, files):
    """Lay ``files`` out where DGL looks for ``name``: the error of a missing dataset names the folder."""
    from geossl.errors import DatasetNotFoundError
    from geossl.graph.datasets import dgl_dataset

    with pytest.raises(DatasetNotFoundError, match="DGL looks for its files in") as err:
        dgl_dataset(name, root=str(tmp_path), args=args)
    where = Path(str(err.value).split("DGL looks for its files in ")[1].split(" (raw_dir")[0])
    assert where.parent == tmp_path and not where.exists()
    sub = where / args["name"] if args else where
    sub.mkdir(parents=True)
    for f in files:
        shutil.copy(f, sub / f.name)
    return dgl_dataset(name, root=str(tmp_path), args=args)


@requires_citeseer
def test_dgl_citeseer_equals_geossl_citeseer(tmp_path):
    from geossl.graph.datasets import load_dataset

    ours = load_dataset("citeseer").data
    theirs = _dgl_folder(tmp_path, "CiteseerGraphDataset", None, sorted((DATA / "planetoid" / "CiteSeer" / "raw").iterdir()))
    assert theirs.task == "node" and theirs.num_classes == 6 and theirs.num_features == 3703
    _equal_data(theirs.data, ours, ["x", "y", "train_mask", "val_mask", "test_mask"])
    edges = lambda d: set(map(tuple, d.edge_index.t().tolist()))  # noqa: E731
    assert edges(theirs.data) == edges(ours)


@requires_mutag
def test_dgl_mutag_equals_geossl_mutag(tmp_path):
    from geossl.errors import ConfigError
    from geossl.graph.datasets import dgl_dataset, load_dataset

    ours = load_dataset("mutag").data
    raw = sorted((DATA / "tudataset" / "MUTAG" / "raw").glob("MUTAG_*.txt"))
    theirs = _dgl_folder(tmp_path, "LegacyTUDataset", {"name": "MUTAG"}, raw)
    assert theirs.task == "graph" and len(theirs.data) == 188 and theirs.num_classes == 2
    for a, b in zip(theirs.data, ours):
        _equal_data(a, b, ["x", "y"])
        assert set(map(tuple, a.edge_index.t().tolist())) == set(map(tuple, b.edge_index.t().tolist()))
    with pytest.raises(ConfigError, match=r"give \['name'\]"):
        dgl_dataset("LegacyTUDataset", root=str(tmp_path))
    with pytest.raises(ConfigError, match="not a DGL dataset class. Valid choices.*CoraGraphDataset"):
        dgl_dataset("NoSuchDataset")


@requires_citeseer
def test_cli_pretrains_on_a_dgl_dataset(tmp_path):
    (tmp_path / "dgl").mkdir()
    _dgl_folder(tmp_path / "dgl", "CiteseerGraphDataset", None, sorted((DATA / "planetoid" / "CiteSeer" / "raw").iterdir()))
    run_dir = tmp_path / "run"
    res = subprocess.run([sys.executable, "-m", "geossl", "pretrain", "graph=graphmae", "dataset=dgl", "dataset.name=CiteseerGraphDataset",
                          f"dataset.root={tmp_path / 'dgl'}", f"run_dir={run_dir}", "trainer.epochs=2", "eval.epochs=5",
                          "trainer.progress=false", "trainer.threads=1", "encoder.hidden=16"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["dataset"] == "citeseergraphdataset" and 0 < summary["test_acc"] <= 1
    res = subprocess.run([sys.executable, "-m", "geossl", "config", "graph=graphmae", "dataset=dgl", "dataset.args.name=MUTAG"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert res.returncode != 0 and "+dataset.args.name=<value>" in " ".join(res.stderr.split()), res.stderr


def test_the_dgl_doc_snippet_runs(tmp_path, monkeypatch):
    import re

    doc = Path(__file__).resolve().parents[2] / "docs" / "dgl.md"
    snippet = re.search(r"```python\n(.*?)```", doc.read_text(), re.S).group(1)
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(snippet, scope)
    assert scope["g"].ndata["h"].shape == (300, 64) and (tmp_path / "encoder.safetensors").is_file()


@requires_citeseer
def test_a_pickle_in_dgls_processed_cache_is_never_loaded(tmp_path):
    """DGL keeps processed copies beside the raw files and loads their info.pkl with pickle: a crafted one ran code on the
    next dataset=dgl run (issue 45). geossl's DGL loader never reads (nor writes) that cache."""
    import pickle

    from geossl.graph.datasets import dgl_dataset

    first = _dgl_folder(tmp_path, "CiteseerGraphDataset", None, sorted((DATA / "planetoid" / "CiteSeer" / "raw").iterdir()))
    assert not list(tmp_path.rglob("*.pkl")) and not list(tmp_path.rglob("*.bin"))  # nothing written beside the raw files
    from geossl.graph.interop import import_dgl

    import_dgl()
    import dgl.data

    dgl.data.CiteseerGraphDataset(raw_dir=str(tmp_path), verbose=False)  # DGL itself writes its processed copies
    pickles = list(tmp_path.rglob("*.pkl"))
    assert pickles
    marker = tmp_path / "code-ran"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    for p in pickles:
        p.write_bytes(pickle.dumps(Evil()))
    again = dgl_dataset("CiteseerGraphDataset", root=str(tmp_path))
    assert not marker.exists()
    assert torch.equal(again.data.edge_index, first.data.edge_index)
