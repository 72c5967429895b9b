"""The Encoder interface shared by every domain, and its safetensors save/load.

An encoder is an ``nn.Module`` that maps a batch (a PyG graph, a point batch) to per-element
features of width :attr:`Encoder.out_dim`. It remembers the keyword arguments it was built with
(:meth:`Encoder.config`), so :func:`save_encoder` can write weights plus a JSON header and
:func:`load_encoder` can rebuild the module from that one file. No pickle is involved.
"""

from __future__ import annotations

import functools
import math
import inspect
import json
import os
from pathlib import Path
from typing import Any, Dict, Optional

import torch
from torch import nn

from geossl.errors import CheckpointError, GeosslError
from geossl.io import atomic_write
from geossl.registry import ENCODERS, domain_entry_points, load_domain

#: Value of the ``format`` field in an encoder file's header.
ENCODER_FORMAT = "geossl-encoder"
ENCODER_FORMAT_VERSION = 1


class Encoder(nn.Module):
    """Base class for every pretrainable encoder.

    Subclasses are registered with ``@ENCODERS.register(name)``, set ``self.out_dim`` and
    implement ``forward(batch) -> Tensor[num_elements, out_dim]``. The keyword arguments given
    to the subclass constructor are recorded automatically and returned by :meth:`config`;
    they must be JSON-serialisable (numbers, strings, booleans, lists, None).
    """

    out_dim: int

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "__init__" not in cls.__dict__:
            return
        init = cls.__init__
        signature = inspect.signature(init)

        @functools.wraps(init)
        def recording_init(self, *args, **kw):
            if not hasattr(self, "_encoder_config_owner"):
                bound = signature.bind(self, *args, **kw)
                bound.apply_defaults()
                arguments = dict(bound.arguments)
                arguments.pop("self")
                object.__setattr__(self, "_encoder_config", arguments)
                object.__setattr__(self, "_encoder_config_owner", cls)
            init(self, *args, **kw)

        cls.__init__ = recording_init

    def config(self) -> Dict[str, Any]:
        """The constructor keyword arguments that rebuild this encoder (``type(self)(**config)``)."""
        return dict(self._encoder_config)


def _header(encoder: Encoder, metadata: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    from geossl import __version__

    name = getattr(type(encoder), "registry_name", None)
    if name is None:
        raise TypeError(f"{type(encoder).__name__} is not registered in geossl.registry.ENCODERS")
    return {
        "format": ENCODER_FORMAT,
        "format_version": ENCODER_FORMAT_VERSION,
        "encoder": name,
        "domain": ENCODERS.domain(name),
        "module": type(encoder).__module__,
        "config": encoder.config(),
        "out_dim": int(encoder.out_dim),
        "geossl_version": __version__,
        "metadata": dict(metadata or {}),
    }


def save_encoder(encoder: Encoder, path: str | os.PathLike, metadata: Optional[Dict[str, Any]] = None) -> Path:
    """Save ``encoder`` to a ``.safetensors`` file with a JSON header.

    The header (stored in the safetensors metadata under the key ``geossl``) holds the registry
    name, the module that registers it, the constructor config, the geossl version and
    ``metadata`` (for example ``{"dataset": "cora", "method": "graphmae"}``). The file is
    written atomically.

    Args:
        encoder: a registered :class:`Encoder`.
        path: destination file.
        metadata: JSON-serialisable facts about how it was pretrained.
    """
    from safetensors.torch import save_file

    header = json.dumps(_header(encoder, metadata), default=str)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in encoder.state_dict().items()}
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={"geossl": header}))


def encoder_is_file(value: str | os.PathLike) -> bool:
    """The one rule for ``encoder=<value>`` wherever a saved encoder or a registry name may stand: a file when the
    value ends in ``.safetensors``, names an existing file or names a zoo encoder (a bare word with a hyphen, see
    :mod:`geossl.zoo`; an unknown one is refused there with the zoo's names), else a registry name (a fresh encoder of
    that name)."""
    from geossl import zoo

    return str(value).endswith(".safetensors") or Path(str(value)).is_file() or zoo.looks_like_zoo_name(value)


def read_encoder_header(path: str | os.PathLike) -> Dict[str, Any]:
    """Read and validate the JSON header of an encoder file (or zoo encoder, by name) without loading its weights."""
    from safetensors import safe_open

    from geossl import zoo

    path = zoo.resolve(path)
    if not path.is_file():
        raise CheckpointError(f"Encoder file {str(path)!r} does not exist.")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types for truncated/garbage files
        raise CheckpointError(
            f"Encoder file {str(path)!r} is not a readable safetensors file ({exc}). "
            "It may be truncated or corrupt; re-export it with geossl.save_encoder."
        ) from None
    if "geossl" not in meta:
        raise CheckpointError(
            f"{str(path)!r} is a safetensors file but not a geossl encoder: it has no 'geossl' header. "
            "Only files written by geossl.save_encoder can be loaded."
        )
    try:
        header = json.loads(meta["geossl"])
    except (json.JSONDecodeError, RecursionError) as exc:  # RecursionError: JSON nested too deep for the decoder
        raise CheckpointError(f"Encoder file {str(path)!r} has a corrupt header ({type(exc).__name__}).") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"Encoder file {str(path)!r} has a corrupt header (a JSON {type(header).__name__}, not an object).")
    if header.get("format") != ENCODER_FORMAT:
        raise CheckpointError(
            f"{str(path)!r} is a geossl file of kind {header.get('format')!r}, not an encoder ({ENCODER_FORMAT!r})."
        )
    if header.get("format_version") != ENCODER_FORMAT_VERSION:
        raise CheckpointError(
            f"{str(path)!r} uses encoder format version {header.get('format_version')}, "
            f"this geossl reads version {ENCODER_FORMAT_VERSION}."
        )
    return header


