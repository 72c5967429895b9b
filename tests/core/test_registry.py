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
