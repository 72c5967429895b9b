"""kNN, farthest-point sampling and Chamfer distance against brute force."""

import pytest
import torch

from geossl.ops.geometry import GeometryError, chamfer_distance, farthest_point_sampling, knn


def _cloud(n, seed):
    return torch.rand(n, 3, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("k", [1, 5])
def test_knn_matches_brute_force_across_chunks(k):
    q, p = _cloud(300, 0), _cloud(500, 1)
    d, i = knn(q, p, k, chunk=64)
    full = ((q[:, None] - p[None]) ** 2).sum(-1)
    ref = full.sort(1)
    assert d.shape == i.shape == (300, k)
    assert torch.allclose(d, ref.values[:, :k], atol=1e-5)
    assert torch.equal(i, ref.indices[:, :k])


def test_batched_knn_matches_each_row():
    q, p = torch.stack([_cloud(40, 2), _cloud(40, 3)]), torch.stack([_cloud(70, 4), _cloud(70, 5)])
    for k in (1, 3):
        d, i = knn(q, p, k, chunk=16)
        for b in range(2):
            db, ib = knn(q[b], p[b], k)
            assert torch.allclose(d[b], db) and torch.equal(i[b], ib)


def test_farthest_point_sampling_is_the_greedy_farthest_choice():
    p = _cloud(200, 2)
    idx = farthest_point_sampling(p, 20)
    assert idx[0] == 0 and len(set(idx.tolist())) == 20
    for j in range(1, 20):  # each pick is the point farthest from the ones before it
        dist = torch.cdist(p, p[idx[:j]]).min(1).values
        assert torch.isclose(dist[idx[j]], dist.max())
    corners = torch.tensor([[0.0, 0, 0], [1.0, 1, 1], [0.5, 0.5, 0.5], [1.0, 0, 0]])
    assert farthest_point_sampling(corners, 2).tolist() == [0, 1]


def test_chamfer_matches_brute_force_in_value_and_gradient():
    a, b = _cloud(400, 3).requires_grad_(), _cloud(300, 4).requires_grad_()
    cd = chamfer_distance(a, b, chunk=50)
    a2, b2 = a.detach().clone().requires_grad_(), b.detach().clone().requires_grad_()
    d = ((a2[:, None] - b2[None]) ** 2).sum(-1)
    ref = d.min(1).values.mean() + d.min(0).values.mean()
    assert torch.allclose(cd, ref, atol=1e-6)
    cd.backward()
    ref.backward()
    assert torch.allclose(a.grad, a2.grad, atol=1e-6) and torch.allclose(b.grad, b2.grad, atol=1e-6)
    assert chamfer_distance(a.detach(), a.detach()) == 0


def _chamfer_peak_growth_mb(n):
    """Peak resident-memory growth of one Chamfer evaluation, in a fresh process (the test
    process's own peak would hide it)."""
    import subprocess
    import sys

    code = (
        "import resource, torch\n"
        "from geossl.ops.geometry import chamfer_distance\n"
        f"a = torch.rand({n}, 3); b = torch.rand({n}, 3)\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "assert chamfer_distance(a, b, chunk=512) > 0\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def test_chamfer_memory_stays_bounded_for_20k_points():
    assert _chamfer_peak_growth_mb(20_000) < 300  # a dense 20k x 20k matrix would need 1.6 GB


@pytest.mark.slow
def test_chamfer_memory_stays_bounded_for_100k_points():
    assert _chamfer_peak_growth_mb(100_000) < 1024  # dense: 40 GB


def test_bad_point_sets_are_refused():
    with pytest.raises(GeometryError, match="empty"):
        chamfer_distance(torch.zeros(0, 3), _cloud(3, 0))
    with pytest.raises(GeometryError, match="NaN"):
        knn(_cloud(3, 0) * float("nan"), _cloud(3, 1), 1)
    with pytest.raises(GeometryError, match="k = 5 neighbours asked of 3 points"):
        knn(_cloud(3, 0), _cloud(3, 1), 5)
    with pytest.raises(GeometryError, match="cannot sample 4 points from 3"):
        farthest_point_sampling(_cloud(3, 0), 4)


@pytest.mark.parametrize("shape", [(1, 2048, 2048), (3, 100, 640), (5, 128), (2, 7, 4096), (4, 100)])
def test_blockwise_argmin_is_argmin_ties_included(shape):
    from geossl.ops.geometry import argmin_rows

    d = torch.rand(*shape, generator=torch.Generator().manual_seed(0)).round(decimals=2)  # many ties
    assert torch.equal(argmin_rows(d), d.argmin(-1))
