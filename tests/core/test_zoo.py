"""The encoder zoo: every shipped file loads by name, is checked by its sha256, embeds the fixed input to its recorded
checksum and reproduces its recorded check evaluation; bad names and changed bytes are refused."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from geossl import load_encoder, zoo
from geossl.errors import CheckpointError, UnknownNameError
from tests.conftest import requires_cora

DATA = Path(os.environ.get("GEOSSL_DATA", "../shared/data"))
requires_mutag = pytest.mark.skipif(not (DATA / "tudataset" / "MUTAG" / "raw").is_dir(), reason="MUTAG not under $GEOSSL_DATA")
NEEDS = {"graphmae-cora": [requires_cora], "graphmae-mutag": [requires_mutag]}
ENTRIES = [pytest.param(n, marks=NEEDS.get(n, [])) for n in zoo.names()]


def test_the_zoo_ships_its_entries_with_cards():
    assert {"graphmae-cora", "graphmae-mutag", "pointmae-rooms", "gaussian2scene-rooms", "gaussian2scene-spunet-rooms"} <= set(zoo.names())
    for name in zoo.names():
        card = zoo.card(name)
        file = zoo.path(name)  # sha256 checked against the card
        assert file.stat().st_size == card["bytes"] and card["command"].startswith("geossl pretrain ")
        assert card["recorded"]["value"] == card["recorded"]["value"] and card["commit"]  # a number (not NaN), a commit
        assert file.stat().st_size < 10e6


def test_zoo_names_never_stand_for_registry_names():
    from geossl.pipeline import TASKS  # noqa: F401 - registers the tasks
    from geossl.registry import DATASETS, ENCODERS, load_domain

    load_domain("graph"), load_domain("scene")
    assert not any("-" in n for n in ENCODERS.names())  # encoder=<hyphenated word> is always a zoo lookup
    for name in zoo.names():
        assert "-" in name and name not in ENCODERS.names() and name not in DATASETS.names()


@pytest.mark.parametrize("name", ENTRIES)
def test_each_entry_loads_embeds_to_its_checksum_and_reproduces_its_check(name):
    from geossl.pipeline import configure

    card = zoo.card(name)
    encoder = load_encoder(name)
    assert encoder.pretrained == card and not encoder.training
    got = zoo.output_checksum(encoder, card["domain"])
    for key in ("sum", "abs_sum"):
        want = card["checksum"][key]
        assert abs(got[key] - want) <= card["checksum"]["tolerance"] * max(1.0, abs(want)), (key, got, card["checksum"])
    check = card["check"]
    task, cfg, adapter = configure("evaluate", [f"encoder={name}", *check["overrides"], "trainer.threads=1"])
    summary = task.run(cfg, adapter)
    assert abs(float(summary[check["key"]]) * check["scale"] - check["value"]) <= check["tolerance"], (summary[check["key"]], check)


def test_unknown_names_list_the_zoo_and_changed_bytes_are_refused(tmp_path, monkeypatch):
    with pytest.raises(UnknownNameError, match="Unknown zoo encoder 'pointmae-roomz'. Zoo encoders: .*pointmae-rooms"):
        load_encoder("pointmae-roomz")
    # a file of that name in the working directory is a file, not a zoo lookup
    assert zoo.resolve(tmp_path / "pointmae-rooms") == tmp_path / "pointmae-rooms"
    changed = tmp_path / "zoo"
    shutil.copytree(zoo.ZOO_DIR, changed, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    file = changed / zoo.card("graphmae-mutag")["file"]
    data = bytearray(file.read_bytes())
    data[-1] ^= 1  # one bit of one weight
    file.write_bytes(bytes(data))
    monkeypatch.setattr(zoo, "ZOO_DIR", changed)
    with pytest.raises(CheckpointError, match="has sha256 .* and its card records .*not loaded"):
        load_encoder("graphmae-mutag")


def test_geossl_encoders_lists_the_cards_and_a_bad_zoo_name_is_a_clean_cli_error(tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "geossl", *a], capture_output=True, text=True, cwd=tmp_path, timeout=300)  # noqa: E731
    res = run("encoders")
    assert res.returncode == 0, res.stderr
    for name in zoo.names():
        assert f"`{name}`" in res.stdout and zoo.card(name)["sha256"][:12] in res.stdout
    cards = json.loads(run("encoders", "--json").stdout)
    assert [c["name"] for c in cards] == zoo.names()
    res = run("finetune", "detection=votenet", "dataset=rooms", "encoder=pointmae-room")
    assert res.returncode == 2 and res.stderr.startswith("geossl: error: Unknown zoo encoder 'pointmae-room'"), res.stderr
    assert "Traceback" not in res.stderr


def test_a_detector_fine_tunes_from_a_zoo_encoder_by_name(tmp_path):
    from tests.cli.test_cli import TINY_DETECTION

    # the zoo encoder's 64 patches of 32 points need 2048 points per scene
    tiny = [o for o in TINY_DETECTION if not o.startswith(("encoder.", "transform.points="))] + ["transform.points=2048"]
    res = subprocess.run([sys.executable, "-m", "geossl", "finetune", "detection=votenet", "dataset=rooms", "encoder=pointmae-rooms",
                          f"run_dir={tmp_path / 'det'}", *tiny], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stderr
    summary = json.loads((tmp_path / "det" / "summary.json").read_text())
    assert summary["encoder"] == "pointmae-rooms" and summary["pretraining"] == "pointmae"
