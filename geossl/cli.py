"""geossl <command> key=value ...: compose the Hydra configs in configs/ and run.

Commands:
    pretrain graph=<method> dataset=<name> [key=value ...]   pretrain an encoder on graphs and evaluate it
    pretrain scene=<method> dataset=<name> [key=value ...]   pretrain a scene encoder and evaluate it
    evaluate encoder=<file.safetensors> dataset=<name>       evaluate a saved encoder (graph or scene)
    finetune detection=votenet dataset=<name> encoder=<file|name> train a 3D detector on a scene encoder, then mAP
    evaluate detector=<file.safetensors> dataset=<name>      mAP of a saved detector on the test split
    fit-gaussians dataset=<sevenscenes|redwood|scannet_export|rooms> fit 3D Gaussians to posed RGB-D frames
    show dataset=<scannet|rooms|sevenscenes|...>             PNG views of a scene (points coloured, boxes drawn)
    datasets                                                 list datasets and where they were found
    config <graph|scene>=<method> dataset=<name> [key=value ...] print the composed config

Examples: geossl pretrain graph=graphmae dataset=cora; geossl pretrain scene=pointmae dataset=rooms.
Keys: geossl config ... prints every key of a run; docs/ explains them. Tests (in a checkout): ./dev test.

Any error caused by input (a wrong name, a missing file, a bad key) is printed as one paragraph
and the process exits with status 2; no traceback.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from typing import Callable, Dict, List, Optional

USAGE = __doc__.split("Any error")[0].strip()


def _adapters() -> Dict[str, object]:
    """``{domain: adapter}`` of the installed domains (the ``geossl.domains`` entry points)."""
    import importlib

    from geossl.registry import domain_entry_points

    out = {}
    for domain, value in domain_entry_points().items():
        module, attr = value.split(":", 1)
        out[domain] = getattr(importlib.import_module(module), attr)
    return out


def _compose(config_name: str, overrides: List[str], domain: Optional[str] = None):
    """Compose ``configs/<config_name>.yaml`` with ``overrides``; input errors become ConfigErrors
    that name the bad choice or key and list the valid ones (datasets: those of ``domain``)."""
    import re

    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import ConfigCompositionException, MissingConfigException
    from omegaconf import DictConfig

    from geossl.errors import ConfigError
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


def _domain(overrides: List[str], default: str = "graph") -> str:
    """The domain of a run: the method group named on the command line (``graph=``, ``scene=``), else
    the domain of the dataset named (``dataset=rooms`` is a scene run), else ``default``."""
    from geossl.errors import ConfigError
    from geossl.registry import DATASETS, domain_entry_points

    values = {o.split("=", 1)[0].lstrip("+~"): o.split("=", 1)[1] for o in overrides if "=" in o}
    domains = sorted(domain_entry_points())
    chosen = [d for d in domains if d in values]
    if len(chosen) > 1:
        raise ConfigError(f"{' and '.join(f'{d}=' for d in chosen)} were given together; a run pretrains one kind of "
                          f"encoder: name one method group ({', '.join(f'{d}=<method>' for d in domains)}).")
    if chosen:
        return chosen[0]
    dataset = values.get("dataset")
    if dataset and dataset in DATASETS and DATASETS.domain(dataset):
        return DATASETS.domain(dataset)
    return default


def _check_dataset_domain(cfg, domain: str) -> None:
    """A dataset of another domain is refused with the valid ones (``graph=graphmae dataset=rooms``)."""
    from geossl.registry import DATASETS

    DATASETS.get(cfg.dataset.get("loader") or cfg.dataset.name, domain=domain)


def cmd_pretrain(overrides: List[str]) -> int:
    from geossl.pipeline import pretrain, run_dir_for

    domain = _domain(overrides)
    adapter = _adapters()[domain]
    cfg = _compose(f"pretrain_{domain}", overrides, domain)
    _check_dataset_domain(cfg, domain)
    run_dir = run_dir_for(cfg, f"{cfg[domain].name}-{cfg.dataset.name}")
    summary = pretrain(cfg, run_dir, adapter)
    if int(os.environ.get("RANK", "0")) == 0:  # the other processes of a torchrun job evaluate nothing
        print(adapter.describe(summary, run_dir))
    return 0


def cmd_evaluate(overrides: List[str]) -> int:
    from geossl.pipeline import encoder_domain, evaluate

    if any(o.startswith("detector=") for o in overrides):  # a saved detector: its domain's command evaluates it
        command = next((a.commands["evaluate-detector"] for a in _adapters().values() if "evaluate-detector" in getattr(a, "commands", {})), None)
        if command is None:
            from geossl.errors import ConfigError

            raise ConfigError("No installed domain evaluates detectors.")
        return command(overrides, _compose)

    # `encoder` is also the name of a config group, so the file path travels as encoder_file.
    overrides = [f"encoder_file={o.split('=', 1)[1]}" if o.startswith("encoder=") else o for o in overrides]
    path = next((o.split("=", 1)[1] for o in overrides if o.startswith("encoder_file=")), None)
    domain = encoder_domain(path) if path else _domain(overrides)
    cfg = _compose(f"evaluate_{domain}", overrides, domain)
    print(json.dumps(evaluate(cfg, _adapters()[domain]), indent=2))
    return 0


def cmd_datasets(overrides: List[str]) -> int:
    from geossl.data import DATA_ENV, data_root

    root = None
    for o in overrides:
        if o.startswith("dataset.root="):
            root = o.split("=", 1)[1]
    print(f"data root: {data_root(root)} (from {'dataset.root' if root else DATA_ENV if os.environ.get(DATA_ENV) else 'default'})")
    for domain, adapter in sorted(_adapters().items()):
        print(f"{domain} datasets (geossl pretrain {domain}=<method> dataset=<name>):")
        for name, state, where in adapter.dataset_status(root):
            print(f"  {name:14s} {state:8s} {where}")
    return 0


def cmd_config(overrides: List[str]) -> int:
    from omegaconf import OmegaConf

    domain = _domain(overrides)
    cfg = _compose(f"pretrain_{domain}", overrides, domain)
    _check_dataset_domain(cfg, domain)
    print(OmegaConf.to_yaml(cfg))
    return 0


#: Commands of the core; domains add theirs (``adapter.commands``: fit-gaussians and show come from the scene domain).
CORE_COMMANDS: Dict[str, Callable[[List[str]], int]] = {"pretrain": cmd_pretrain, "evaluate": cmd_evaluate,
                                                        "datasets": cmd_datasets, "config": cmd_config}


def _commands() -> Dict[str, Callable[[List[str]], int]]:
    commands = dict(CORE_COMMANDS)
    for adapter in _adapters().values():
        for name, fn in getattr(adapter, "commands", {}).items():
            commands[name] = lambda overrides, fn=fn: fn(overrides, _compose)
    return commands


def _friendly(exc: BaseException) -> Optional[str]:
    """A one-paragraph message for errors caused by input; None for programming errors."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from geossl.errors import GeosslError

    if isinstance(exc, GeosslError):
        return str(exc)
    if isinstance(exc, PermissionError):
        where = exc.filename or "a file"
        return (f"Permission denied writing or reading {where}. Choose folders you can write: out_dir=<dir> or run_dir=<dir> for "
                "runs, GEOSSL_CACHE=<dir> for processed datasets.")
    if isinstance(exc, (HydraException, OmegaConfBaseException)):
        text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        text = text.replace("Available options in", ". Available options in").replace(" . ", ". ")
        return f"Config error: {text}"
    return None


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    command, overrides = argv[0], argv[1:]
    try:
        commands = _commands()
        if command not in commands:
            print(f"geossl: error: unknown command {command!r}. Valid commands: {', '.join(commands)}.", file=sys.stderr)
            return 2
        return commands[command](overrides)
    except KeyboardInterrupt:
        print("geossl: interrupted; the last checkpoint in the run folder can be resumed with trainer.resume=<run folder>.", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - only input errors are turned into messages
        message = _friendly(exc)
        if message is None:
            raise
        print("\n".join(textwrap.wrap(f"geossl: error: {message}", width=100, break_long_words=False, break_on_hyphens=False)), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
