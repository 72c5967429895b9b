"""The Python snippet of docs/detection.md runs as written (a saved encoder stands in for the pretrained one)."""

import re
from pathlib import Path

import geossl
from geossl.pointcloud.encoders import PointPatchTransformer

DOC = Path(__file__).resolve().parents[3] / "docs" / "detection.md"


def test_the_detection_snippet_runs(tmp_path, monkeypatch):
    snippet = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    path = geossl.save_encoder(PointPatchTransformer(centres=16, patch=32, dim=32, depth=1, tokeniser=8), tmp_path / "enc.safetensors")
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(snippet.replace("runs/pointmae-rooms/<stamp>/encoder.safetensors", str(path)), scope)
    assert scope["boxes"]["boxes"].shape[1] == 7 and (tmp_path / "my_detector.safetensors").is_file()
