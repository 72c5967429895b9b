"""GraphMAE2's options on the GraphMAE method: random re-mask views and EMA latent prediction."""

import torch
from torch_geometric.data import Batch, Data

from geossl.graph.encoders import GIN
from geossl.graph.methods import GraphMAE
from geossl.registry import METHODS


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    graphs = []
    for n in (6, 9, 7):
        src = torch.randint(0, n, (3 * n,), generator=g)
        dst = torch.randint(0, n, (3 * n,), generator=g)
        graphs.append(Data(x=torch.rand(n, 5, generator=g), edge_index=torch.stack([torch.cat([src, dst]), torch.cat([dst, src])])))
    return Batch.from_data_list(graphs)


def _method(**kw):
    torch.manual_seed(0)
    enc = GIN(in_dim=5, hidden=16, layers=2, dropout=0.0)
    return GraphMAE(enc, in_dim=5, mask_rate=0.5, replace_rate=0.0, alpha=2.0, decoder="gin", **kw)


def test_graphmae2_is_the_same_method_under_its_own_name():
    assert METHODS.get("graphmae2") is METHODS.get("graphmae") is GraphMAE


def test_random_remask_views_each_use_the_decoder_token_and_are_summed():
    batch = _batch()
    one = _method(remask="random", num_remask=1, remask_rate=0.5)
    three = _method(remask="random", num_remask=3, remask_rate=0.5)
    assert "decoder_mask_token" in dict(three.named_parameters())
    torch.manual_seed(1)
    l1 = one(batch)["sce"]
    torch.manual_seed(1)
    l3 = three(batch)["sce"]
    assert 2.0 * l1 < l3 < 4.0 * l1  # three views' errors, summed
    three(batch)["loss"].backward()
    assert three.decoder_mask_token.grad is not None and three.decoder_mask_token.grad.abs().sum() > 0


def test_latent_prediction_against_an_ema_target():
    batch = _batch()
    m = _method(lam=0.5, momentum=0.9)
    assert all(not p.requires_grad for p in m.target_encoder.parameters())
    student0 = [p.detach().clone() for p in m.encoder.parameters()]
    out = m(batch)
    assert set(out) == {"loss", "sce", "latent"}
    assert torch.allclose(out["loss"], out["sce"] + 0.5 * out["latent"])
    out["loss"].backward()
    assert all(p.grad is None for p in m.target_encoder.parameters())
    target_before = [t.detach().clone() for t in m.target_encoder.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(target_before, m.target_encoder.parameters()))  # not in forward
    with torch.no_grad():
        for p in m.encoder.parameters():
            p.add_(1.0)  # the optimiser's step of the student
    m.after_step()  # what the engine calls after every optimiser step
    for t0, t1, p in zip(target_before, m.target_encoder.parameters(), student0):
        # the student's weights of the forward pass (before the step), as the reference's ema_update in forward
        assert torch.allclose(t1, 0.9 * t0 + 0.1 * p)
    moved = [t.detach().clone() for t in m.target_encoder.parameters()]
    m.after_step()  # no forward since: nothing to average in
    assert all(torch.equal(a, b) for a, b in zip(moved, m.target_encoder.parameters()))
    # momentum 0 copies the student into the target at every step
    copy = _method(lam=1.0, momentum=0.0)
    with torch.no_grad():
        for p in copy.encoder.parameters():
            p.mul_(2.0)
    copy(batch)
    copy.after_step()
    assert all(torch.equal(t, p) for t, p in zip(copy.target_encoder.parameters(), copy.encoder.parameters()))
    assert student0  # the student itself is untouched by the EMA


def test_plain_graphmae_has_no_graphmae2_parts():
    m = _method()
    names = dict(m.named_parameters())
    assert not any(k.startswith(("target_", "projector", "predictor", "decoder_mask_token")) for k in names)
    assert set(m(_batch())) == {"loss", "sce"}


def test_the_target_reads_the_clean_features_through_the_sparse_path_unchanged():
    from geossl.graph.encoders import CSRRows, MaskedFeatures

    batch = _batch()
    enc = GIN(in_dim=5, hidden=16, layers=2, dropout=0.0).eval()
    n = batch.x.shape[0]
    clean = MaskedFeatures(CSRRows.from_dense(batch.x), torch.arange(n), torch.zeros(1, 5), torch.empty(0, dtype=torch.long))
    assert torch.allclose(enc(batch, clean), enc(batch), atol=1e-6)
