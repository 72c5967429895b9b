"""The README's Python snippet runs as written (extracted from the README, so the two cannot drift apart)."""

import re
from pathlib import Path

import torch

import geossl
from tests.conftest import requires_cora

README = Path(__file__).resolve().parents[2] / "README.md"


@requires_cora
def test_the_readme_snippet_runs_and_gives_the_same_embeddings_every_call(tmp_path, capsys):
    from geossl.graph.encoders import GAT

    snippet = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    torch.manual_seed(0)
    path = geossl.save_encoder(GAT(1433, hidden=16, heads=2, feat_drop=0.5), tmp_path / "encoder.safetensors",
                               metadata={"method": "graphmae", "dataset": "cora"})
    scope = {}
    exec(snippet.replace("runs/graphmae-cora/<timestamp>/encoder.safetensors", str(path)), scope)
    encoder, data = scope["encoder"], scope["data"]
    assert not encoder.training  # eval mode: no dropout
    # bit for bit; assert_close (not torch.equal) so that a failure says how many entries differ and by how much
    torch.testing.assert_close(encoder(data), scope["embeddings"], rtol=0, atol=0)
    assert "'method': 'graphmae'" in capsys.readouterr().out


@requires_cora
def test_prepare_gives_a_users_graph_the_pretraining_input():
    """Cora as a user might hold it (no self-loops, raw word indicators) gives, after prepare(), the embeddings of the
    graph the encoder was trained on."""
    from torch_geometric.utils import remove_self_loops

    from geossl.graph import load_dataset, prepare
    from geossl.graph.encoders import GAT

    data = load_dataset("cora").data
    torch.manual_seed(0)
    encoder = GAT(1433, hidden=16, heads=2).eval()
    raw = data.clone()
    raw.edge_index = remove_self_loops(raw.edge_index)[0]
    raw.x = (data.x > 0).float()  # Cora's raw bag of words, before the row normalisation
    with torch.no_grad():
        want = encoder(data)
        assert not torch.allclose(encoder(raw), want, atol=1e-3)  # unprepared: different embeddings
        assert torch.allclose(encoder(prepare(raw, normalize_features=True)), want, atol=1e-5)
        assert torch.equal(prepare(data).edge_index.sort(1).values, data.edge_index.sort(1).values)
