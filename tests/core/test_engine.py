import math
import os

import pytest
import torch
from torch import nn

from geossl.engine import Engine, TrainerConfig, load_checkpoint
from geossl.errors import CheckpointError, ConfigError, NonFiniteLossError
from geossl.graph.encoders import GAT
from geossl.graph.methods import GraphMAE


class _Graph:
    def __init__(self, n=40, f=30, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.x = (torch.rand(n, f, generator=g) < 0.2).float() * torch.rand(n, f, generator=g)
        src = torch.randint(0, n, (120,), generator=g)
        dst = torch.randint(0, n, (120,), generator=g)
        loops = torch.arange(n)
        self.edge_index = torch.stack([torch.cat([src, loops]), torch.cat([dst, loops])])

    def to(self, device):
        return self


def _cfg(**kw):
    base = dict(epochs=6, lr=1e-2, scheduler="cosine", checkpoint_every=2, monitor_every=1, progress=False, threads=1)
    base.update(kw)
    return TrainerConfig(**base)


def _train(run_dir, cfg, stop_at=None):
    engine = Engine(cfg, run_dir, seed=7, config={"trainer": {"epochs": cfg.epochs}})
    method = GraphMAE(GAT(30, hidden=16, layers=2, heads=2), in_dim=30, mask_rate=0.5, replace_rate=0.2, alpha=2.0)
    calls = []

    def monitor(m):
        calls.append(1)
        if stop_at is not None and len(calls) == stop_at:
            raise KeyboardInterrupt  # a run killed mid-way
        return {"calls": float(len(calls))}

    result = engine.fit(method, [_Graph()], monitor=monitor)
    return method, result


def test_resume_after_interruption_reaches_the_same_weights(tmp_path):
    full, result = _train(tmp_path / "full", _cfg())
    assert result.epochs == 6 and (tmp_path / "full" / "metrics.csv").is_file()
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path / "cut", _cfg(), stop_at=5)  # dies in epoch 5; the checkpoint holds epoch 4
    assert load_checkpoint(tmp_path / "cut")["epoch"] == 4
    resumed, _ = _train(tmp_path / "cut", _cfg(resume=str(tmp_path / "cut")))
    for (name, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name


def test_resume_with_a_different_config_is_refused(tmp_path):
    _train(tmp_path / "run", _cfg(epochs=2))
    with pytest.raises(CheckpointError, match="different config"):
        _train(tmp_path / "run", _cfg(epochs=3, resume=str(tmp_path / "run")))


class _Diverging(nn.Module):
    def __init__(self, bad_epoch):
        super().__init__()
        self.w = nn.Parameter(torch.ones(3))
        self.bad_epoch, self.calls = bad_epoch, 0

    def forward(self, batch):
        self.calls += 1
        loss = (self.w ** 2).sum()
        if self.calls >= self.bad_epoch:
            loss = loss * float("nan")
        return {"loss": loss}


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    engine = Engine(_cfg(epochs=10, checkpoint_every=1), tmp_path, seed=0)
    method = _Diverging(bad_epoch=4)
    with pytest.raises(NonFiniteLossError) as info:
        engine.fit(method, [None])
    msg = str(info.value)
    assert "nan" in msg and "epoch 4" in msg and "checkpoint.pt (epoch 3)" in msg and "trainer.resume" in msg
    ckpt = load_checkpoint(tmp_path)
    assert ckpt["epoch"] == 3
    assert torch.equal(ckpt["model"]["w"], method.w.detach())  # the bad step was not taken


def test_corrupt_checkpoint_is_refused(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot be read safely"):
        load_checkpoint(tmp_path)


def test_checkpoint_with_pickled_objects_is_refused(tmp_path):
    import argparse

    torch.save({"format": "geossl-checkpoint", "version": 1, "x": argparse.Namespace(a=1)}, tmp_path / "checkpoint.pt")
    with pytest.raises(CheckpointError) as refused:
        load_checkpoint(tmp_path)
    # a file the user did not write is never met with torch's advice to load it with weights_only=False
    assert "weights_only" not in str(refused.value) and "will likely succeed" not in str(refused.value)
    assert "refuses to unpickle" in str(refused.value)


def test_bad_trainer_values_are_errors():
    with pytest.raises(ConfigError, match="adam"):
        TrainerConfig(optimizer="adamm")
    with pytest.raises(ConfigError, match="cosine"):
        TrainerConfig(scheduler="linear")


def test_bf16_mixed_precision_runs_the_sparse_paths(tmp_path):
    method, result = _train(tmp_path, _cfg(epochs=2, precision="bf16-mixed"))
    assert result.epochs == 2 and all(torch.isfinite(p).all() for p in method.parameters())
    assert result.last_losses["loss"] > 0


def test_torchrun_environment_fills_in_devices_nodes_and_ddp(monkeypatch):
    from geossl.engine.engine import torchrun_layout

    assert torchrun_layout(1, 1, "auto") == (1, 1, "auto")  # not under torchrun
    monkeypatch.setenv("WORLD_SIZE", "8")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert torchrun_layout(1, 1, "auto") == (4, 2, "ddp")
    assert torchrun_layout(4, 2, "ddp_find_unused_parameters_true") == (4, 2, "ddp_find_unused_parameters_true")  # explicit wins


class _Quadratic(nn.Module):
    """loss = mean over the batch of (w - x)^2, with a second parameter group and an after-step counter."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(3))
        self.b = nn.Parameter(torch.zeros(1))
        self.after = 0

    def forward(self, batch):
        return {"loss": ((self.w - batch) ** 2).mean() + (self.b - 1.0).pow(2).sum()}

    def param_groups(self):
        return [{"params": [self.w]}, {"params": [self.b], "lr_scale": 0.5, "weight_decay": 0.0}]

    def after_step(self):
        self.after += 1


def test_parameter_groups_per_step_warmup_cosine_and_the_after_step_hook(tmp_path):
    cfg = _cfg(epochs=2, optimizer="adamw", lr=0.1, weight_decay=0.01, scheduler="cosine", schedule_every="step", warmup=2)
    engine = Engine(cfg, tmp_path, seed=0)
    method = _Quadratic()
    batches = [torch.full((4, 3), float(i)) for i in range(5)]
    factor = engine.schedule_factor(5)
    assert [round(factor(t), 6) for t in (0, 1, 2)] == [0.5, 1.0, 1.0]  # linear warm-up, then the cosine starts at 1
    assert abs(factor(6) - 0.5) < 1e-9 and factor(10) < 1e-12  # half-way through the 8 cosine steps, and the end
    engine.fit(method, batches)
    assert method.after == 10  # one call per optimiser step
    opt_groups = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["optimizer"]["param_groups"]
    assert [g["weight_decay"] for g in opt_groups] == [0.01, 0.0]
    assert opt_groups[1]["initial_lr"] == pytest.approx(0.05) and opt_groups[0]["initial_lr"] == pytest.approx(0.1)


def test_gradient_accumulation_equals_one_step_on_the_whole_batch(tmp_path):
    batches = [torch.randn(4, 3, generator=torch.Generator().manual_seed(i)) for i in range(4)]
    a, b = _Quadratic(), _Quadratic()
    Engine(_cfg(epochs=1, optimizer="sgd", scheduler="none", accumulate=4), tmp_path / "a", seed=0).fit(a, batches)
    Engine(_cfg(epochs=1, optimizer="sgd", scheduler="none"), tmp_path / "b", seed=0).fit(b, [torch.cat(batches)])
    assert a.after == 1 and torch.allclose(a.w, b.w, atol=1e-6) and torch.allclose(a.b, b.b)
    c = _Quadratic()  # an epoch's last, shorter window steps too
    Engine(_cfg(epochs=1, optimizer="sgd", scheduler="none", accumulate=3), tmp_path / "c", seed=0).fit(c, batches)
    assert c.after == 2


def test_a_param_group_that_leaves_out_parameters_is_refused(tmp_path):
    class Partial(_Quadratic):
        def param_groups(self):
            return [{"params": [self.w]}]

    with pytest.raises(ConfigError, match="leaves out trainable parameters: b"):
        Engine(_cfg(epochs=1), tmp_path, seed=0).fit(Partial(), [torch.zeros(1, 3)])


def test_bad_schedule_and_loop_settings_are_errors():
    with pytest.raises(ConfigError, match="schedule_every"):
        TrainerConfig(schedule_every="batch")
    for key in ("accumulate", "epochs"):
        with pytest.raises(ConfigError, match=f"trainer.{key} must be >= 1"):
            TrainerConfig(**{key: 0})
    with pytest.raises(ConfigError, match="warmup must be >= 0"):
        TrainerConfig(warmup=-1)


class _Noisy(torch.utils.data.Dataset):
    """Items that draw their randomness from the seed the sampler gives them."""

    def __len__(self):
        return 10

    def __getitem__(self, key):
        index, seed = key
        return torch.tensor([float(index)]), torch.rand(2, generator=torch.Generator().manual_seed(seed))


def test_seeded_loader_gives_the_same_items_with_any_number_of_workers(tmp_path):
    seen = {}
    for workers in (0, 2):
        engine = Engine(_cfg(epochs=1, num_workers=workers), tmp_path / str(workers), seed=3)
        loader = engine.loader(_Noisy(), batch_size=4, seeded=True)
        epochs = []
        for epoch in (0, 1):
            loader.sampler.set_epoch(epoch)
            epochs.append([torch.cat([i, r], 1) for i, r in loader])
        seen[workers] = epochs
        assert not torch.equal(torch.cat(epochs[0]), torch.cat(epochs[1]))  # a new order and new draws every epoch
    for e in (0, 1):
        assert all(torch.equal(a, b) for a, b in zip(seen[0][e], seen[2][e]))


def test_the_default_thread_count_leaves_busy_cores_alone(monkeypatch):
    from geossl.engine.engine import default_threads

    cores = len(os.sched_getaffinity(0))
    monkeypatch.setattr(torch, "get_num_threads", lambda: cores)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.1, 0.0, 0.0))
    assert default_threads() == cores  # an idle machine: every core
    assert default_threads(workers=1) == max(cores - 1, 1)  # a core for each loader worker
    assert default_threads(workers=cores + 3) == 1
    monkeypatch.setattr(os, "getloadavg", lambda: (float(cores), 0.0, 0.0))
    assert default_threads() == 1  # every core busy with other work: one thread, not an oversubscribed pool
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(cores))
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert default_threads() == 1  # torchrun's local processes share the cores


class _Staged(_Quadratic):
    """Records the engine's before_epoch calls."""

    def __init__(self):
        super().__init__()
        self.epochs_seen = []

    def before_epoch(self, epoch):
        self.epochs_seen.append(epoch)


def test_before_epoch_is_told_the_finished_epochs_also_when_a_run_resumes(tmp_path):
    batches = [torch.ones(2, 3)]
    method = _Staged()
    Engine(_cfg(epochs=2, checkpoint_every=1), tmp_path, seed=0).fit(method, batches)
    assert method.epochs_seen == [0, 1]
    resumed = _Staged()
    Engine(_cfg(epochs=4, checkpoint_every=1, resume=str(tmp_path)), tmp_path, seed=0).fit(resumed, batches)
    assert resumed.epochs_seen == [2, 3]


def test_num_workers_auto_leaves_a_core_to_training(monkeypatch):
    """trainer.num_workers=auto on 1, 2 and 16 visible cores: 0, 1 and 8 workers; a bad value is refused by name."""
    from geossl.engine import engine

    for cores, workers in ((1, 0), (2, 1), (16, 8), (64, engine.MAX_AUTO_WORKERS)):
        monkeypatch.setattr(engine.os, "sched_getaffinity", lambda pid, n=cores: set(range(n)), raising=False)
        assert TrainerConfig(num_workers="auto").num_workers == workers
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # two torchrun processes share the 16 cores
    assert engine.auto_workers(16) == 7
    with pytest.raises(ConfigError, match="trainer.num_workers"):
        TrainerConfig(num_workers="many")


class _SquaredOutput(nn.Module):
    """A tiny method for the engine: a linear layer whose squared output is the loss."""

    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(3, 1)

    def forward(self, batch):
        return {"loss": self.layer(batch).pow(2).mean()}


def test_progress_lines_appear_without_a_terminal(tmp_path, capsys):
    """Output that is not a terminal gets plain lines: what the run does before its first batch, then the first step
    with its steps per second (not only at the end of an epoch)."""
    torch.manual_seed(0)
    batches = [torch.randn(4, 3) for _ in range(5)]
    Engine(TrainerConfig(epochs=2, progress=True), tmp_path).fit(_SquaredOutput(), batches)
    out = capsys.readouterr().out
    assert "train: 2 epoch(s) to run from epoch 1, 5 batches each, 0 loader worker(s); waiting for the first batch" in out
    assert "train: epoch 1/2 step 1/5 loss=" in out and "steps/s" in out
    assert "train: epoch 2/2 loss=" in out


def test_metrics_csv_keeps_every_finished_epoch_when_a_run_is_killed(tmp_path, monkeypatch):
    """metrics.csv is flushed every epoch: a run killed after epoch 2's checkpoint has epochs 1 and 2 in it (Lightning's
    CSV logger kept up to 100 rows in memory, so they were lost)."""
    import csv

    from tests.conftest import run_killed_after_epoch

    torch.manual_seed(0)
    cfg = TrainerConfig(epochs=4, checkpoint_every=1, progress=False)
    with pytest.raises(KeyboardInterrupt):
        run_killed_after_epoch(monkeypatch, 2, lambda: Engine(cfg, tmp_path).fit(_SquaredOutput(), [torch.randn(4, 3)]))
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert [int(float(r["step"])) for r in rows] == [1, 2]


class _Items(torch.utils.data.Dataset):
    """Items 0..n-1 as ``[index, index, index]`` rows plus a draw from the sampler's per-item seed."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, key):
        index, seed = key
        return torch.full((3,), float(index)) + 0.01 * torch.rand(3, generator=torch.Generator().manual_seed(seed))


class _Recorder(_Quadratic):
    """Records the items (their indices) of every batch it trains on."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, batch):
        self.seen.append(batch[:, 0].round().long().tolist())
        return super().forward(batch)


def _steps_cfg(**kw):
    return _cfg(**{"epochs": None, "steps": 12, "schedule_every": "step", "warmup": 2, "optimizer": "sgd", "lr": 0.1,
                   "checkpoint_every": 4, "monitor_every": 3, **kw})


def test_steps_give_every_fraction_the_same_updates_and_repeat_the_share_reshuffled(tmp_path):
    for n in (2, 8, 40):  # 5%, 20% and all of 40 training items, in batches of 4
        share = _Items(n)
        engine = Engine(_steps_cfg(), tmp_path / str(n), seed=0)
        method = _Recorder()
        result = engine.fit(method, engine.loader(share, batch_size=4, seeded=True))
        assert method.after == 12 and result.steps == 12  # 12 optimiser steps whatever the share
        assert [len(b) for b in method.seen] == [4] * 12  # every batch full: batches run on across a pass's end
        items = [i for b in method.seen for i in b]
        assert result.epochs == pytest.approx(12 / math.ceil(n / 4))
        passes = [items[k:k + n] for k in range(0, len(items) - n + 1, n)]
        assert all(sorted(p) == list(range(n)) for p in passes)  # each pass holds every item of the share once
        if n == 8:
            assert len({tuple(p) for p in passes}) > 1  # reshuffled every pass
        factor = engine.schedule_factor(1)
        assert factor(1) == 1.0 and factor(11) < 0.05  # warm-up and the cosine count the steps
        assert [h[0] for h in engine.monitor_history] == []  # no monitor given


def test_a_run_measured_in_steps_resumes_mid_pass_at_the_same_weights(tmp_path):
    share = _Items(10)  # 3 batches of 4 a pass (the last runs on into the next pass)

    def run(folder, cfg, stop_at=None):
        engine = Engine(cfg, folder, seed=5, config={"trainer": {"steps": cfg.steps}})
        method, calls = _Recorder(), []

        def monitor(m):
            calls.append(1)
            if len(calls) == stop_at:
                raise KeyboardInterrupt
            return {"w": float(m.w.detach().sum())}

        return method, engine.fit(method, engine.loader(share, batch_size=4, seeded=True), monitor=monitor), engine

    full, result, engine = run(tmp_path / "full", _steps_cfg())
    assert [s for s, _ in result.monitor_history] == [3, 6, 9, 12]
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "cut", _steps_cfg(), stop_at=3)  # killed at step 9; the checkpoint holds step 8
    assert load_checkpoint(tmp_path / "cut")["step"] == 8
    resumed, result, _ = run(tmp_path / "cut", _steps_cfg(resume=str(tmp_path / "cut")))
    assert resumed.seen == full.seen[8:]  # the items after step 8, not the pass's start again
    assert torch.equal(resumed.w, full.w) and torch.equal(resumed.b, full.b)
    assert [s for s, _ in result.monitor_history] == [3, 6, 9, 12]


def test_steps_settings_that_cannot_hold_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="Set one of trainer.epochs and trainer.steps"):
        TrainerConfig(epochs=10, steps=100, schedule_every="step")
    with pytest.raises(ConfigError, match="Set one of trainer.epochs and trainer.steps"):
        TrainerConfig(epochs=None, steps=None)
    with pytest.raises(ConfigError, match="schedule_every=step"):
        TrainerConfig(epochs=None, steps=100)
    with pytest.raises(ConfigError, match="trainer.steps must be >= 1"):
        TrainerConfig(epochs=None, steps=0, schedule_every="step")

    class Staged(_Quadratic):
        def before_epoch(self, epoch):
            self.stage = "first" if epoch < 1 else "second"  # a staged method's switch, as Gaussian2Scene's

    with pytest.raises(ConfigError, match="measured in epochs"):
        Engine(_steps_cfg(), tmp_path, seed=0).fit(Staged(), [torch.zeros(1, 3)])


def test_a_list_of_batches_cycles_in_a_run_measured_in_steps(tmp_path):
    method = _Recorder()
    Engine(_steps_cfg(steps=5), tmp_path, seed=0).fit(method, [torch.zeros(2, 3), torch.ones(2, 3)])
    assert method.seen == [[0, 0], [1, 1], [0, 0], [1, 1], [0, 0]] and method.after == 5
