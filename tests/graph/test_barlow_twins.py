"""Graph Barlow Twins (geossl.graph.methods.barlow_twins): the loss on hand-computed tensors, the views' drop rates,
the paper's encoder from the presets, and a run through the CLI at node and graph level."""

import json
import math
import os
from pathlib import Path

import pytest
import torch

from geossl.errors import ConfigError
from geossl.graph.losses import barlow_twins_loss
from geossl.graph.masking import drop_edges, mask_feature_columns
from tests.conftest import requires_cora
from tests.cli.test_cli import TINY, geossl


def test_loss_hand_computed():
    # columns (1, 3) and (2, 0): standardised with the unbiased std, both become (-s, s) and (s, -s), s = 1/sqrt(2);
    # C = a^T a / N = [[1/2, -1/2], [-1/2, 1/2]]: on-diagonal (1 - 1/2)^2 * 2 = 1/2, off-diagonal 2 * 1/4 = 1/2
    z = torch.tensor([[1.0, 2.0], [3.0, 0.0]])
    assert math.isclose(float(barlow_twins_loss(z, z, lam=1.0)), 1.0, rel_tol=1e-6)
    assert math.isclose(float(barlow_twins_loss(z, z)), 0.5 + 0.5 / 2, rel_tol=1e-6)  # lam = 1 / D = 1/2
    assert math.isclose(float(barlow_twins_loss(z, z, lam=0.0)), 0.5, rel_tol=1e-6)


def test_loss_on_decorrelated_and_anticorrelated_views():
    # 4 samples, 2 orthogonal +-1 features (C = (N-1)/N on the diagonal, 0 off it); the negated view flips C's sign
    z = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
    assert math.isclose(float(barlow_twins_loss(z, z)), 2 * (1 - 0.75) ** 2, rel_tol=1e-6)
    assert math.isclose(float(barlow_twins_loss(z, -z)), 2 * (1 + 0.75) ** 2, rel_tol=1e-6)


def test_loss_is_scale_and_shift_invariant_per_feature_and_finite_on_a_constant_feature():
    torch.manual_seed(0)
    a, b = torch.randn(50, 8), torch.randn(50, 8)
    scale, shift = torch.rand(8) + 0.5, torch.randn(8)
    assert torch.isclose(barlow_twins_loss(a, b), barlow_twins_loss(a * scale + shift, b), rtol=1e-5)
    a[:, 3] = 2.0
    assert torch.isfinite(barlow_twins_loss(a, b))


def test_loss_refuses_mismatched_or_single_sample_batches():
    with pytest.raises(ValueError, match="same shape"):
        barlow_twins_loss(torch.zeros(4, 3), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="N >= 2"):
        barlow_twins_loss(torch.zeros(1, 3), torch.zeros(1, 3))


def test_feature_masking_drops_whole_columns_at_its_rate():
    x = torch.rand(5, 20000) + 0.1
    torch.manual_seed(0)
    out = mask_feature_columns(x, 0.3)
    zeroed = out == 0
    assert torch.equal(zeroed, zeroed[:1].expand_as(zeroed))  # the same columns for every node
    assert abs(float(zeroed[0].float().mean()) - 0.3) < 0.02
    assert torch.equal(out[~zeroed], x[~zeroed])  # kept values are not rescaled
    assert torch.equal(mask_feature_columns(x, 0.0), x) and not mask_feature_columns(x, 1.0).any()
    with pytest.raises(ValueError):
        mask_feature_columns(x, 1.5)


def test_edge_dropping_keeps_self_loops_and_drops_at_its_rate():
    n = 1000
    edges = torch.randint(0, n, (2, 40000))
    edges = edges[:, edges[0] != edges[1]]
    loops = torch.arange(n).repeat(2, 1)
    edge_index = torch.cat([edges, loops], 1)
    torch.manual_seed(0)
    out = drop_edges(edge_index, 0.4)
    kept_loops = int((out[0] == out[1]).sum())
    assert kept_loops == n
    assert abs((out.shape[1] - n) / edges.shape[1] - 0.6) < 0.01
    assert torch.equal(drop_edges(edge_index, 1.0), loops)
    assert torch.equal(drop_edges(edge_index, 0.0), edge_index)


