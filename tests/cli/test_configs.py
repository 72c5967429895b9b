"""Every shipped config composes, and its sections pass the strict schemas."""

from pathlib import Path

import pytest
from omegaconf import OmegaConf

import geossl.graph  # noqa: F401
from geossl.config import compose as _compose
from geossl.config import validate
from geossl.engine import TrainerConfig
from geossl.errors import ConfigError
from geossl.graph import adapter as run
from geossl.pipeline import dataset_builder, section
from geossl.pointcloud.adapter import RUN_KEYS
from geossl.registry import DATASETS, ENCODERS, METHODS

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _options(group):
    return sorted(p.stem for p in (CONFIGS / group).glob("*.yaml"))


def _domain_options(group, domain, registry):
    return [o for o in _options(group) if o in registry.names(domain)]


GRAPH_DATASETS = _domain_options("dataset", "graph", DATASETS)
SCENE_DATASETS = _domain_options("dataset", "scene", DATASETS)
RGBD = {"sevenscenes", "redwood", "scannet_export"}  # RGB-D sequences


def test_every_dataset_config_is_a_registered_dataset_of_one_domain():
    assert sorted(GRAPH_DATASETS + SCENE_DATASETS) == _options("dataset")
    assert set(SCENE_DATASETS) == {"rooms", "scannet", "scene_folder", "sunrgbd"} | RGBD


@pytest.mark.parametrize("dataset", GRAPH_DATASETS)
@pytest.mark.parametrize("method", _options("graph"))
@pytest.mark.parametrize("encoder", _domain_options("encoder", "graph", ENCODERS))
def test_every_graph_combination_composes_and_validates(method, dataset, encoder):
    extra = ["dataset.path=graphs.pt"] if dataset == "graph_list" else []
    cfg = _compose("pretrain_graph", [f"graph={method}", f"dataset={dataset}", f"encoder={encoder}", *extra])
    TrainerConfig(**validate(cfg.trainer, TrainerConfig, "trainer"))
    section(cfg, "graph", METHODS.get(cfg.graph.name), exclude=("encoder", "in_dim"))
    section(cfg, "encoder", ENCODERS.get(cfg.encoder.name), exclude=("in_dim",))
    run.dataset_builder(cfg)
    run.eval_kwargs(cfg)


@pytest.mark.parametrize("dataset", SCENE_DATASETS)
@pytest.mark.parametrize("model", _options("model"))
def test_every_scene_combination_composes_and_validates(dataset, model):
    from geossl.pipeline import build_method, dataset_builder
    from geossl.pointcloud.adapter import ADAPTER, probe_settings
    from geossl.pointcloud.transforms import TransformConfig

    extra = ["dataset.root=/data/mine"] if dataset in ("scannet_export", "scene_folder", "sunrgbd") else []
    cfg = _compose("pretrain_scene", [f"dataset={dataset}", f"model={model}", *extra])
    TrainerConfig(**validate(cfg.trainer, TrainerConfig, "trainer"))
    build_method(cfg, ADAPTER, validate_only=True)
    dataset_builder(cfg, "scene", extra=RUN_KEYS, exclude=("split",))
    TransformConfig(**validate(cfg.transform, TransformConfig, "transform"))
    probe_settings(cfg)
    assert cfg.model == model and cfg.transform.points >= cfg.encoder.centres * cfg.encoder.patch


def test_every_preset_is_reachable():
    methods = {"graph": _options("graph"), "scene": _options("scene")}
    for preset in _options("preset"):
        parts = preset.split("_")
        if parts[0] in methods["scene"]:  # <method>_<encoder>_<model size>
            encoder, model = "_".join(parts[1:-1]), parts[-1]
            assert encoder in _options("encoder") and model in _options("model"), preset
            continue
        method = next((m for m in sorted(methods["graph"], key=len, reverse=True) if preset.startswith(m + "_")), None)
        assert method is not None, preset  # <graph method>_<dataset>[_<encoder>] (a method's name may hold "_")
        rest = preset[len(method) + 1:].split("_")
        assert rest[0] in GRAPH_DATASETS, preset
        assert len(rest) == 1 or (len(rest) == 2 and rest[1] in _options("encoder")), preset


