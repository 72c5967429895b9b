"""The encoder zoo: pretrained encoders shipped inside geossl, loaded by name.

``geossl.load_encoder("pointmae-rooms")`` (and ``encoder=pointmae-rooms`` wherever a saved encoder file is accepted,
e.g. ``geossl finetune detection=votenet dataset=rooms encoder=pointmae-rooms``) loads the zoo file of that name after
checking its sha256 against the card. ``geossl encoders`` lists the entries.

Every entry has a model card in ``cards.json`` (written by ``benchmarks/zoo.py``, the script that trains the files):

- ``name``, ``file``, ``bytes``, ``sha256``: the file shipped beside this module and its digest;
- ``method``, ``encoder``, ``domain``, ``data``: what was pretrained, on what;
- ``command``, ``commit``, ``threads``: the command that trained it and the geossl commit it ran at;
- ``recorded``: the run's own evaluation under the full protocol (``metric``, ``value``, ``protocol``);
- ``check``: a small, fast evaluation (``overrides`` of ``geossl evaluate encoder=<name>``), its ``metric``, the
  ``value`` it gave when the file was made and the ``tolerance`` a rerun must meet;
- ``checksum``: the sum and the absolute sum of the encoder's output on :func:`fixed_input` (eval mode), with a
  relative ``tolerance``.

Zoo names contain a hyphen, registry names never do, so a zoo name never stands for a registry entry (the tests check
it). Nothing here imports a domain package at import time.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Tuple

from geossl.errors import CheckpointError, UnknownNameError

ZOO_DIR = Path(__file__).resolve().parent
CARDS_FILE = ZOO_DIR / "cards.json"


@lru_cache(maxsize=1)
def _cards() -> Dict[str, Dict[str, Any]]:
    if not CARDS_FILE.is_file():
        return {}
    return {card["name"]: card for card in json.loads(CARDS_FILE.read_text())["encoders"]}


def names() -> List[str]:
    """The zoo's entry names, sorted."""
    return sorted(_cards())


def card(name: str) -> Dict[str, Any]:
    """The model card of zoo entry ``name`` (a copy); an unknown name lists the valid ones."""
    cards = _cards()
    if name not in cards:
        raise UnknownNameError(f"Unknown zoo encoder {name!r}. Zoo encoders: {', '.join(names()) or 'none'} "
                               "(geossl encoders lists them; a saved encoder is given by its file path).")
    return json.loads(json.dumps(cards[name]))


def is_zoo_name(value: str | os.PathLike) -> bool:
    """Whether ``value`` names a zoo entry (and not a file: a path never counts as a zoo name)."""
    text = str(value)
    return text in _cards() and os.sep not in text and not Path(text).exists()


def looks_like_zoo_name(value: str | os.PathLike) -> bool:
    """Whether ``value`` is shaped like a zoo name (a bare word with a hyphen, no suffix), known or not: such a value
    that names no file gets the zoo's list of names in its error instead of 'file not found'."""
    text = str(value)
    return "-" in text and os.sep not in text and "." not in text and not Path(text).exists()


def sha256(path: str | os.PathLike) -> str:
    """The hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_VERIFIED: Dict[Tuple[str, int, int], bool] = {}


def path(name: str) -> Path:
    """The file of zoo entry ``name``, its sha256 checked against the card (once per process while the file is
    unchanged); a changed or missing file is refused."""
    entry = card(name)
    file = ZOO_DIR / entry["file"]
    if not file.is_file():
        raise CheckpointError(f"The zoo file of {name!r} is missing ({file}); reinstall geossl.")
    stat = file.stat()
    key = (str(file), stat.st_size, stat.st_mtime_ns)
    if not _VERIFIED.get(key):
        found = sha256(file)
        if found != entry["sha256"]:
            raise CheckpointError(f"The zoo file of {name!r} ({file}) has sha256 {found}, and its card records "
                                  f"{entry['sha256']}: the file was changed or damaged, so it is not loaded. Reinstall geossl.")
        _VERIFIED[key] = True
    return file


def resolve(value: str | os.PathLike) -> Path:
    """``value`` as a file: a zoo name becomes its verified file, anything else stays a path. A bare hyphenated word
    that names neither a file nor a zoo entry is refused with the zoo's names."""
    if is_zoo_name(value):
        return path(str(value))
    if looks_like_zoo_name(value):
        card(str(value))  # raises, listing the names
    return Path(value)


def fixed_input(domain: str, in_dim: int):
    """The input every zoo checksum is taken on: for graphs, 64 nodes on a ring with self-loops and seeded uniform
    features; for scenes, one scene of 4096 seeded points in a 4 m cube with uniform features in [0, 1]."""
    import torch

    gen = torch.Generator().manual_seed(0)
    if domain == "graph":
        from torch_geometric.data import Data

        n = 64
        nodes = torch.arange(n)
        ring = torch.stack([torch.cat([nodes, (nodes + 1) % n, nodes]), torch.cat([(nodes + 1) % n, nodes, nodes])])
        return Data(x=torch.rand(n, in_dim, generator=gen), edge_index=ring)
    if domain == "scene":
        from geossl.points import PointBatch

        coord = torch.rand(4096, 3, generator=gen) * 4.0
        return PointBatch(coord=coord, feat=torch.rand(4096, in_dim, generator=gen), offset=torch.tensor([4096]))
    raise ValueError(f"No fixed input for domain {domain!r}.")


def output_checksum(encoder, domain: str) -> Dict[str, float]:
    """``{"sum", "abs_sum"}`` of ``encoder``'s output on :func:`fixed_input`, in eval mode without gradients."""
    import torch

    in_dim = int(encoder.config().get("in_dim"))
    was_training = encoder.training
    encoder.eval()
    with torch.no_grad():
        out = encoder(fixed_input(domain, in_dim)).double()
    encoder.train(was_training)
    return {"sum": float(out.sum()), "abs_sum": float(out.abs().sum())}


def table(cards: Dict[str, Dict[str, Any]] | None = None) -> str:
    """The zoo (or ``cards``, name -> card) as a Markdown table (``geossl encoders`` prints it)."""
    cards = _cards() if cards is None else cards
    rows = ["| name | method | encoder | data | recorded | size | sha256 |", "|---|---|---|---|---|---|---|"]
    for name in sorted(cards):
        c = cards[name]
        rec = c["recorded"]
        rows.append(f"| `{name}` | {c['method']} | {c['encoder']} | {c['data']} | {rec['metric']}: {rec['value']} | "
                    f"{c['bytes'] / 1e6:.1f} MB | `{c['sha256'][:12]}` |")
    return "\n".join(rows)