def test_method_refuses_bad_rates_and_trains_a_tiny_graph():
    from torch_geometric.data import Data

    from geossl.graph.encoders.gcn import GCN
    from geossl.graph.methods.barlow_twins import GraphBarlowTwins

    with pytest.raises(ConfigError, match="feature_drop"):
        GraphBarlowTwins(GCN(4, hidden=8), 4, feature_drop=2.0)
    with pytest.raises(ConfigError, match="lam"):
        GraphBarlowTwins(GCN(4, hidden=8), 4, lam=-1.0)
    torch.manual_seed(0)
    x = torch.randn(60, 16)
    ring = torch.arange(60)
    data = Data(x=x, edge_index=torch.stack([torch.cat([ring, (ring + 1) % 60]), torch.cat([(ring + 1) % 60, ring])]))
    method = GraphBarlowTwins(GCN(16, hidden=32, out_dim=8, dropout=0.0, norm="batchnorm", activation="prelu",
                                  last_activation=False), 16, feature_drop=0.2, edge_drop=0.2)
    opt = torch.optim.Adam(method.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        loss = method(data)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses[::10]


def test_preset_builds_the_papers_two_layer_gcn():
    from geossl.config import compose

    cfg = compose("pretrain_graph", ["graph=barlow_twins", "dataset=cora"])
    assert cfg.encoder.name == "gcn" and cfg.graph.name == "barlow_twins"
    assert (cfg.encoder.hidden, cfg.encoder.out_dim, cfg.encoder.layers, cfg.encoder.dropout) == (512, 256, 2, 0.0)
    assert (cfg.trainer.epochs, cfg.trainer.warmup, cfg.trainer.optimizer) == (1000, 100, "adamw")
    from geossl.graph.encoders.gcn import GCN

    encoder = GCN(10, hidden=cfg.encoder.hidden, out_dim=cfg.encoder.out_dim, layers=2, dropout=0.0,
                  activation="prelu", norm="batchnorm", last_activation=False)
    # GCNConv(F, 2D) -> BatchNorm -> PReLU -> GCNConv(2D, D): the last layer has neither norm nor activation
    assert isinstance(encoder.norms[0], torch.nn.BatchNorm1d) and isinstance(encoder.norms[1], torch.nn.Identity)
    assert isinstance(encoder.acts[0], torch.nn.PReLU) and isinstance(encoder.acts[1], torch.nn.Identity)


@requires_cora
def test_cli_pretrains_barlow_twins_on_cora_full_batch_and_on_sampled_subgraphs(tmp_path):
    small = ["encoder.hidden=32", "encoder.out_dim=16"]
    for extra in ([], ["sampler=neighbour", "sampler.batch_nodes=512", "sampler.fanouts=[5,5]"]):
        run = tmp_path / f"run{len(extra)}"
        res = geossl("pretrain", "graph=barlow_twins", "dataset=cora", f"run_dir={run}", *TINY, *small, *extra)
        assert res.returncode == 0, res.stderr
        summary = json.loads((run / "summary.json").read_text())
        assert summary["method"] == "barlow_twins" and 0.0 < summary["test_acc"] <= 1.0 and summary["rankme"] > 1.0


@pytest.mark.skipif(not (Path(os.environ.get("GEOSSL_DATA", "/nonexistent")) / "tudataset" / "MUTAG" / "raw").is_dir(),
                    reason="MUTAG not under $GEOSSL_DATA (set it to ../shared/data)")
def test_cli_pretrains_barlow_twins_at_graph_level_on_mutag(tmp_path):
    run = tmp_path / "run"
    res = geossl("pretrain", "graph=barlow_twins", "dataset=mutag", "encoder=gin", "eval=svc", f"run_dir={run}",
                 "trainer.epochs=2", "trainer.progress=false", "trainer.threads=1", "encoder.hidden=16")
    assert res.returncode == 0, res.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["method"] == "barlow_twins" and 50.0 <= summary["cv_acc"] <= 100.0  # in %; MUTAG is 2/3 one class


@requires_cora
def test_a_dgl_graph_gives_the_same_loss_as_its_pyg_graph(cora):
    import importlib.util

    if importlib.util.find_spec("dgl") is None:
        pytest.skip("the dgl extra is not installed (pip install -e '.[dgl]' torch==2.13.0)")
    from geossl.graph.encoders.gcn import GCN
    from geossl.graph.interop import to_dgl
    from geossl.graph.methods.barlow_twins import GraphBarlowTwins

    torch.manual_seed(0)
    method = GraphBarlowTwins(GCN(cora.data.num_features, hidden=16, dropout=0.0), cora.data.num_features)
    losses = []
    for graph in (cora.data, to_dgl(cora.data)):
        torch.manual_seed(1)
        losses.append(method(graph)["loss"])
    assert torch.equal(losses[0], losses[1])
