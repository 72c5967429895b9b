"""Sampled mini-batch pretraining (geossl.graph.minibatch): the subgraphs, their independence from the worker
count, and the CLI's answers."""

import json
import subprocess
import sys

import pytest
import torch

from geossl.engine import Engine, TrainerConfig
from geossl.graph.minibatch import SeedNodes, SubgraphBatch
from tests.conftest import requires_cora


@requires_cora
@pytest.mark.parametrize("name, options", [("neighbour", {"fanouts": [4, 3]}), ("local_cluster", {"size": 32})])
def test_subgraphs_are_induced_and_the_same_with_any_number_of_workers(cora, tmp_path, name, options):
    data = cora.data
    seen = {}
    for workers in (0, 2):
        engine = Engine(TrainerConfig(epochs=1, progress=False, threads=1, num_workers=workers), tmp_path / str(workers), seed=3)
        loader = engine.loader(SeedNodes(data.num_nodes), 64 if name == "neighbour" else 4, shuffle=True, seeded=True,
                               collate_fn=SubgraphBatch(data, name, **options))
        loader.sampler.set_epoch(1)
        seen[workers] = [b for _, b in zip(range(5), loader)]
    for a, b in zip(seen[0], seen[2]):
        assert torch.equal(a.node_ids, b.node_ids) and torch.equal(a.edge_index, b.edge_index)
    batch = seen[0][0]
    assert len(torch.unique(batch.node_ids)) == batch.num_nodes
    assert torch.equal(batch.x, data.x[batch.node_ids])
    inside = torch.isin(data.edge_index, batch.node_ids).all(0)  # the edges of the graph between the batch's nodes
    expected = {tuple(e) for e in data.edge_index[:, inside].t().tolist()}
    assert {tuple(e) for e in batch.node_ids[batch.edge_index].t().tolist()} == expected and batch.edge_index.shape[1] == len(expected)
    loops = batch.edge_index[0] == batch.edge_index[1]
    assert int(loops.sum()) == batch.num_nodes  # every node keeps its self-loop
    if name == "local_cluster":
        assert batch.num_nodes <= 4 * 32


@requires_cora
def test_cli_pretrains_on_sampled_subgraphs_and_refuses_what_cannot_sample(tmp_path):
    def geossl(*args):
        return subprocess.run([sys.executable, "-m", "geossl", *args], capture_output=True, text=True, cwd=tmp_path, timeout=300)

    res = geossl("pretrain", "graph=graphmae", "dataset=cora", "sampler=neighbour", "sampler.batch_nodes=1024", "trainer.epochs=2",
                 "eval.epochs=5", "trainer.progress=false", "trainer.threads=1", "encoder.hidden=16", f"run_dir={tmp_path / 'run'}")
    assert res.returncode == 0, res.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["epochs"] == 2 and 0 < summary["test_acc"] <= 1
    metrics = (tmp_path / "run" / "metrics.csv").read_text()
    assert "train/sce" in metrics
    for args, message in [(["graph=selftask", "dataset=cora", "sampler=neighbour"], "graph=selftask does not support"),
                          (["graph=graphmae", "dataset=mutag", "sampler=neighbour"], "graph-level"),
                          (["graph=graphmae", "dataset=cora", "sampler=neighbour", "sampler.fanouts=[5,0]"], "must be positive integers"),
                          (["graph=graphmae", "dataset=cora", "sampler=neighbour", "sampler.batch_nodes=5000"], "between 1 and the graph's 2708"),
                          (["graph=graphmae", "dataset=cora", "sampler=local_cluster", "sampler.alpha=1.5"], "Bad local clustering"),
                          (["graph=graphmae", "dataset=cora", "sampler=neighbour", "sampler.inference_chunk=0"], "inference_chunk=0 must be"),
                          (["graph=graphmae", "dataset=cora", "sampler=neighbour", "sampler.seeds_per_epoch=100"], "at least sampler.batch_nodes=512"),
                          # more hops than a loss reads: accepted before (issue 45)
                          (["graph=graphmae", "dataset=cora", "sampler=neighbour", "sampler.fanouts=[5,5,5,5]"],
                           "samples 4 hops, but a node's loss reads 3: the encoder's 2 layers"),
                          # words where numbers belong: a ValueError traceback before (issue 45)
                          (["graph=graphmae", "dataset=cora", "sampler=neighbour", "sampler.fanouts=[a,b]"], "must be positive integers"),
                          (["graph=graphmae", "dataset=cora", "sampler=neighbour", "sampler.batch_nodes=many"],
                           "sampler.batch_nodes='many' must be an integer"),
                          (["graph=graphmae", "dataset=cora", "sampler=local_cluster", "sampler.alpha=half"],
                           "sampler.alpha='half' must be a number")]:
        res = geossl("pretrain", *args, "trainer.epochs=1")
        assert res.returncode != 0 and message in " ".join(res.stderr.split()) and "Traceback" not in res.stderr, (args, res.stderr)


