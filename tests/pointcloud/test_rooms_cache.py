"""The on-disk room cache (geossl.pointcloud.rooms.cached_room): it serves the same tensors as make_room, reads
rather than remakes, keys on the settings, and replaces any cache file it cannot trust (property-tested)."""

import tempfile
import tracemalloc
from pathlib import Path

import pytest
import torch
from hypothesis import given
from safetensors.torch import save_file

from geossl.pointcloud import rooms as rooms_module
from geossl.pointcloud.rooms import ROOM_SETTINGS, RoomsError, cached_room, make_room, room_cache_folder
from tests.property import memory_bound, variants

SMALL = dict(num_points=400, num_views=2, width=32, height=24)


def assert_same_room(a, b):
    for k in ("coord", "feat", "normal", "semantic", "instance", "boxes", "box_instance", "room_size"):
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k
    assert a["name"] == b["name"] and a["frames"].name == b["frames"].name
    assert len(a["frames"].frames) == len(b["frames"].frames)
    for fa, fb in zip(a["frames"].frames, b["frames"].frames):
        assert fa.name == fb.name
        for k in ("color", "depth", "K", "cam_to_world"):
            assert torch.equal(getattr(fa, k), getattr(fb, k)), k


def cache_file(seed, **settings):
    return room_cache_folder(**{**ROOM_SETTINGS, **settings}) / f"{seed}.safetensors"


def test_the_cached_room_is_the_made_room_and_is_read_back(monkeypatch):
    made = make_room(5, **SMALL)
    first = cached_room(5, **SMALL)
    assert cache_file(5, **SMALL).is_file()
    monkeypatch.setattr(rooms_module, "make_room", lambda *a, **k: pytest.fail("the room was made again"))
    second = cached_room(5, **SMALL)
    assert_same_room(made, first)
    assert_same_room(made, second)


def test_other_settings_get_a_folder_of_their_own_and_unknown_settings_are_refused():
    assert cache_file(1, **SMALL).parent != cache_file(1, **{**SMALL, "color_noise": 0.0}).parent
    no_views = cached_room(1, **{**SMALL, "num_views": 0})
    assert no_views["frames"].frames == [] and len(no_views["coord"]) == 400
    with pytest.raises(RoomsError, match="Valid: num_points"):
        cached_room(1, num_point=10)


def test_a_room_of_another_seed_in_the_file_is_not_served():
    cached_room(7, **SMALL)
    cache_file(8, **SMALL).write_bytes(cache_file(7, **SMALL).read_bytes())
    assert_same_room(cached_room(8, **SMALL), make_room(8, **SMALL))


def test_a_file_of_other_shapes_is_not_served():
    path = cache_file(9, **SMALL)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"coord": torch.zeros(3, 3)}, str(path), metadata={"name": "rooms-seed9", "views": "view000,view001"})
    assert_same_room(cached_room(9, **SMALL), make_room(9, **SMALL))


def test_a_file_whose_data_changed_is_not_served():
    cached_room(4, **SMALL)
    path = cache_file(4, **SMALL)
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF  # a byte of the last tensor's data; the header still parses
    path.write_bytes(bytes(data))
    assert_same_room(cached_room(4, **SMALL), make_room(4, **SMALL))
    assert path.read_bytes() != bytes(data)  # and the file was made again


def test_a_file_whose_view_names_changed_is_not_served():
    cached_room(6, **SMALL)
    path = cache_file(6, **SMALL)
    data = path.read_bytes()
    assert data.count(b"view000") == 1  # in the header's metadata, which stays valid JSON after the edit
    path.write_bytes(data.replace(b"view000", b" iew000"))  # the change Hypothesis found
    assert_same_room(cached_room(6, **SMALL), make_room(6, **SMALL))


def test_the_rooms_dataset_serves_the_same_items_with_and_without_the_cache():
    from geossl.pointcloud.datasets import rooms

    plain = rooms("train", splits={"train": [0, 2]}, views=1, **SMALL)
    cached = rooms("train", splits={"train": [0, 2]}, views=1, cache=True, **SMALL)
    for item in (0, 1, 0):
        a, b = plain[(item, 3)], cached[(item, 3)]
        assert torch.equal(a["coord"], b["coord"]) and torch.equal(a["labels"], b["labels"])
        assert torch.equal(a["views"][0].color, b["views"][0].color)


def _valid_bytes() -> bytes:
    """The cache file of room 3, written to a temporary folder (this runs when tests are collected, before the
    private cache is set up)."""
    with tempfile.TemporaryDirectory() as folder:
        rooms_module._write_cached_room(Path(folder) / "3.safetensors", make_room(3, **SMALL))
        return (Path(folder) / "3.safetensors").read_bytes()


VALID = _valid_bytes()


@given(variants(VALID))
def test_any_cache_file_gives_the_right_room_within_a_memory_bound(data):
    path = cache_file(3, **SMALL)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    tracemalloc.start()
    try:
        room = cached_room(3, **SMALL)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak <= memory_bound(len(VALID))
    assert_same_room(room, make_room(3, **SMALL))
