"""DGL interop: DGL graphs in and out of geossl (Wang et al., "Deep Graph Library", 2019; https://www.dgl.ai).

geossl computes on PyTorch Geometric ``Data``; much graph-SSL code (GraphMAE's reference among it) is written on
DGL. :func:`from_dgl` and :func:`to_dgl` convert homogeneous graphs both ways, single or batched, and every geossl
graph encoder and method accepts a ``DGLGraph`` where it accepts a ``Data`` (:func:`as_pyg`: converted once and
remembered while the graph's tensors are unchanged, not converted per step).

Names across the two libraries (everything else keeps its name)::

    PyG Data                       DGLGraph
    x                              ndata["feat"]
    y  (per node)                  ndata["label"]
    train_mask / val_mask / ...    ndata["train_mask"] / ...   (any per-node tensor)
    self_loop_weight               ndata["self_loop_weight"]   (weights of A + I's diagonal, geossl's GCN)
    edge_weight                    edata["weight"]
    edge_attr / ...                edata["edge_attr"] / ...    (any per-edge tensor)
    edge_index                     g.edges() in edge-id order   (self-loops are ordinary edges in both)
    batch / ptr (a PyG Batch)      a batched DGLGraph (dgl.batch: batch_num_nodes / batch_num_edges)

A ``DGLGraph`` has no graph-level storage, so graph labels travel beside it: ``from_dgl(g, graph_labels=y)``
and ``to_dgl`` leaves ``batch.y`` to the caller (DGL's own datasets yield ``(graph, label)`` pairs the same way).

Importing DGL goes through :func:`import_dgl`, the one place that deals with DGL 2.1.0 (the newest Linux wheel)
on newer torch builds: its optional GraphBolt library ships compiled for torch 2.0-2.2 only, and ``import dgl``
fails when the library for the running torch is missing. geossl then registers a stand-in for
``dgl.graphbolt`` that raises a clear error on use; DGL's graphs, ``dgl.nn`` and ``dgl.data`` do not need
GraphBolt (docs/dgl.md lists what does not work).
"""

from __future__ import annotations

import importlib.util
import sys
import types
import warnings
import weakref
from pathlib import Path
from typing import Any, Dict, Optional

import torch
from torch import Tensor

from geossl.errors import GeosslError

#: PyG attribute name -> DGL ndata / edata key, where they differ.
NODE_NAMES = {"x": "feat", "y": "label"}
EDGE_NAMES = {"edge_weight": "weight"}


class InteropError(GeosslError, ValueError):
    """A graph that cannot be converted between DGL and PyG (heterogeneous, wrong device, no features)."""


class _GraphBoltUnavailable(types.ModuleType):
    """Stands in for ``dgl.graphbolt`` when its compiled library does not exist for the running torch."""

    def __init__(self, reason: str):
        super().__init__("dgl.graphbolt")
        self.__file__ = None
        self._reason = reason

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        raise ImportError(f"dgl.graphbolt.{name} is unavailable: {self._reason} geossl does not use GraphBolt; DGL's graphs, "
                          "dgl.nn and dgl.data work without it.")


def allow_dgl_without_graphbolt() -> bool:
    """Let a later ``import dgl`` succeed where DGL's GraphBolt library does not exist for the running torch, by
    registering the stand-in for ``dgl.graphbolt`` (see the module docstring). Runs when ``geossl.graph`` is
    imported; DGL itself is not imported. Returns whether DGL is installed."""
    if "dgl" in sys.modules:
        return True
    spec = importlib.util.find_spec("dgl")
    if spec is None or spec.origin is None:
        return False
    version = torch.__version__.split("+", 1)[0]
    library = Path(spec.origin).parent / "graphbolt" / f"libgraphbolt_pytorch_{version}.so"
    if not library.exists() and "dgl.graphbolt" not in sys.modules:
        sys.modules["dgl.graphbolt"] = _GraphBoltUnavailable(f"DGL ships no GraphBolt library for torch {version} ({library.name}).")
    return True


def import_dgl():
    """``import dgl``, made to work on torch builds that DGL's GraphBolt library was not compiled for
    (:func:`allow_dgl_without_graphbolt`); a missing DGL says how to install it."""
    if "dgl" in sys.modules:
        return sys.modules["dgl"]
    if not allow_dgl_without_graphbolt():
        raise InteropError("DGL is not installed: install geossl's dgl extra (pip install -e '.[dgl]' torch==2.13.0); "
                           "docs/dgl.md says which DGL version and why.")
    with warnings.catch_warnings():  # torchdata's deprecation banner about datapipes, which DGL imports and geossl does not use
        warnings.filterwarnings("ignore", message=r"(?s).*datapipes", category=UserWarning)
        import dgl
    if not hasattr(dgl, "graphbolt"):
        dgl.graphbolt = sys.modules["dgl.graphbolt"]
    return dgl


def is_dgl_graph(obj: Any) -> bool:
    """Whether ``obj`` is a ``DGLGraph`` (checked without importing DGL)."""
    return any(c.__module__.startswith("dgl.") and c.__name__ == "DGLGraph" for c in type(obj).__mro__)