@requires_cora
def test_torchrun_shards_the_seed_nodes_across_two_processes(tmp_path):
    import os

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "geossl", "pretrain",
           "graph=graphmae", "dataset=cora", "sampler=neighbour", "sampler.batch_nodes=677", "trainer.accelerator=cpu",
           "trainer.epochs=2", "eval.epochs=5", "trainer.progress=false", "encoder.hidden=16", f"run_dir={tmp_path / 'run'}"]
    # a fresh cache: both ranks build Cora's processed copy at once (one waits for the other's lock)
    env = dict(os.environ, OMP_NUM_THREADS="1", GEOSSL_CACHE=str(tmp_path / "cache"))
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300, env=env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["world_size"] == 2 and 0 < summary["test_acc"] <= 1


def test_each_process_gets_its_own_share_of_the_seed_nodes(tmp_path):
    from torch.utils.data import DistributedSampler

    shares = [set(DistributedSampler(SeedNodes(2708), num_replicas=2, rank=r, shuffle=True, seed=0)) for r in (0, 1)]
    assert not shares[0] & shares[1] and len(shares[0] | shares[1]) == 2708


def test_sparse_features_stay_sparse_in_sampled_subgraphs():
    from geossl.graph.synthetic import synthetic_graph_dataset

    data = synthetic_graph_dataset(num_nodes=600, num_classes=3, num_features=40, topic_words=10).data
    batch = SubgraphBatch(data, "neighbour", fanouts=[3, 2])([(i, 7) for i in range(0, 600, 20)])
    assert batch.x.layout == torch.sparse_csr and batch.x.shape == (batch.num_nodes, 40)
    assert torch.equal(batch.x.to_dense(), data.x.to_dense()[batch.node_ids])


def test_graphmae_trains_on_sparse_subgraphs_like_on_their_dense_copies():
    """One GraphMAE step on a sparse-feature subgraph equals the step on the same subgraph with dense features."""
    from geossl.graph.encoders.gat import GAT
    from geossl.graph.methods.graphmae import GraphMAE
    from geossl.graph.synthetic import synthetic_graph_dataset

    data = synthetic_graph_dataset(num_nodes=400, num_classes=3, num_features=30, topic_words=10).data
    sparse = SubgraphBatch(data, "neighbour", fanouts=[4, 4])([(i, 1) for i in range(0, 400, 8)])
    dense = sparse.clone()
    dense.x = sparse.x.to_dense()
    grads = []
    for batch in (sparse, dense):
        torch.manual_seed(0)
        method = GraphMAE(GAT(30, hidden=16, layers=2, heads=2, feat_drop=0.0, attn_drop=0.0), in_dim=30)
        torch.manual_seed(1)
        loss = method(batch)["loss"]
        loss.backward()
        grads.append((loss.detach(), method.encoder.layers[0].fc.weight.grad.clone()))
    assert torch.allclose(grads[0][0], grads[1][0], atol=1e-6)
    assert torch.allclose(grads[0][1], grads[1][1], atol=1e-6)


def test_seeds_per_epoch_draws_that_many_random_seeds_anew_every_epoch(tmp_path):
    engine = Engine(TrainerConfig(epochs=1, progress=False, threads=1), tmp_path, seed=0)
    loader = engine.loader(SeedNodes(10_000, per_epoch=300), 100, shuffle=True, seeded=True, collate_fn=lambda items: items)
    epochs = []
    for epoch in (1, 2):
        loader.sampler.set_epoch(epoch)
        epochs.append(torch.tensor([node for batch in loader for node, _ in batch]))
    assert [len(e) for e in epochs] == [300, 300] and len(loader) == 3
    assert not torch.equal(epochs[0], epochs[1]) and int(epochs[0].max()) < 10_000
    assert len(torch.unique(torch.cat(epochs))) > 500  # random nodes of the whole graph, not the first 300


def test_cli_pretrains_on_a_synthetic_graph_with_sparse_features_and_layerwise_inference(tmp_path):
    res = subprocess.run([sys.executable, "-m", "geossl", "pretrain", "graph=graphmae2", "dataset=synthetic_graph",
                          "dataset.num_nodes=3000", "dataset.num_features=100", "dataset.topic_words=20", "sampler=neighbour",
                          "sampler.batch_nodes=256", "sampler.seeds_per_epoch=512", "sampler.inference_chunk=700", "trainer.epochs=1",
                          "eval.epochs=20", "trainer.progress=false", "trainer.threads=1", "encoder.hidden=16", "encoder.heads=2",
                          f"run_dir={tmp_path / 'run'}"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["dataset"] == "synthetic_graph" and 0 < summary["test_acc"] <= 1
    assert "train/sce" in (tmp_path / "run" / "metrics.csv").read_text()
