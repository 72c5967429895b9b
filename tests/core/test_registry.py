import pytest

from geossl.errors import UnknownNameError
from geossl.registry import ENCODERS, METHODS, Registry


def test_unknown_name_lists_valid_names():
    import geossl.graph  # noqa: F401  (registers)

    with pytest.raises(UnknownNameError) as info:
        ENCODERS.get("gatt")
    msg = str(info.value)
    assert "gat" in msg and "gcn" in msg and "gin" in msg and "Did you mean 'gat'" in msg
    with pytest.raises(UnknownNameError, match="graphmae"):
        METHODS.get("nope")


def test_double_registration_is_an_error():
    class A:
        pass

    class B:
        pass

    reg = Registry("thing")
    reg.register("a")(A)
    with pytest.raises(ValueError):
        reg.register("a")(B)
    assert reg.get("A") is A and reg.names() == ["a"]


def test_names_of_another_domain_are_refused_with_this_domains_names():
    with pytest.raises(UnknownNameError, match="'spunet' is a scene encoder, and this is a graph run. Valid graph encoders: gat, gcn, gin"):
        ENCODERS.get("spunet", domain="graph")
    with pytest.raises(UnknownNameError, match="'gat' is a graph encoder, and this is a scene run. Valid scene encoders: "
                                               "point_patch_transformer, spunet"):
        ENCODERS.get("gat", domain="scene")
    with pytest.raises(UnknownNameError, match="Valid scene methods: gaussian2scene, pimae, pointmae"):
        METHODS.get("graphmea", domain="scene")
    assert ENCODERS.domain("spunet") == "scene" and METHODS.domain("graphmae2") == "graph"


def test_import_geossl_alone_finds_every_registered_name():
    """A fresh interpreter that imports only geossl finds the scene and graph names (lazily, through the
    geossl.domains entry points)."""
    import subprocess
    import sys

    code = ("import geossl, sys; from geossl.registry import ENCODERS, DATASETS; "
            "assert 'geossl.pointcloud' not in sys.modules; "
            "print(ENCODERS.get('spunet').__name__, ENCODERS.get('gat').__name__, 'rooms' in DATASETS, DATASETS.domain('cora'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["SpUNet", "GAT", "True", "graph"]


def test_a_refusal_message_must_say_something():
    """tests/property.py's check of a refusal: an empty message failed to fail before (``A and B or C``)."""
    from tests.property import message_is_clean

    assert message_is_clean("Scene file x.npz: points is not a float array.")
    assert message_is_clean("one\ntwo\nthree")
    assert not message_is_clean("")
    assert not message_is_clean("  \n ")
    assert not message_is_clean("1\n2\n3\n4")