def stored_shapes(path: str | os.PathLike) -> Dict[str, tuple]:
    """The shapes of the tensors a safetensors file stores, read from its header (no tensor is loaded)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}


def check_sizes(path: str | os.PathLike, stored: Dict[str, tuple], *configs: Dict[str, Any]) -> None:
    """No size a constructor takes (a width, a depth) can exceed the numbers the file stores: a crafted header
    asking for a billion layers is refused here, before even a memory-free build spends time on it."""
    numel = sum(math.prod(s) for s in stored.values())
    ints = lambda v: [x for x in (v if isinstance(v, (list, tuple)) else [v]) if isinstance(x, int) and not isinstance(x, bool)]  # noqa: E731
    too_big = {k: v for c in configs for k, v in c.items() if any(x > max(numel, 1024) for x in ints(v))}
    if too_big:
        raise CheckpointError(f"The config in {str(path)!r} asks for sizes {too_big} larger than the {numel} numbers the file stores.")


def check_shapes(path: str | os.PathLike, stored: Dict[str, tuple], shell: torch.nn.Module, what: str) -> None:
    """The parameter shapes of ``shell`` (built on the ``meta`` device) must be those the file stores."""
    expected = {k: tuple(v.shape) for k, v in shell.state_dict().items()}
    if stored != expected:
        wrong = sorted(k for k in set(stored) | set(expected) if stored.get(k) != expected.get(k))
        detail = "; ".join(f"{k}: stored {stored.get(k)}, config gives {expected.get(k)}" for k in wrong[:3])
        raise CheckpointError(f"The weights in {str(path)!r} do not fit {what} ({detail}{'; ...' if len(wrong) > 3 else ''}).")


def load_encoder(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Encoder:
    """Rebuild an encoder saved by :func:`save_encoder` from that file alone (or a zoo encoder by name), in eval mode.

    Only encoders registered in :data:`~geossl.registry.ENCODERS` are built (the header's ``module``
    is not imported), and the module is first built without memory (on the ``meta`` device) so that
    its parameter shapes can be checked against the stored tensors before anything is allocated. The
    encoder comes back in eval mode (dropout off, batch-norm statistics frozen), ready for inference;
    call ``.train()`` to fine-tune it.

    ``encoder.pretrained`` holds the file's metadata, or a zoo encoder's model card.

    Args:
        path: a ``.safetensors`` file written by :func:`save_encoder`, or the name of a zoo encoder
            (``geossl encoders`` lists them; its file is checked against the card's sha256 first).
        map_location: device to load the weights to.

    Raises:
        CheckpointError: the file is missing, corrupt, not a geossl encoder, names an encoder this
            geossl does not have, or its weights do not fit the encoder its header describes; a zoo
            file whose sha256 is not its card's.
        UnknownNameError: a bare hyphenated name that is neither a file nor a zoo encoder.
    """
    from safetensors.torch import load_file

    from geossl import zoo

    name_given = str(path)
    path = zoo.resolve(path)
    header = read_encoder_header(path)
    name, domain = str(header.get("encoder")), header.get("domain")
    if domain in domain_entry_points() and load_domain(domain) and name in ENCODERS.names(domain):
        cls = ENCODERS.get(name, domain=domain)  # the header's domain: no other domain is imported
    else:
        try:
            cls = ENCODERS.get(name)
        except GeosslError as exc:
            raise CheckpointError(f"Cannot rebuild the encoder in {str(path)!r}: {exc}") from None
    config = header.get("config")
    if not isinstance(config, dict):
        raise CheckpointError(f"The header of {str(path)!r} has no constructor config (got {type(config).__name__}).")
    stored = stored_shapes(path)
    check_sizes(path, stored, config)
    try:
        with torch.device("meta"):
            shell = cls(**config)
    except (TypeError, ValueError, RuntimeError, GeosslError) as exc:
        raise CheckpointError(f"The config in {str(path)!r} does not fit encoder {header['encoder']!r}: {exc}") from None
    check_shapes(path, stored, shell, f"encoder {header['encoder']!r} as its header configures it")
    del shell
    try:
        encoder = cls(**config)
        encoder.load_state_dict(load_file(str(path), device=str(map_location)), strict=True)
    except Exception as exc:
        raise CheckpointError(f"The weights in {str(path)!r} do not fit encoder {header['encoder']!r}: {exc}") from None
    encoder.pretrained = zoo.card(name_given) if zoo.is_zoo_name(name_given) else header.get("metadata", {})
    return encoder.to(map_location).eval()
