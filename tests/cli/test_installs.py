"""Each install runs its own commands: the core alone, core + scene (no graph extra) and core + graph (no scene
extra). The missing extra is simulated in a subprocess by an import blocker (``sys.modules[name] = None`` for the
extra's top-level modules: importing them fails as in an environment without them), so the three installs run in
CI's one venv."""

import json
import subprocess
import sys

from tests.cli.test_cli import NO_PROBE, TINY_GRAPH
from tests.conftest import requires_cora

#: The top-level modules each extra brings (pyproject.toml's optional dependencies).
GRAPH_EXTRA = ("torch_geometric", "sklearn", "pymetis", "dgl")
SCENE_EXTRA = ("plyfile", "gsplat", "spconv", "cumm", "open3d", "libusb_package")

BLOCKER = """
import sys
BLOCKED = set(sys.argv[1].split(",")) - {""}
for name in BLOCKED:  # `import name` raises ModuleNotFoundError, importlib.util.find_spec(name) returns None
    sys.modules[name] = None
from geossl.cli import main
code = main(sys.argv[2:])
loaded = sorted(m for m in sys.modules if sys.modules[m] is not None and m.startswith(("geossl.graph", "geossl.pointcloud")))
print("LOADED", ",".join(sorted({m.split(".")[0] if not m.startswith("geossl.") else ".".join(m.split(".")[:2]) for m in loaded})))
sys.exit(code)
"""


def run(blocked, *args, cwd):
    return subprocess.run([sys.executable, "-c", BLOCKER, ",".join(blocked), *args], capture_output=True, text=True, cwd=cwd, timeout=600)


def loaded(res) -> set:
    line = [x for x in res.stdout.splitlines() if x.startswith("LOADED")][-1]
    return set(filter(None, line.split(" ", 1)[1].split(",")))


def test_the_core_alone_runs_help_and_config_and_names_the_extra_a_command_needs(tmp_path):
    blocked = GRAPH_EXTRA + SCENE_EXTRA
    res = run(blocked, "--help", cwd=tmp_path)
    assert res.returncode == 0 and "pretrain graph=<method>" in res.stdout, res.stderr
    res = run(blocked, "config", "graph=graphmae", "dataset=cora", cwd=tmp_path)
    assert res.returncode == 0 and "mask_rate" in res.stdout, res.stderr
    res = run(blocked, "pretrain", "graph=graphmae", "dataset=cora", cwd=tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert "needs the graph domain" in res.stderr and "torch_geometric" in res.stderr and '.[graph]' in res.stderr
    res = run(blocked, "show", "dataset=rooms", cwd=tmp_path)  # the scene domain imports; open3d is needed when used
    assert res.returncode == 2 and "Traceback" not in res.stderr and ".[scene]" in res.stderr, res.stderr


def test_a_scene_install_without_the_graph_extra_runs_scene_commands(tmp_path):
    res = run(GRAPH_EXTRA, "--help", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    res = run(GRAPH_EXTRA, "datasets", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "graph datasets: not available" in res.stdout and "scene datasets" in res.stdout and "rooms" in res.stdout
    res = run(GRAPH_EXTRA, "pretrain", "scene=pointmae", "dataset=rooms", f"run_dir={tmp_path / 'run'}", *NO_PROBE, "eval=none",
              cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["method"] == "pointmae"
    assert loaded(res) == {"geossl.pointcloud"}, "a scene run imports the scene domain alone"
    res = run(GRAPH_EXTRA, "pretrain", "graph=graphmae", "dataset=cora", cwd=tmp_path)
    assert res.returncode == 2 and "pip install" in res.stderr and "[graph]" in res.stderr, res.stderr


@requires_cora
def test_a_graph_install_without_the_scene_extra_runs_graph_commands(tmp_path):
    res = run(SCENE_EXTRA, "pretrain", "graph=graphmae", "dataset=cora", f"run_dir={tmp_path / 'run'}", *TINY_GRAPH, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert loaded(res) == {"geossl.graph"}, "a graph run imports the graph domain alone"
    res = run(SCENE_EXTRA, "evaluate", f"encoder={tmp_path / 'run' / 'encoder.safetensors'}", "dataset=cora", cwd=tmp_path)
    assert res.returncode == 0 and '"test_acc"' in res.stdout, res.stderr
    res = run(SCENE_EXTRA, "datasets", cwd=tmp_path)  # the scene package imports; its extra is needed when a scene is read
    assert res.returncode == 0 and "cora" in res.stdout, res.stderr
    res = run(SCENE_EXTRA, "show", "dataset=rooms", cwd=tmp_path)  # ray-cast views need open3d, of the scene extra
    assert res.returncode == 2 and "Traceback" not in res.stderr and "[scene]" in res.stderr, res.stderr


def test_a_scene_fine_tune_in_a_full_install_imports_the_scene_domain_alone(tmp_path):
    """Finding the run's domain from dataset=rooms asks the task's own domain first (graph was imported before)."""
    from tests.cli.test_cli import TINY_DETECTION

    res = run((), "finetune", "detection=votenet", "dataset=rooms", f"run_dir={tmp_path / 'det'}", *TINY_DETECTION, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert loaded(res) == {"geossl.pointcloud"}