def test_scene_model_sizes_select_their_preset():
    cpu = _compose("pretrain_scene", [])
    paper = _compose("pretrain_scene", ["model=paper"])
    assert (cpu.scene.name, cpu.encoder.name, cpu.dataset.name, cpu.eval.name) == ("pointmae", "point_patch_transformer", "rooms", "auto")
    assert (cpu.encoder.dim, cpu.encoder.depth, cpu.scene.decoder_depth) == (128, 4, 2)
    assert (paper.encoder.dim, paper.encoder.depth, paper.encoder.heads, paper.scene.decoder_depth, paper.encoder.centres,
            paper.encoder.patch, paper.trainer.epochs) == (384, 12, 6, 4, 64, 32, 300)
    assert _compose("pretrain_scene", ["model=paper", "encoder.depth=2"]).encoder.depth == 2  # the command line wins


def test_dataset_choice_applies_the_paper_preset():
    cora = _compose("pretrain_graph", ["graph=graphmae", "dataset=cora"])
    assert (cora.trainer.epochs, cora.encoder.heads, cora.graph.alpha, cora.trainer.weight_decay) == (1500, 4, 3.0, 2e-4)
    assert isinstance(cora.trainer.weight_decay, float)
    citeseer = _compose("pretrain_graph", ["graph=graphmae", "dataset=citeseer"])
    assert (citeseer.trainer.epochs, citeseer.encoder.heads, citeseer.graph.alpha) == (300, 2, 1.0)
    # command-line overrides still win over the preset
    assert _compose("pretrain_graph", ["dataset=cora", "trainer.epochs=7"]).trainer.epochs == 7


def test_selftask_reads_the_raw_self_loops_and_graphmae_does_not():
    """Each method reads the Planetoid graph as its reference does: SelfTask keeps the raw file's
    self-loops (on GCN and GAT), GraphMAE removes them."""
    for dataset in ("cora", "citeseer"):
        for encoder in ("gcn", "gat"):
            assert _compose("pretrain_graph", ["graph=selftask", f"dataset={dataset}", f"encoder={encoder}"]).dataset.keep_raw_self_loops
        assert not _compose("pretrain_graph", ["graph=graphmae", f"dataset={dataset}"]).dataset.keep_raw_self_loops
    assert not _compose("pretrain_graph", ["graph=selftask", "dataset=citeseer", "dataset.keep_raw_self_loops=false"]).dataset.keep_raw_self_loops


def test_evaluate_config_composes():
    cfg = _compose("evaluate_graph", ["encoder_file=x.safetensors", "dataset=citeseer"])
    assert cfg.encoder_file == "x.safetensors" and cfg.dataset.name == "citeseer"
    # evaluation takes the dataset's protocol from the same presets as pretraining
    assert _compose("evaluate_graph", ["encoder_file=x.safetensors", "dataset=mutag"]).eval.pooling == "sum"


def test_graph_level_datasets_default_to_gin_and_the_svc_protocol():
    for dataset, pooling, epochs in (("mutag", "sum", 20), ("imdb-binary", "mean", 60), ("proteins", "max", 100), ("nci1", "sum", 300)):
        cfg = _compose("pretrain_graph", [f"dataset={dataset}"])
        assert (cfg.encoder.name, cfg.eval.name, cfg.eval.pooling, cfg.graph.decoder, cfg.trainer.epochs) == ("gin", "svc", pooling, "gin", epochs)
    assert _compose("pretrain_graph", ["dataset=mutag"]).dataset.batch_size == 64
    # an explicit encoder choice wins over the dataset's default
    assert _compose("pretrain_graph", ["dataset=mutag", "encoder=gat"]).encoder.name == "gat"


def test_graphmae2_selects_its_options_and_its_cora_preset():
    cfg = _compose("pretrain_graph", ["graph=graphmae2", "dataset=cora"])
    assert cfg.graph.name == "graphmae2" and (cfg.graph.lam, cfg.graph.momentum, cfg.graph.remask) == (0.15, 0.0, "fixed")
    assert (cfg.encoder.hidden, cfg.encoder.heads, cfg.trainer.epochs, cfg.eval.lr) == (1024, 8, 2000, 0.025)
    generic = _compose("pretrain_graph", ["graph=graphmae2", "dataset=citeseer"])
    assert (generic.graph.remask, generic.graph.num_remask, generic.graph.lam) == ("random", 3, 1.0)


