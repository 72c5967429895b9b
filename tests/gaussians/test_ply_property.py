"""Property test of the 3DGS PLY reader: read correctly or refused with geossl's error."""


import torch
from hypothesis import given

from geossl.gaussians import GaussianSet
from geossl.gaussians.ply import load_ply, save_ply
from tests.property import read_or_refuse, variants


def _valid() -> bytes:
    g = GaussianSet.from_points(torch.rand(5, 3, generator=torch.Generator().manual_seed(0)), torch.rand(5, 3), sh_degree=1)
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        save_ply(g, Path(d) / "g.ply")
        return (Path(d) / "g.ply").read_bytes()


VALID = _valid()


def _check(g):
    assert isinstance(g, GaussianSet) and g.means.shape[1] == 3 and g.sh_dc.shape == (len(g), 1, 3)


def test_a_saved_splat_reads_back():
    read_or_refuse(load_ply, VALID, "g.ply", lambda g: (_check(g), len(g) == 5 and g.sh_degree == 1 or (_ for _ in ()).throw(AssertionError)))


@given(variants(VALID))
def test_3dgs_ply(data):
    read_or_refuse(load_ply, data, "g.ply", _check)
