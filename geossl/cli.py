"""geossl <command> key=value ...: compose the Hydra configs in configs/ and run.

Commands:
    pretrain graph=<method> dataset=<name> [key=value ...]   pretrain an encoder on graphs and evaluate it
    pretrain scene=<method> dataset=<name> [key=value ...]   pretrain a scene encoder and evaluate it
    evaluate encoder=<file.safetensors> dataset=<name>       evaluate a saved encoder (graph or scene)
    finetune detection=votenet dataset=<name> encoder=<file|name> train a 3D detector on a scene encoder, then mAP
    finetune segmentation=linear dataset=<name> encoder=<file|name> train a per-point segmenter on it, then mIoU
    evaluate model=<file.safetensors> dataset=<name>         score a saved fine-tuned model (detector=, segmenter=)
    finetune -m ... encoder=a,b,<name> dataset.train_fraction=0.05,1 seed=0,1,2  a sweep (Hydra's multirun; also pretrain -m),
                                                             each run in its own process, resumable; then geossl compare
    compare <sweep folder>                                   tables, paired differences from scratch and a plot of its runs
    select <sweep folder> by=rankme                          choose a pretraining run without labels (RankMe), checked against them
    encoders                                                 the pretrained encoders shipped with geossl (encoder=<name>)
    import-pointcept <checkpoint.pth> out=<file.safetensors>   a Pointcept / PonderV2 SpUNet checkpoint as a geossl encoder file
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
from pathlib import Path
from typing import Callable, Dict, List, Optional

USAGE = __doc__.split("Any error")[0].strip()


def cmd_task(command: str, overrides: List[str]) -> int:
    """Run the pipeline task of ``geossl <command> <overrides>`` (:data:`geossl.pipeline.TASKS`): the task and its
    domain come from the command line, only that domain is imported, and the task's config is composed and run."""
    from geossl.pipeline import configure

    if "-m" in overrides or "--multirun" in overrides:  # a sweep: every combination, each run in its own process
        from geossl.sweep import sweep

        return sweep(command, [o for o in overrides if o not in ("-m", "--multirun")])
    task, cfg, adapter = configure(command, overrides)
    summary = task.run(cfg, adapter)
    if int(os.environ.get("RANK", "0")) == 0:  # the other processes of a torchrun job evaluate nothing
        print(task.report(summary, adapter) if task.report else json.dumps(summary, indent=2))
    return 0


def cmd_datasets(overrides: List[str]) -> int:
    from geossl.data import DATA_ENV, data_root

    root = None
    for o in overrides:
        if o.startswith("dataset.root="):
            root = o.split("=", 1)[1]
    from geossl.pipeline import adapter_for
    from geossl.registry import domain_entry_points, load_domain, missing_extra

    print(f"data root: {data_root(root)} (from {'dataset.root' if root else DATA_ENV if os.environ.get(DATA_ENV) else 'default'})")
    for domain in sorted(domain_entry_points()):
        if not load_domain(domain):
            print(f"{domain} datasets: not available: {missing_extra(domain)}.")
            continue
        adapter = adapter_for(domain)
        print(f"{domain} datasets (geossl pretrain {domain}=<method> dataset=<name>):")
        for name, state, where in adapter.dataset_status(root):
            print(f"  {name:14s} {state:8s} {where}")
    return 0


def cmd_compare(overrides: List[str]) -> int:
    """``geossl compare <folder>``: compare the fine-tuning runs under a folder (a sweep's); see geossl.compare."""
    from geossl.compare import compare_sweep
    from geossl.errors import ConfigError

    if len(overrides) != 1 or "=" in overrides[0]:
        raise ConfigError("geossl compare takes one folder of fine-tuning runs: geossl compare <sweep folder>.")
    print(compare_sweep(overrides[0]))
    return 0


def cmd_select(overrides: List[str]) -> int:
    """``geossl select <folder> [by=rankme]``: choose among the pretraining runs under a folder without labels, checked
    against their downstream results; see geossl.select."""
    from geossl.errors import ConfigError
    from geossl.select import CRITERIA, select_sweep

    folders = [o for o in overrides if "=" not in o]
    settings = dict(o.split("=", 1) for o in overrides if "=" in o)
    if len(folders) != 1 or set(settings) - {"by"}:
        raise ConfigError("geossl select takes one folder of pretraining runs and optionally by=<score>: geossl select "
                          f"<sweep folder> by=rankme (scores: {', '.join(CRITERIA)}).")
    print(select_sweep(folders[0], settings.get("by", "rankme")))
    return 0