def test_unknown_keys_are_errors():
    cfg = _compose("pretrain_graph", ["+graph.mask_ratio=0.3"])
    with pytest.raises(ConfigError, match="graph.mask_ratio.*Valid keys of graph: mask_rate"):
        section(cfg, "graph", METHODS.get("graphmae"), exclude=("encoder", "in_dim"))
    with pytest.raises(ConfigError, match="trainer.epoch'"):
        validate(OmegaConf.create({"epoch": 3}), TrainerConfig, "trainer")


def test_numbers_parse_as_floats_and_wrong_types_are_errors():
    out = validate(OmegaConf.create({"lr": "2e-4", "weight_decay": 2e-4}), TrainerConfig, "trainer")
    assert out["lr"] == 2e-4 and isinstance(out["lr"], float)
    with pytest.raises(ConfigError):
        validate(OmegaConf.create({"epochs": "many"}), TrainerConfig, "trainer")


@pytest.mark.parametrize("typed", ["NAN", "1e3", "10", "true"])
def test_a_name_the_command_line_reads_as_a_number_is_refused(typed):
    """dataset.name=NAN became the float nan and was looked for as a TU dataset 'nan' (issue 45)."""
    cfg = _compose("pretrain_graph", ["dataset=tu", f"dataset.name={typed}"])
    with pytest.raises(ConfigError, match="dataset.name is text, but the command line read it as .*quote it"):
        dataset_builder(cfg, "graph", extra={"batch_size": None})
    quoted = _compose("pretrain_graph", ["dataset=tu", f"dataset.name='{typed}'"])
    assert dataset_builder(quoted, "graph", extra={"batch_size": None})[1]["name"] == typed


@pytest.mark.parametrize("dataset", sorted(RGBD | {"rooms"}))
def test_fit_gaussians_configs_compose_into_the_fit_settings(dataset):
    from dataclasses import fields

    from geossl.gaussians.fit import FitConfig
    from geossl.pipeline import dataset_builder

    extra = ["dataset.root=/data/mine"] if dataset == "scannet_export" else []
    cfg = _compose("fit_gaussians", [f"dataset={dataset}", *extra])
    dataset_builder(cfg, "scene", extra=RUN_KEYS, exclude=("split",))
    assert int(cfg.dataset.test_every) > 1
    assert set(cfg.fit) == {f.name for f in fields(FitConfig)} - {"seed"}
    FitConfig(**OmegaConf.to_container(cfg.fit))
    assert isinstance(cfg.fit.lr_scales, float) and isinstance(cfg.fit.densify_grad, float)


def test_datasets_of_the_other_domain_are_refused_with_this_domains_choices():
    from geossl.errors import UnknownNameError

    cfg = _compose("pretrain_graph", ["graph=graphmae", "dataset=sevenscenes"])
    with pytest.raises(UnknownNameError, match="'sevenscenes' is a scene dataset, and this is a graph run. Valid graph datasets: citeseer"):
        run.dataset_builder(cfg)
    with pytest.raises(ConfigError, match="Valid choices of graph dataset: citeseer, collab, cora") as info:
        _compose("pretrain_graph", ["dataset=coral"], "graph")
    assert "rooms" not in str(info.value)
    with pytest.raises(ConfigError, match="Valid choices of scene dataset: redwood, rooms, scannet") as info:
        _compose("pretrain_scene", ["dataset=romos"], "scene")
    assert "cora" not in str(info.value)


@pytest.mark.parametrize("dataset", SCENE_DATASETS)
def test_show_configs_compose_with_keys_the_scene_loaders_take(dataset):
    from geossl.pipeline import dataset_builder

    extra = ["dataset.root=/data/mine"] if dataset in ("scannet_export", "scene_folder", "sunrgbd") else []
    cfg = _compose("show", [f"dataset={dataset}", *extra])
    dataset_builder(cfg, "scene", extra=RUN_KEYS, exclude=("split",))
