import json

import pytest
import torch
from safetensors.torch import save_file

import geossl
from geossl.errors import CheckpointError
from geossl.graph.encoders import GAT, GCN, GIN


class _Graph:
    def __init__(self, n=12, f=9, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.rand(n, f, generator=g)
        src = torch.randint(0, n, (30,), generator=g)
        dst = torch.randint(0, n, (30,), generator=g)
        loops = torch.arange(n)
        self.edge_index = torch.stack([torch.cat([src, loops]), torch.cat([dst, loops])])
        self.num_nodes = n


@pytest.mark.parametrize("build", [
    lambda: GAT(9, hidden=16, layers=2, heads=2),
    lambda: GCN(9, hidden=16, layers=2),
    lambda: GIN(9, hidden=16, layers=3, norm="batchnorm"),
])
def test_save_load_round_trip_gives_identical_outputs(tmp_path, build):
    torch.manual_seed(0)
    enc = build()
    data = _Graph()
    enc.train()
    for _ in range(2):  # move batch-norm statistics away from their defaults
        enc(data)
    enc.eval()
    path = geossl.save_encoder(enc, tmp_path / "enc.safetensors", metadata={"dataset": "toy", "method": "test"})
    loaded = geossl.load_encoder(path)
    assert type(loaded) is type(enc) and loaded.config() == enc.config()
    assert loaded.pretrained == {"dataset": "toy", "method": "test"}
    loaded.eval()
    assert torch.equal(loaded(data), enc(data))


def test_header_records_name_config_and_version(tmp_path):
    enc = GAT(9, hidden=8, layers=1, heads=2)
    path = geossl.save_encoder(enc, tmp_path / "e.safetensors")
    header = geossl.encoder.read_encoder_header(path)
    assert header["encoder"] == "gat" and header["config"]["hidden"] == 8 and header["geossl_version"] == geossl.__version__
    assert header["out_dim"] == 8


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        geossl.load_encoder(tmp_path / "nope.safetensors")


def test_corrupt_file_is_refused(tmp_path):
    path = geossl.save_encoder(GCN(4, hidden=4), tmp_path / "e.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        geossl.load_encoder(path)
    path.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError):
        geossl.load_encoder(path)


def test_foreign_safetensors_is_refused(tmp_path):
    path = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(CheckpointError, match="not a geossl encoder"):
        geossl.load_encoder(path)


def test_the_header_module_is_never_imported_and_only_registered_encoders_are_built(tmp_path):
    import sys

    path = geossl.save_encoder(GCN(4, hidden=4), tmp_path / "e.safetensors")
    header = geossl.encoder.read_encoder_header(path)
    from safetensors.torch import load_file

    header["module"] = "geossl.__main__"  # importing it would run the CLI
    save_file(load_file(str(path)), str(path), metadata={"geossl": json.dumps(header)})
    sys.modules.pop("geossl.__main__", None)
    assert geossl.load_encoder(path).config()["hidden"] == 4
    assert "geossl.__main__" not in sys.modules
    header["encoder"] = "os"
    save_file(load_file(str(path)), str(path), metadata={"geossl": json.dumps(header)})
    with pytest.raises(CheckpointError, match="Unknown encoder 'os'. Valid encoders: gat, gcn, gin"):
        geossl.load_encoder(path)


def test_header_sizes_are_checked_against_the_stored_tensors_before_allocating(tmp_path):
    import resource

    path = geossl.save_encoder(GCN(4, hidden=4), tmp_path / "e.safetensors")
    header = geossl.encoder.read_encoder_header(path)
    from safetensors.torch import load_file

    weights = load_file(str(path))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    header["config"]["hidden"] = 100_000  # would ask for 40 GB for its second weight matrix
    save_file(weights, str(path), metadata={"geossl": json.dumps(header)})
    with pytest.raises(CheckpointError, match="asks for sizes \\{'hidden': 100000\\} larger than the 40 numbers the file stores"):
        geossl.load_encoder(path)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB: nothing big was allocated
    header["config"]["hidden"] = 9  # a plausible size: built without memory, its shapes compared with the stored ones
    save_file(weights, str(path), metadata={"geossl": json.dumps(header)})
    with pytest.raises(CheckpointError, match="do not fit encoder 'gcn'.*stored"):
        geossl.load_encoder(path)
    header["config"]["hidden"] = -3
    save_file(weights, str(path), metadata={"geossl": json.dumps(header)})
    with pytest.raises(CheckpointError, match="does not fit encoder 'gcn'"):
        geossl.load_encoder(path)


def test_weights_that_do_not_fit_are_refused(tmp_path):
    path = geossl.save_encoder(GCN(4, hidden=4), tmp_path / "e.safetensors")
    header = geossl.encoder.read_encoder_header(path)
    header["config"]["hidden"] = 8
    from safetensors.torch import load_file

    save_file(load_file(str(path)), str(path), metadata={"geossl": json.dumps(header)})
    with pytest.raises(CheckpointError, match="do not fit"):
        geossl.load_encoder(path)
