"""Strict, typed config sections.

Hydra composes ``configs/``; every section is then checked against a schema so that a key the
code does not know is an error (not silently ignored, as in the reference GraphMAE code) and
values are converted to the declared types (``2e-4`` is a float). Schemas are dataclasses, or
are derived from a builder's signature, so the code that uses a key is the one place it is
declared.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from typing import Any, Callable, Dict, Iterable, List, Optional, Type

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from geossl.errors import ConfigError

_SCALARS = (int, float, bool, str)


def _field_type(annotation) -> Any:
    """An OmegaConf-compatible type for ``annotation`` (unions other than Optional become Any)."""
    if annotation in _SCALARS:
        return annotation
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1 and rest[0] in _SCALARS:
            return Optional[rest[0]]
    return Any


def schema_from_signature(fn: Callable, exclude: Iterable[str] = (), name: str = "Schema", extra: Dict[str, Any] | None = None) -> Type:
    """A dataclass whose fields are ``fn``'s keyword parameters (minus ``exclude``) with their
    types and defaults, plus ``extra`` fields (name -> default, typed as ``str``/``Any``)."""
    target = fn.__init__ if inspect.isclass(fn) else fn
    hints = typing.get_type_hints(target)
    fields = []
    for pname, param in inspect.signature(target).parameters.items():
        if pname == "self" or pname in exclude or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        default = param.default if param.default is not inspect.Parameter.empty else dataclasses.MISSING
        fields.append((pname, _field_type(hints.get(pname, Any)), dataclasses.field(default=default)))
    for key, default in (extra or {}).items():
        fields.append((key, Any, dataclasses.field(default=default)))
    return dataclasses.make_dataclass(name, fields)


def validate(section: DictConfig | Dict[str, Any], schema: Type, where: str) -> Dict[str, Any]:
    """Check ``section`` against ``schema`` and return it as a plain, typed dict.

    Raises:
        ConfigError: an unknown key (the message lists the valid keys), a value of the wrong
            type, or a required key left unset.
    """
    base = OmegaConf.structured(schema)
    valid = [f.name for f in dataclasses.fields(schema)]
    data = OmegaConf.to_container(section, resolve=True) if isinstance(section, DictConfig) else dict(section)
    unknown = sorted(set(data) - set(valid))
    if unknown:
        raise ConfigError(f"Unknown key(s) {', '.join(repr(f'{where}.{k}') for k in unknown)}. Valid keys of {where}: {', '.join(valid)}.")
    for f in dataclasses.fields(schema):  # a name typed as NAN, 1e3 or true reaches here as a number: say so
        value = data.get(f.name)
        if f.type in (str, Optional[str]) and isinstance(value, (int, float)):  # bool is an int
            raise ConfigError(f"{where}.{f.name} is text, but the command line read it as {value!r} (Hydra parses NAN, 1e3, 10 "
                              f"or true as numbers and booleans): quote it, e.g. {where}.{f.name}=\"'NAME'\".")
    try:
        merged = OmegaConf.merge(base, data)
        out = OmegaConf.to_container(merged, resolve=True, throw_on_missing=True)
    except OmegaConfBaseException as exc:
        msg = str(exc).splitlines()[0]
        key = getattr(exc, "full_key", None)
        raise ConfigError(f"Invalid value for {where}.{key}: {msg}" if key else f"Invalid value in {where}: {msg}") from None
    return out


def compose(config_name: str, overrides: List[str], domain: Optional[str] = None):
    """``configs/<config_name>.yaml`` composed with the command-line ``overrides`` (Hydra); input errors become
    ConfigErrors that name the bad choice or key and list the valid ones (datasets: those of ``domain``)."""
    import re

    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import ConfigCompositionException, MissingConfigException
    from omegaconf import DictConfig

    from geossl.registry import DATASETS

    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="geossl.configs", version_base="1.3"):
        try:
            return compose(config_name=config_name, overrides=overrides)
        except MissingConfigException as exc:
            missing = str(exc.missing_cfg_file or "")
            if "/" in missing and exc.options:
                group, choice = missing.split("/", 1)
                options = list(exc.options)
                if group == "dataset" and domain:
                    options = [o for o in options if o in DATASETS.names(domain)]
                what = f"{domain} {group}" if group == "dataset" and domain else group
                raise ConfigError(f"Unknown {group} {choice!r}. Valid choices of {what}: {', '.join(options)}.") from None
            raise
        except ConfigCompositionException as exc:
            match = re.match(r"Could not override '([^']+)'", str(exc))
            if not match:
                raise
            key = match.group(1)
            parent_key = key.rsplit(".", 1)[0] if "." in key else ""
            rest = [o for o in overrides if not o.lstrip("~+").startswith(key + "=")]
            parent = compose(config_name=config_name, overrides=rest)
            for part in filter(None, parent_key.split(".")):
                parent = parent.get(part) if isinstance(parent, DictConfig) else None
            where = parent_key or "the top level"
            valid = ""
            if isinstance(parent, DictConfig):
                valid = (f" Valid keys of {where}: {', '.join(parent.keys())}." if len(parent) else
                         f" {where} is empty by default: add a key with +{key}=<value>.")
            raise ConfigError(f"Unknown config key {key!r}.{valid}") from None
