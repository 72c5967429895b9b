"""Property tests of the encoder and checkpoint readers: a mutated file loads to a working encoder or
checkpoint, or is refused with geossl's error (CheckpointError), never another exception or a large allocation."""

import json
import tempfile
from pathlib import Path

import torch
from hypothesis import given
from hypothesis import strategies as st

import geossl
from geossl.engine.checkpoint import load_checkpoint, save_checkpoint
from geossl.graph.encoders import GCN
from tests.property import read_or_refuse, variants


def _encoder_bytes() -> bytes:
    with tempfile.TemporaryDirectory() as d:
        geossl.save_encoder(GCN(4, hidden=4), Path(d) / "e.safetensors", metadata={"method": "test"})
        return (Path(d) / "e.safetensors").read_bytes()


def _checkpoint_bytes() -> bytes:
    with tempfile.TemporaryDirectory() as d:
        save_checkpoint(Path(d) / "checkpoint.pt", {"epoch": 3, "model": {"w": torch.ones(2, 2)}, "losses": {"loss": 0.5}})
        return (Path(d) / "checkpoint.pt").read_bytes()


ENCODER, CHECKPOINT = _encoder_bytes(), _checkpoint_bytes()


def _works(encoder):
    assert not encoder.training and encoder(_graph()).shape == (3, encoder.out_dim)


def _graph():
    from torch_geometric.data import Data

    return Data(x=torch.rand(3, 4), edge_index=torch.tensor([[0, 1, 2], [1, 2, 0]]))


@given(variants(ENCODER))
def test_encoder_files(data):
    read_or_refuse(geossl.load_encoder, data, "e.safetensors", _works)


def _header_variants():
    """Valid safetensors files whose geossl header is changed: configs with other sizes, foreign names and modules."""
    from safetensors.torch import load_file, save_file

    base = json.loads(__import__("safetensors").safe_open(_tmp_file(ENCODER), "pt").metadata()["geossl"])
    values = st.one_of(st.integers(-10, 10**9), st.floats(allow_nan=True), st.text(max_size=12), st.none(), st.lists(st.integers(), max_size=3))
    keys = st.sampled_from(["in_dim", "hidden", "layers", "dropout", "activation", "norm", "out_dim", "bogus"])

    def build(change):
        header = json.loads(json.dumps(base))
        where, key, value = change
        if where == "config":
            header["config"][key] = value
        else:
            header[where] = value
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "x.safetensors"
            save_file(load_file(_tmp_file(ENCODER)), str(path), metadata={"geossl": json.dumps(header)})
            return path.read_bytes()

    return st.tuples(st.sampled_from(["config", "encoder", "module", "format_version", "config"]), keys, values).map(build)


_TMP = tempfile.mkdtemp()


def _tmp_file(data: bytes) -> str:
    path = Path(_TMP) / "valid.safetensors"
    path.write_bytes(data)
    return str(path)


@given(_header_variants())
def test_encoder_headers(data):
    read_or_refuse(geossl.load_encoder, data, "e.safetensors", _works)


def _checkpoint_ok(ckpt):
    assert ckpt["format"] == "geossl-checkpoint" and isinstance(ckpt, dict)


@given(variants(CHECKPOINT))
def test_checkpoint_files(data):
    read_or_refuse(load_checkpoint, data, "checkpoint.pt", _checkpoint_ok)