def cmd_encoders(overrides: List[str]) -> int:
    """``geossl encoders``: the zoo's model cards as a table (``--json``: the cards themselves)."""
    from geossl import zoo
    from geossl.errors import ConfigError

    if overrides not in ([], ["--json"]):
        raise ConfigError("geossl encoders takes no arguments (or --json for the full model cards).")
    if overrides:
        print(json.dumps([zoo.card(n) for n in zoo.names()], indent=2))
        return 0
    print(zoo.table())
    print("\nUse one by name: geossl finetune detection=votenet dataset=rooms encoder=<name>; "
          "in Python: geossl.load_encoder('<name>') (its card: encoder.pretrained). Every file is checked against its sha256.")
    return 0


def cmd_config(overrides: List[str]) -> int:
    """Print the composed config of ``geossl pretrain <overrides>``, its names checked against the run's domain
    (whose package is not imported unless a name must be looked up)."""
    from omegaconf import OmegaConf

    from geossl.config import compose
    from geossl.pipeline import TASKS, check_sections, run_domain
    from geossl.registry import DATASETS, load_domain

    task = TASKS.get("pretrain")
    domain = run_domain(task, overrides)
    cfg = compose(task.config.format(domain=domain), overrides, domain)
    check_sections(task, cfg, domain)
    if load_domain(domain):  # the core alone prints configs without checking their names
        DATASETS.get(cfg.dataset.get("loader") or cfg.dataset.name, domain=domain)
    print(OmegaConf.to_yaml(cfg))
    return 0


def _commands() -> Dict[str, Callable[[List[str]], int]]:
    """The commands: the pipeline's tasks (pretrain, evaluate, finetune), datasets and config, and those the installed
    domains declare under the ``geossl.commands`` entry points (show, fit-gaussians), imported only when run."""
    from importlib.metadata import entry_points

    from geossl.pipeline import TASKS

    commands: Dict[str, Callable[[List[str]], int]] = {}
    for name in TASKS.names():
        word = TASKS.get(name).command
        commands[word] = lambda overrides, word=word: cmd_task(word, overrides)
    commands.update({"datasets": cmd_datasets, "config": cmd_config, "compare": cmd_compare, "select": cmd_select,
                     "encoders": cmd_encoders})
    for ep in entry_points(group="geossl.commands"):
        commands[ep.name] = lambda overrides, ep=ep: _domain_command(ep)(overrides)
    return commands


def _domain_command(ep):
    """The function of a domain's command entry point; a domain whose optional dependencies are missing says which
    extra to install."""
    from geossl.errors import ConfigError
    from geossl.registry import domain_entry_points, load_domain, missing_extra

    module = ep.value.split(":", 1)[0]
    for domain, value in domain_entry_points().items():
        if module.startswith(value.split(":", 1)[0].rsplit(".", 1)[0] + ".") and not load_domain(domain):
            raise ConfigError(f"geossl {ep.name} needs the {domain} domain, and {missing_extra(domain)}.")
    return ep.load()


def _friendly(exc: BaseException) -> Optional[str]:
    """A one-paragraph message for errors caused by input; None for programming errors."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from geossl.errors import GeosslError, user_message

    if isinstance(exc, GeosslError):
        return user_message(exc)
    if isinstance(exc, PermissionError):
        where = exc.filename or "a file"
        return (f"Permission denied writing or reading {where}. Choose folders you can write: out_dir=<dir> or run_dir=<dir> for "
                "runs, GEOSSL_CACHE=<dir> for processed datasets.")
    if isinstance(exc, OSError) and exc.filename:  # a full disk, a path through a file, a read-only folder: where and why
        from geossl.io import storage_problem

        problem = storage_problem(exc, Path(exc.filename).parent) or exc.strerror
        return f"Could not write or read {exc.filename}: {problem}."
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
            import difflib

            close = difflib.get_close_matches(command, list(commands), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            print(f"geossl: error: unknown command {command!r}. Valid commands: {', '.join(commands)}.{hint}", file=sys.stderr)
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
