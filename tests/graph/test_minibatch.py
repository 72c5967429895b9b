"""Sampled mini-batch pretraining (geossl.graph.minibatch): the subgraphs, their independence from the worker
count, and the CLI's answers."""

import json
import subprocess
import sys

import pytest
import torch

from geossl.engine import Engine, TrainerConfig
from geossl.graph.minibatch import SeedNodes, SubgraphBatch
from geossl.graph.sampling import induced_subgraph
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
    assert torch.equal(batch.edge_index, induced_subgraph(data.edge_index, batch.node_ids, data.num_nodes))
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
                          (["graph=graphmae", "dataset=cora", "sampler=local_cluster", "sampler.alpha=1.5"], "Bad local clustering")]:
        res = geossl("pretrain", *args, "trainer.epochs=1")
        assert res.returncode != 0 and message in " ".join(res.stderr.split()), (args, res.stderr)


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