def _check_homogeneous(g) -> None:
    if len(g.ntypes) != 1 or len(g.canonical_etypes) != 1:
        raise InteropError(f"A heterogeneous DGL graph ({len(g.ntypes)} node types {g.ntypes}, {len(g.canonical_etypes)} edge types) "
                           "cannot be converted: geossl's encoders take one node and one edge type. Convert it first, e.g. "
                           "dgl.to_homogeneous(g, ndata=[...]) after giving every node type the same feature width.")


def from_dgl(g, graph_labels: Optional[Tensor] = None):
    """A PyG ``Data`` (or, for a batched ``DGLGraph``, a PyG ``Batch`` with the same graph membership) holding
    ``g``'s edges in edge-id order and every node and edge tensor (names as in the module docstring). Tensors
    are shared, not copied, and stay on ``g``'s device.

    Args:
        g: a homogeneous ``DGLGraph``; a heterogeneous one is refused.
        graph_labels: per-graph labels ``[batch_size, ...]`` (a DGLGraph cannot hold them), stored as ``y``.
    """
    from torch_geometric.data import Batch, Data

    if not is_dgl_graph(g):
        raise InteropError(f"from_dgl expects a dgl.DGLGraph, got {type(g).__name__}.")
    _check_homogeneous(g)
    if g.batch_size > 1:
        dgl = import_dgl()
        graphs = [from_dgl(part) for part in dgl.unbatch(g)]
        out = Batch.from_data_list(graphs)
        if graph_labels is not None:
            if len(graph_labels) != g.batch_size:
                raise InteropError(f"graph_labels has {len(graph_labels)} rows for a batch of {g.batch_size} graphs.")
            out.y = graph_labels
        return out
    src, dst = g.edges(order="eid")
    attrs: Dict[str, Tensor] = {}
    node_keys = {v: k for k, v in NODE_NAMES.items()}
    edge_keys = {v: k for k, v in EDGE_NAMES.items()}
    for key, value in g.ndata.items():
        attrs[node_keys.get(key, key)] = value
    for key, value in g.edata.items():
        attrs[edge_keys.get(key, key)] = value
    if graph_labels is not None:
        if len(graph_labels) != 1:
            raise InteropError(f"graph_labels has {len(graph_labels)} rows for a single graph.")
        if "y" in attrs:
            raise InteropError("The graph has node labels (ndata['label']) and graph_labels was given too; pass one.")
        attrs["y"] = graph_labels
    return Data(edge_index=torch.stack([src, dst]).long(), num_nodes=g.num_nodes(), **attrs)


def to_dgl(data):
    """A ``DGLGraph`` of a PyG ``Data`` (edges in ``edge_index`` order, every per-node and per-edge tensor, names
    as in the module docstring), or a batched ``DGLGraph`` of a PyG ``Batch``. Graph-level attributes (a graph
    classification label) are not carried: a DGLGraph has no place for them."""
    from torch_geometric.data import Batch

    dgl = import_dgl()
    if isinstance(data, Batch):
        return dgl.batch([to_dgl(part) for part in data.to_data_list()])
    n = int(data.num_nodes)
    g = dgl.graph((data.edge_index[0], data.edge_index[1]), num_nodes=n, device=data.edge_index.device)
    e = data.edge_index.shape[1]
    for key, value in data.items():
        if key == "edge_index" or not isinstance(value, Tensor):
            continue
        if data.is_edge_attr(key) and value.dim() >= 1 and value.shape[0] == e:
            g.edata[EDGE_NAMES.get(key, key)] = value
        elif data.is_node_attr(key) and value.dim() >= 1 and value.shape[0] == n:
            g.ndata[NODE_NAMES.get(key, key)] = value
    return g


def _signature(g) -> tuple:
    """What must not change for a remembered conversion of ``g`` to stay valid: its sizes and its tensors (the
    same objects at the same in-place version)."""
    tensors = [(k, v, v._version) for k, v in list(g.ndata.items()) + list(g.edata.items())]
    return (g.num_nodes(), g.num_edges(), tuple((k, id(v), version) for k, v, version in tensors))


_CONVERTED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def as_pyg(data, device: Optional[torch.device] = None):
    """``data`` itself when it is not a DGL graph; for a ``DGLGraph``, :func:`from_dgl` of it, remembered while
    the graph's sizes and tensors are unchanged (a training loop passing the same graph every step converts
    it once). ``device``: the device of the module it is for; a graph elsewhere is refused with what to do."""
    if not is_dgl_graph(data):
        return data
    if "feat" not in data.ndata:
        raise InteropError(f"The DGL graph has no node features: geossl's encoders read ndata['feat'] (the graph has "
                           f"{', '.join(data.ndata.keys()) or 'no node data'}); set g.ndata['feat'] = <[num_nodes, dim] tensor>.")
    if device is not None and data.device != torch.device(device):
        raise InteropError(f"The DGL graph is on {data.device} and the model on {device}: move one of them "
                           f"(g = g.to('{device}') or model.to('{data.device}')).")
    entry = _CONVERTED.get(data)
    signature = _signature(data)
    if entry is None or entry[0] != signature:
        entry = (signature, from_dgl(data))
        _CONVERTED[data] = entry
    return entry[1]


def module_device(module: torch.nn.Module) -> Optional[torch.device]:
    """The device of ``module``'s first parameter (None without parameters)."""
    p = next(module.parameters(), None)
    return None if p is None else p.device
