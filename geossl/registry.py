"""Name -> builder registries, one per kind of thing, each entry tagged with its domain.

Domain packages (``geossl.graph``, ``geossl.pointcloud``) register their encoders, methods and
datasets here when imported, each under a domain ("graph", "scene"), so that a lookup made for one
domain can say that a name belongs to another. The core never imports a domain package by name:
the first lookup that misses imports every domain declared under the ``geossl.domains`` entry-point
group (pyproject.toml), so ``import geossl`` is enough to make every registered name findable.
A lookup with an unknown name raises :class:`~geossl.errors.UnknownNameError` listing the valid names.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Callable, Dict, Iterable, List, Optional

from geossl.errors import UnknownNameError

#: Entry-point group under which installed packages declare their domain adapters ("graph", "scene").
DOMAIN_ENTRY_POINTS = "geossl.domains"
_DOMAINS_LOADED = False


def domain_entry_points() -> Dict[str, str]:
    """``{domain: "module:attribute"}`` of the installed domain adapters (the ``geossl.domains`` entry points)."""
    from importlib.metadata import entry_points

    return {ep.name: ep.value for ep in entry_points(group=DOMAIN_ENTRY_POINTS)}


def load_domains() -> None:
    """Import every installed domain package once, so that their names are registered."""
    global _DOMAINS_LOADED
    if _DOMAINS_LOADED:
        return
    _DOMAINS_LOADED = True
    for value in domain_entry_points().values():
        importlib.import_module(value.split(":", 1)[0])


class Registry:
    """A named mapping from string keys to builders (classes or functions).

    Args:
        kind: what is registered ("encoder", "method", "dataset"); used in error messages.
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._items: Dict[str, Callable] = {}
        self._domains: Dict[str, Optional[str]] = {}

    def register(self, name: str, domain: Optional[str] = None) -> Callable[[Callable], Callable]:
        """Decorator: register ``obj`` under ``name`` (lower-case) for ``domain`` ("graph", "scene",
        or None for registries that are not split by domain). Re-registering a name is an error."""

        key = name.lower()

        def deco(obj: Callable) -> Callable:
            if key in self._items and self._items[key] is not obj:
                raise ValueError(f"{self.kind} {key!r} is already registered to {self._items[key]!r}")
            self._items[key] = obj
            self._domains[key] = domain
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
        self._domains[key] = self._domains[target.lower()]

    def _ensure(self, key: str) -> None:
        if key not in self._items:
            load_domains()

    def domain(self, name: str) -> Optional[str]:
        """The domain ``name`` was registered for (unknown names list the valid ones)."""
        self.get(name)
        return self._domains[str(name).lower()]

    def get(self, name: str, domain: Optional[str] = None) -> Callable:
        """Return the builder registered under ``name``.

        Args:
            name: the registry name (case-insensitive).
            domain: when given, the name must belong to this domain; a name of another domain is
                refused with a message that says which domain it belongs to and lists this domain's names.
        """
        key = str(name).lower()
        self._ensure(key)
        if key not in self._items:
            valid = ", ".join(self.names(domain)) or "(none registered)"
            close = difflib.get_close_matches(key, self.names(domain), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            which = f"{domain} {self.kind}s" if domain else f"{self.kind}s"
            raise UnknownNameError(f"Unknown {self.kind} {name!r}. Valid {which}: {valid}.{hint}")
        if domain is not None and self._domains[key] not in (None, domain):
            raise UnknownNameError(
                f"{self.kind.capitalize()} {name!r} is a {self._domains[key]} {self.kind}, and this is a {domain} run. "
                f"Valid {domain} {self.kind}s: {', '.join(self.names(domain)) or '(none registered)'}.")
        return self._items[key]

    def names(self, domain: Optional[str] = None) -> List[str]:
        """Registered names (of ``domain`` only, when given), sorted."""
        load_domains()
        return sorted(k for k, d in self._domains.items() if domain is None or d in (None, domain))

    def __contains__(self, name: str) -> bool:
        self._ensure(str(name).lower())
        return str(name).lower() in self._items

    def __iter__(self) -> Iterable[str]:
        return iter(self.names())


ENCODERS = Registry("encoder")
METHODS = Registry("method")
DATASETS = Registry("dataset")
