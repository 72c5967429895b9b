"""Point batches: collate, voxelise / devoxelise, bad input; and a voxelised batch through a sparse conv."""

import pytest
import torch

from geossl.points import PointBatchError, collate, devoxelize


def _scene(n, seed, extent=1.0):
    g = torch.Generator().manual_seed(seed)
    return {"coord": torch.rand(n, 3, generator=g) * extent, "feat": torch.rand(n, 3, generator=g),
            "labels": torch.randint(0, 5, (n,), generator=g)}


def test_collate_concatenates_with_cumulative_offsets():
    b = collate([_scene(10, 0), _scene(7, 1), _scene(3, 2)])
    assert b.offset.tolist() == [10, 17, 20] and b.batch_size == 3 and b.coord.shape == (20, 3) and b.labels.shape == (20,)
    assert b.batch_index.tolist() == [0] * 10 + [1] * 7 + [2] * 3
    assert b.to("cpu").coord.data_ptr() == b.coord.data_ptr()


def test_voxelize_devoxelize_round_trip():
    # points at distinct voxel centres: every voxel holds one point, so the round trip is exact
    cells = torch.tensor([[0, 0, 0], [1, 0, 0], [0, 2, 1], [3, 3, 3]])
    s = {"coord": (cells.float() + 0.5) * 0.05, "feat": torch.arange(12.0).reshape(4, 3)}
    b = collate([s, {"coord": s["coord"] + 10.0, "feat": s["feat"] + 100}])
    idx, feats, inverse, shape = b.voxelize(0.05)
    assert len(idx) == 8 and idx.dtype == torch.int32 and idx.is_contiguous()
    assert torch.equal(devoxelize(feats, inverse), b.feat)
    assert shape == [4, 4, 4]  # z, y, x extents of the (per-scene, min-shifted) voxels
    assert sorted(idx[idx[:, 0] == 0][:, 1:].tolist()) == sorted(cells[:, [2, 1, 0]].tolist())
    # two points in one voxel share the mean of their features
    two = collate([{"coord": torch.tensor([[0.01, 0.01, 0.01], [0.02, 0.02, 0.02], [0.5, 0.5, 0.5]]),
                    "feat": torch.tensor([[1.0], [3.0], [7.0]])}])
    _, f, inv, _ = two.voxelize(0.1)
    assert devoxelize(f, inv).view(-1).tolist() == [2.0, 2.0, 7.0]


def test_bad_point_input_is_refused():
    with pytest.raises(PointBatchError, match="scene 1 has no points"):
        collate([_scene(5, 0), {"coord": torch.zeros(0, 3), "feat": torch.zeros(0, 3)}])
    b = collate([_scene(5, 0)])
    with pytest.raises(PointBatchError, match="voxel_size must be > 0"):
        b.voxelize(0.0)
    bad = collate([_scene(5, 0)])
    bad.coord[2, 1] = float("nan")
    with pytest.raises(PointBatchError, match="NaN"):
        bad.voxelize(0.1)
    with pytest.raises(PointBatchError, match="more than the configured grid"):
        collate([_scene(50, 0, extent=10.0)]).voxelize(0.1, grid=[16, 16, 16])


def test_a_voxelised_batch_runs_through_a_sparse_conv():
    from geossl.ops.sparse import SparseConv3d, sparse_tensor

    b = collate([_scene(300, 0), _scene(200, 1)])
    idx, feats, inverse, shape = b.voxelize(0.1)
    out = SparseConv3d(3, 8, 3, padding=1, subm=True)(sparse_tensor(feats, idx, shape, b.batch_size))
    per_point = devoxelize(out.features, inverse)
    assert per_point.shape == (500, 8) and torch.isfinite(per_point).all()
