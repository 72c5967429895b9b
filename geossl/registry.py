"""Name -> builder registries, one per kind of thing, each entry tagged with its domain.

Domain packages (``geossl.graph``, ``geossl.pointcloud``) register their encoders, methods, datasets and
heads here when imported, each under a domain ("graph", "scene"), so that a lookup made for one
domain can say that a name belongs to another. The core never imports a domain package by name:
a lookup for one domain imports that domain alone (its ``geossl.domains`` entry point, pyproject.toml),
and a lookup without a domain, or one that misses, imports every installed domain. A domain whose
optional dependencies are not installed (``pip install -e ".[scene]"`` has no torch_geometric) is
skipped, and a name that only it could provide is refused with the extra to install.
A lookup with an unknown name raises :class:`~geossl.errors.UnknownNameError` listing the valid names.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any, Callable, Dict, Iterable, List, Optional

from geossl.errors import UnknownNameError

#: Entry-point group under which installed packages declare their domain adapters ("graph", "scene").
DOMAIN_ENTRY_POINTS = "geossl.domains"
#: Domains imported so far, and the import error of those whose optional dependencies are missing.
_LOADED: Dict[str, Optional[BaseException]] = {}


def domain_entry_points() -> Dict[str, str]:
    """``{domain: "module:attribute"}`` of the installed domain adapters (the ``geossl.domains`` entry points)."""
    from importlib.metadata import entry_points

    return {ep.name: ep.value for ep in entry_points(group=DOMAIN_ENTRY_POINTS)}


def missing_extra(domain: str) -> Optional[str]:
    """Why ``domain`` could not be imported (the missing module and the extra that installs it), or None."""
    exc = _LOADED.get(domain)
    if exc is None:
        return None
    module = getattr(exc, "name", None) or str(exc)
    return (f"the {domain} domain needs the optional dependency {module!r}, which is not installed: "
            f"pip install -e \".[{domain}]\" (or pip install 'geossl[{domain}]')")


def load_domain(domain: str) -> bool:
    """Import the package of ``domain`` once, so that its names are registered. Returns whether it imported;
    a domain whose optional dependencies are missing is remembered (:func:`missing_extra`), not raised."""
    if domain not in _LOADED:
        value = domain_entry_points().get(domain)
        if value is None:
            return False
        try:
            importlib.import_module(value.split(":", 1)[0])
            _LOADED[domain] = None
        except ModuleNotFoundError as exc:
            if (exc.name or "").split(".")[0] == "geossl":
                raise  # a broken installation of geossl itself is not a missing extra
            _LOADED[domain] = exc
    return _LOADED[domain] is None


def load_domains() -> None:
    """Import every installed domain package once (those whose dependencies are installed)."""
    for domain in domain_entry_points():
        load_domain(domain)


def unavailable_domains() -> List[str]:
    """The messages of the installed domains that could not be imported (:func:`missing_extra`)."""
    load_domains()
    return [m for d in sorted(_LOADED) if (m := missing_extra(d))]


class Registry:
    """A named mapping from string keys to builders (classes or functions).

    Args:
        kind: what is registered ("encoder", "method", "dataset", "head", "task"); used in error messages.
        from_domains: whether domain packages register entries here (a lookup then imports them as needed);
            False for the core's own registries (tasks).
    """

    def __init__(self, kind: str, from_domains: bool = True):
        self.kind = kind
        self.from_domains = from_domains
        self._items: Dict[str, Callable] = {}
        self._domains: Dict[str, Optional[str]] = {}
        self._tags: Dict[str, Dict[str, Any]] = {}

    def register(self, name: str, domain: Optional[str] = None, **tags: Any) -> Callable[[Callable], Callable]:
        """Decorator: register ``obj`` under ``name`` (lower-case) for ``domain`` ("graph", "scene",
        or None for entries of every domain). ``tags`` are what the entry declares of itself (a dataset's
        capabilities, a head's group), read back with :meth:`tags` and :meth:`having`. Re-registering a
        name is an error."""

        key = name.lower()

        def deco(obj: Callable) -> Callable:
            if key in self._items and self._items[key] is not obj:
                raise ValueError(f"{self.kind} {key!r} is already registered to {self._items[key]!r}")
            self._items[key] = obj
            self._domains[key] = domain
            self._tags[key] = dict(tags)
            obj.registry_name = key
            return obj

        return deco

    def unregister(self, name: str) -> None:
        """Remove ``name`` (tests that register a toy entry clean up with it)."""
        key = name.lower()
        for table in (self._items, self._domains, self._tags):
            table.pop(key, None)

    def alias(self, name: str, target: str) -> None:
        """Make ``name`` another name of the builder registered as ``target`` (a preset of
        defaults under its own name, e.g. ``graphmae2`` for GraphMAE with its GraphMAE2 options)."""
        key = name.lower()
        if key in self._items:
            raise ValueError(f"{self.kind} {key!r} is already registered to {self._items[key]!r}")
        self._items[key] = self.get(target)
        self._domains[key] = self._domains[target.lower()]
        self._tags[key] = dict(self._tags[target.lower()])

    def _ensure(self, key: str, domain: Optional[str] = None) -> None:
        """Import domains until ``key`` is registered: ``domain`` first, then the others one by one (a name of
        another domain is then refused with that domain named)."""
        if key in self._items or not self.from_domains:
            return
        if domain is not None and load_domain(domain) and key in self._items:
            return
        for other in domain_entry_points():
            if load_domain(other) and key in self._items:
                return

    def domain(self, name: str) -> Optional[str]:
        """The domain ``name`` was registered for (unknown names list the valid ones)."""
        self.get(name)
        return self._domains[str(name).lower()]

    def tags(self, name: str) -> Dict[str, Any]:
        """What the entry ``name`` declared of itself when it was registered."""
        self.get(name)
        return dict(self._tags[str(name).lower()])

    def having(self, tag: str, domain: Optional[str] = None) -> List[str]:
        """The names (of ``domain``) whose entry declares ``tag`` true or lists it among its ``capabilities``."""
        return [n for n in self.names(domain)
                if self._tags[n].get(tag) or tag in self._tags[n].get("capabilities", ())]

    def get(self, name: str, domain: Optional[str] = None) -> Callable:
        """Return the builder registered under ``name``.

        Args:
            name: the registry name (case-insensitive).
            domain: when given, the name must belong to this domain; a name of another domain is
                refused with a message that says which domain it belongs to and lists this domain's names.
        """
        key = str(name).lower()
        self._ensure(key, domain)
        if key not in self._items:
            valid = ", ".join(self.names(domain)) or "(none registered)"
            close = difflib.get_close_matches(key, self.names(domain), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            which = f"{domain} {self.kind}s" if domain else f"{self.kind}s"
            missing = [m for m in unavailable_domains() if self.from_domains and (domain is None or m.startswith(f"the {domain} "))]
            also = f" Not available: {'; '.join(missing)}." if missing else ""
            raise UnknownNameError(f"Unknown {self.kind} {name!r}. Valid {which}: {valid}.{hint}{also}")
        if domain is not None and self._domains[key] not in (None, domain):
            raise UnknownNameError(
                f"{self.kind.capitalize()} {name!r} is a {self._domains[key]} {self.kind}, and this is a {domain} run. "
                f"Valid {domain} {self.kind}s: {', '.join(self.names(domain)) or '(none registered)'}.")
        return self._items[key]

    def names(self, domain: Optional[str] = None) -> List[str]:
        """Registered names (of ``domain`` only, when given), sorted."""
        if self.from_domains:
            load_domains() if domain is None else load_domain(domain)
        return sorted(k for k, d in self._domains.items() if domain is None or d in (None, domain))

    def __contains__(self, name: str) -> bool:
        self._ensure(str(name).lower())
        return str(name).lower() in self._items

    def __iter__(self) -> Iterable[str]:
        return iter(self.names())


ENCODERS = Registry("encoder")
METHODS = Registry("method")
#: Datasets declare ``capabilities``: "labels" (per-point or node labels), "boxes", "views" (posed views).
DATASETS = Registry("dataset")
#: Downstream heads (a detection head, a segmentation head), each tagged with its ``group``: the config group
#: that picks it (``geossl finetune detection=votenet``) and the kind of model it makes.
HEADS = Registry("head")
