"""Name -> builder registries, one per kind of thing.

Domain packages register into these when imported (the core never imports them); the CLI
imports the domains it wires, and ``load_encoder`` imports the module named in a file's header. A lookup
with an unknown name raises :class:`~geossl.errors.UnknownNameError` listing the valid names.
"""

from __future__ import annotations

import difflib
from typing import Callable, Dict, Iterable

from geossl.errors import UnknownNameError

class Registry:
    """A named mapping from string keys to builders (classes or functions).

    Args:
        kind: what is registered ("encoder", "method", "dataset"); used in error messages.
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._items: Dict[str, Callable] = {}

    def register(self, name: str) -> Callable[[Callable], Callable]:
        """Decorator: register ``obj`` under ``name`` (lower-case). Re-registering a name is an error."""

        key = name.lower()

        def deco(obj: Callable) -> Callable:
            if key in self._items and self._items[key] is not obj:
                raise ValueError(f"{self.kind} {key!r} is already registered to {self._items[key]!r}")
            self._items[key] = obj
            obj.registry_name = key
            return obj

        return deco

    def alias(self, name: str, target: str) -> None:
        """Make ``name`` another name of the builder registered as ``target`` (a preset of
        defaults under its own name, e.g. ``graphmae2`` for GraphMAE with its GraphMAE2 options)."""
        key = name.lower()
        if key in self._items:
            raise ValueError(f"{self.kind} {key!r} is already registered to {self._items[key]!r}")
        self._items[key] = self.get(target)

    def get(self, name: str) -> Callable:
        """Return the builder registered under ``name``; unknown names list the valid ones."""
        key = str(name).lower()
        if key not in self._items:
            valid = ", ".join(sorted(self._items)) or "(none registered)"
            close = difflib.get_close_matches(key, list(self._items), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise UnknownNameError(f"Unknown {self.kind} {name!r}. Valid {self.kind}s: {valid}.{hint}")
        return self._items[key]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return str(name).lower() in self._items

    def __iter__(self) -> Iterable[str]:
        return iter(self.names())


ENCODERS = Registry("encoder")
METHODS = Registry("method")
DATASETS = Registry("dataset")
