"""Graph datasets read through PyTorch Geometric from the geossl data root.

Layout under the data root (``dataset.root``, else ``$GEOSSL_DATA``)::

    planetoid/<Name>/raw/ind.<name>.{x,tx,allx,y,ty,ally,graph,test.index}
    tudataset/<NAME>/raw/<NAME>_{A,graph_indicator,graph_labels,...}.txt

Nothing is downloaded unless ``download=True``; a missing dataset raises
:class:`~geossl.errors.DatasetNotFoundError` naming the folder that was searched.
"""

from __future__ import annotations

import collections
import contextlib
import io
import pickle
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import torch

from geossl.data import cache_lock, cache_root, cached_dataset_dir, check_dataset_name, content_key, data_root
from geossl.errors import DatasetNotFoundError, StorageError
from geossl.graph.graph_files import GraphFileError, check_tu_folder, find_file, read_gin_file
from geossl.io import atomic_write, load_refusal, storage_problem
from geossl.registry import DATASETS

@dataclass
class GraphDataset:
    """A loaded graph dataset.

    Attributes:
        name: registry name ("cora").
        task: "node" (one graph, node labels and split masks) or "graph".
        data: for node tasks, the single PyG ``Data`` with ``x``, ``edge_index``, ``y`` and
            ``train_mask``/``val_mask``/``test_mask``.
        num_features: input feature width.
        num_classes: number of label classes.
        source: the folder it was read from.
    """

    name: str
    task: str
    data: object
    num_features: int
    num_classes: int
    source: str

    @property
    def in_dim(self) -> int:
        """The input feature width (what the run pipeline calls every domain's input width)."""
        return self.num_features


#: Raw files each collection must have, as functions of the dataset name.
RAW_FILES = {
    "planetoid": lambda name: [f"ind.{name.lower()}.{s}" for s in ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")],
    "tudataset": lambda name: [f"{name}_{s}.txt" for s in ("A", "graph_indicator", "graph_labels")],
}


def dataset_dir(collection: str, name: str, root: Optional[str] = None) -> Path:
    """The folder a dataset is expected in: ``<data root>/<collection>/<name>``."""
    return data_root(root) / collection / name


def missing_raw_files(collection: str, name: str, root: Optional[str] = None) -> list[str]:
    """Raw files of dataset ``name`` that are not in its ``raw/`` folder (empty: all present)."""
    raw = dataset_dir(collection, name, root) / "raw"
    return [f for f in RAW_FILES[collection](name) if not (raw / f).is_file()]


@contextlib.contextmanager
def _pyg_safe_load():
    """Let PyG read its own processed files with ``weights_only=True`` (it otherwise warns and
    falls back to full unpickling) by allowing its ``Data`` classes."""
    from torch_geometric.data import Data
    from torch_geometric.data.data import DataEdgeAttr, DataTensorAttr
    from torch_geometric.data.storage import GlobalStorage

    with torch.serialization.safe_globals([Data, DataEdgeAttr, DataTensorAttr, GlobalStorage]):
        yield


def _reprocessing(folder: Path, build):
    """``build()`` (a PyG dataset over ``folder``); when it fails and ``folder/processed`` exists (what PyG wrote there
    may be truncated: a disk that filled up, a killed run), that folder is removed and PyG processes the raw files
    again, once. geossl's cache is the only place it deletes from."""
    try:
        return build()
    except Exception as exc:  # noqa: BLE001 - PyG reports a truncated file in many ways; the retry decides
        processed = folder / "processed"
        problem = storage_problem(exc, folder)
        if problem is not None:  # PyG could not write its processed files: say where and why
            shutil.rmtree(processed, ignore_errors=True)
            raise StorageError(f"Could not write the processed dataset in {processed}: {problem}.") from None
        if not processed.is_dir():
            raise
        shutil.rmtree(processed)
        return build()


def _open_pyg(pyg_cls, collection: str, name: str, root: Optional[str], download: bool, **kwargs):
    """Instantiate PyG dataset class ``pyg_cls`` on our data layout; returns (dataset, source folder).

    Present raw files are linked into the cache, where PyG writes ``processed/`` (the data root
    is only read); missing ones are downloaded into the cache only when ``download`` is True.
    """
    src = dataset_dir(collection, name, root)
    missing = missing_raw_files(collection, name, root)
    if missing:
        if not download:
            raise DatasetNotFoundError(
                f"Dataset {name} was not found: looked for {src / 'raw'} (missing {', '.join(missing[:3])}"
                f"{'...' if len(missing) > 3 else ''}). Point the data root at a folder with "
                f"{collection}/{name}/raw/ (set GEOSSL_DATA or pass dataset.root=<dir>), or allow a download "
                "with dataset.download=true."
            )
        folder = cache_root() / "datasets" / collection / name
        with cache_lock(folder):
            return pyg_cls(str(folder.parent), name=name, **kwargs), folder
    folder = cached_dataset_dir(src / "raw", collection, name)
    with cache_lock(folder), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), _pyg_safe_load():
        return _reprocessing(folder, lambda: pyg_cls(str(folder.parent), name=name, **kwargs)), src


def load_planetoid(name: str, root: Optional[str] = None, download: bool = False,
                   keep_raw_self_loops: bool = False) -> GraphDataset:
    """Load a Planetoid citation graph with the public split, as GraphMAE/SelfTask use it.

    Features are row-normalised; self-loops are removed and then added once to every node.

    Args:
        name: "Cora", "CiteSeer" or "PubMed".
        root: data root; defaults to ``$GEOSSL_DATA``.
        download: allow PyG to download the raw files into the geossl cache when they are missing.
        keep_raw_self_loops: also keep the self-loops the raw graph file lists (CiteSeer has 124,
            Cora none), as Kipf and Welling's GCN preprocessing does and SelfTask's reference code
            inherits (ChandlerBang/SelfTask-GNN, src/utils.py: the adjacency is read with its
            loops and then ``A + I`` is normalised). Those nodes get ``data.self_loop_weight`` 2
            (1 elsewhere), the weight of their self-loop in ``A + I`` that the GCN layers
            propagate with (:func:`geossl.graph.encoders.common.gcn_edge_weight`); the edge list
            itself and every pretext target are unchanged. GraphMAE's reference removes the
            loops, which is the default.
    """
    from torch_geometric.datasets import Planetoid
    from torch_geometric.transforms import NormalizeFeatures
    from torch_geometric.utils import add_self_loops, remove_self_loops

    ds, source = _open_pyg(Planetoid, "planetoid", name, root, download, transform=NormalizeFeatures())
    data = ds[0]
    edge_index, _ = remove_self_loops(data.edge_index)
    data.edge_index, _ = add_self_loops(edge_index, num_nodes=data.num_nodes)
    if keep_raw_self_loops:
        looped = raw_self_loop_nodes(Path(ds.raw_dir) / f"ind.{name.lower()}.graph")
        if len(looped):
            data.self_loop_weight = torch.ones(data.num_nodes)
            data.self_loop_weight[looped] = 2.0
    return GraphDataset(
        name=name.lower(), task="node", data=data, num_features=ds.num_features,
        num_classes=ds.num_classes, source=str(source),
    )


def prepare(data, normalize_features: bool = False):
    """A copy of a PyG graph (``Data`` or ``Batch``, or a ``DGLGraph``, converted by
    :func:`geossl.graph.interop.from_dgl`) in the form geossl's encoders were pretrained on:
    self-loops removed, then one added to every node (GAT and GIN expect them; GCN adds its own); with
    ``normalize_features``, every node's features divided by their sum (PyG's ``NormalizeFeatures``, what
    the Planetoid datasets get). A graph loaded with :func:`load_dataset` is already prepared.

    Example::

        encoder = geossl.load_encoder("runs/graphmae-cora/<stamp>/encoder.safetensors")
        embeddings = encoder(prepare(my_graph, normalize_features=True))
    """
    from torch_geometric.transforms import NormalizeFeatures
    from torch_geometric.utils import add_self_loops, remove_self_loops

    from geossl.graph.interop import as_pyg

    out = as_pyg(data).clone()
    edge_index, _ = remove_self_loops(out.edge_index)
    out.edge_index, _ = add_self_loops(edge_index, num_nodes=out.num_nodes)
    if normalize_features:
        out = NormalizeFeatures()(out)
    return out


class _AdjacencyListUnpickler(pickle.Unpickler):
    """Unpickler for Planetoid's ``ind.<name>.graph`` (a ``defaultdict`` of int lists) that
    refuses every other class, so a foreign file cannot run code."""

    def find_class(self, module, name):
        if (module, name) == ("collections", "defaultdict"):
            return collections.defaultdict
        if (module, name) in {("builtins", "list"), ("__builtin__", "list")}:
            return list
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a Planetoid adjacency list")


def raw_self_loop_nodes(graph_file: Path) -> torch.Tensor:
    """Nodes whose own index appears in their adjacency list in Planetoid's raw graph file (the
    self-loops PyG drops), sorted."""
    with open(graph_file, "rb") as f:
        adjacency = _AdjacencyListUnpickler(f, encoding="latin1").load()
    return torch.tensor(sorted(int(k) for k, v in adjacency.items() if k in v), dtype=torch.long)


@DATASETS.register("cora", domain="graph")
def cora(root: Optional[str] = None, download: bool = False, keep_raw_self_loops: bool = False) -> GraphDataset:
    """Cora citation graph (2708 nodes, 1433 bag-of-words features, 7 classes), public split."""
    return load_planetoid("Cora", root, download, keep_raw_self_loops)


@DATASETS.register("citeseer", domain="graph")
def citeseer(root: Optional[str] = None, download: bool = False, keep_raw_self_loops: bool = False) -> GraphDataset:
    """CiteSeer citation graph (3327 nodes, 3703 features, 6 classes), public split."""
    return load_planetoid("CiteSeer", root, download, keep_raw_self_loops)


@DATASETS.register("pubmed", domain="graph")
def pubmed(root: Optional[str] = None, download: bool = False, keep_raw_self_loops: bool = False) -> GraphDataset:
    """PubMed citation graph (19717 nodes, 500 TF-IDF features, 3 classes), public split."""
    return load_planetoid("PubMed", root, download, keep_raw_self_loops)


#: Degrees above this share one feature bucket when degrees become node features (as GraphMAE does).
MAX_DEGREE = 400


def prepare_graphs(graphs: List, name: str, source: str) -> GraphDataset:
    """Turn raw graphs into GraphMAE's graph-classification inputs.

    Graphs without node features get one-hot degree features (degree counted before self-loops,
    capped at :data:`MAX_DEGREE`, width ``min(max degree, MAX_DEGREE) + 1``), as the reference
    does for IMDB, COLLAB and REDDIT; self-loops are then removed and added once per node; graph
    labels become ``y`` of shape ``[1]`` with classes numbered 0..C-1.

    Args:
        graphs: PyG ``Data`` objects with ``edge_index``, ``y`` and optionally ``x``.
        name: dataset name for the result.
        source: where the graphs were read from.
    """
    import torch.nn.functional as F
    from torch_geometric.data import Data
    from torch_geometric.utils import add_self_loops, degree, remove_self_loops

    if not graphs:
        raise GraphFileError(f"{source} holds no graphs.")
    with_x = [g.x is not None and g.x.dim() == 2 and g.x.shape[1] > 0 for g in graphs]
    if any(with_x) and not all(with_x):
        raise GraphFileError(f"{source}: some graphs have node features and some do not.")
    labels = torch.cat([torch.as_tensor(g.y).view(-1)[:1] for g in graphs])
    classes, y = torch.unique(labels, sorted=True, return_inverse=True)
    if not all(with_x):
        degs = [degree(remove_self_loops(g.edge_index)[0][0], g.num_nodes).long().clamp(max=MAX_DEGREE) for g in graphs]
        width = int(max(int(d.max()) if d.numel() else 0 for d in degs)) + 1
    out = []
    for i, g in enumerate(graphs):
        x = g.x.float() if with_x[i] else F.one_hot(degs[i], width).float()
        edge_index, _ = remove_self_loops(g.edge_index)
        edge_index, _ = add_self_loops(edge_index, num_nodes=x.shape[0])
        out.append(Data(x=x, edge_index=edge_index, y=y[i:i + 1]))
    return GraphDataset(name=name, task="graph", data=out, num_features=out[0].x.shape[1], num_classes=len(classes), source=source)


def tu_raw_folder(name: str, root: Optional[str] = None) -> tuple[Optional[Path], List[Path]]:
    """Where the raw files of TU dataset ``name`` are: the first of ``<root>/tudataset/<name>/raw``,
    ``<root>/<name>/raw``, ``<root>/<name>`` and ``<root>`` holding ``<name>_A.txt``; and all
    folders searched."""
    base = data_root(root)
    searched = [base / "tudataset" / name / "raw", base / name / "raw", base / name, base]
    return next((d for d in searched if (d / f"{name}_A.txt").is_file()), None), searched


def load_tu(name: str, root: Optional[str] = None, download: bool = False) -> GraphDataset:
    """Load a TU graph-classification dataset (Morris et al., 2020) through PyG's ``TUDataset``.

    Node labels, where the dataset has them, become one-hot node features; datasets without
    node labels or attributes get one-hot degree features (see :func:`prepare_graphs`). The raw
    folder is checked first (:func:`~geossl.graph.graph_files.check_tu_folder`).

    Args:
        name: the TU name, e.g. "MUTAG", "PROTEINS", "IMDB-BINARY"; also the file prefix.
        root: a data root with ``tudataset/<name>/raw/``, or any folder holding ``<name>_*.txt``
            (directly or in ``<name>/`` or ``<name>/raw/``); defaults to ``$GEOSSL_DATA``.
        download: allow PyG to download the dataset into the geossl cache when it is missing.
    """
    from torch_geometric.datasets import TUDataset

    check_dataset_name(name)
    raw, searched = tu_raw_folder(name, root)
    if raw is None:
        if not download:
            raise DatasetNotFoundError(
                f"TU dataset {name} was not found: looked for {name}_A.txt in {', '.join(str(s) for s in searched)}. "
                f"Point the data root at a folder with tudataset/{name}/raw/ (set GEOSSL_DATA or pass "
                "dataset.root=<dir>), or allow a download with dataset.download=true."
            )
        folder = cache_root() / "datasets" / "tudataset" / name
        with cache_lock(folder), _pyg_safe_load():
            ds = TUDataset(str(folder.parent), name=name)
        return prepare_graphs(list(ds), name.lower(), str(folder))
    nodes_per_graph = check_tu_folder(raw, name)
    folder = cached_dataset_dir(raw, "tudataset", name)
    # Node labels are the features when a dataset has them (as GraphMAE uses them); a dataset with attributes
    # and no labels gets its attributes (PyG drops them unless asked, which left zero-width features).
    attributes_only = (raw / f"{name}_node_attributes.txt").is_file() and not (raw / f"{name}_node_labels.txt").is_file()
    try:
        with cache_lock(folder), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), _pyg_safe_load():
            ds = _reprocessing(folder, lambda: TUDataset(str(folder.parent), name=name, use_node_attr=attributes_only))
    except (ValueError, IndexError, RuntimeError, TypeError) as err:  # what our checks let through and PyG's reader refuses
        raise GraphFileError(f"PyG's TU reader could not read {raw}: {type(err).__name__}: {err}") from None
    _keep_trailing_edgeless_graphs(ds, len(nodes_per_graph))
    graphs = list(ds)
    if [int(g.num_nodes) for g in graphs] != nodes_per_graph.tolist():
        raise GraphFileError(f"PyG's TU reader split {raw} into {len(graphs)} graphs, not the {len(nodes_per_graph)} graphs of its "
                             f"{name}_graph_indicator.txt with their node counts.")
    return prepare_graphs(graphs, name.lower(), str(raw))


def _keep_trailing_edgeless_graphs(ds, graphs: int) -> None:
    """PyG's TU reader slices edges by a bincount of their graph ids without a length, so the last graphs, when they
    have no edges, get no edge slice and the dataset comes out short. Their slices are empty: extend every short slice
    vector with its last offset to the graph count of the graph indicator."""
    short = {k: v for k, v in ds.slices.items() if len(v) < graphs + 1}
    for key, offsets in short.items():
        ds.slices[key] = torch.cat([offsets, offsets[-1:].expand(graphs + 1 - len(offsets))])
    if short:
        ds._data_list = None  # PyG's per-graph cache, built for the short length


@DATASETS.register("tu", domain="graph",
                   about="any TU raw folder: dataset=tu dataset.name=<NAME> [dataset.root=<dir>] (docs/datasets.md)")
def tu(name: str = "MUTAG", root: Optional[str] = None, download: bool = False) -> GraphDataset:
    """Any TU dataset by its TU name (``dataset=tu dataset.name=<NAME> [dataset.root=<dir>]``)."""
    return load_tu(name, root, download)


def _register_tu(key: str, tu_name: str) -> None:
    def builder(root: Optional[str] = None, download: bool = False) -> GraphDataset:
        return load_tu(tu_name, root, download)

    builder.__doc__ = f"TU dataset {tu_name} (graph classification)."
    builder.__name__ = key.replace("-", "_")
    DATASETS.register(key, domain="graph")(builder)


#: TU datasets with a registry name of their own: registry name -> TU name.
TU_NAMES = {"mutag": "MUTAG", "proteins": "PROTEINS", "nci1": "NCI1", "imdb-binary": "IMDB-BINARY", "imdb-multi": "IMDB-MULTI"}
for _key, _tu_name in TU_NAMES.items():
    _register_tu(_key, _tu_name)


def load_gin_format(name: str, root: Optional[str] = None) -> GraphDataset:
    """Load a dataset in the GIN text format (COLLAB, REDDIT-BINARY as the GIN authors ship them).

    Node tags become one-hot features when they vary, attributes are used when every node has
    them, and otherwise degree features are used, so the graphs equal what ``TUDataset`` + the
    degree features give for the same dataset. The parsed graphs are cached under
    ``$GEOSSL_CACHE/datasets/gin_format/`` (parsing COLLAB's 84 MB takes a while).

    Args:
        name: file name without extension, e.g. "COLLAB".
        root: data root holding ``tudataset_gin_format/<name>.zip`` (or ``<name>/<name>.txt``);
            defaults to ``$GEOSSL_DATA``.
    """
    import torch.nn.functional as F
    from torch_geometric.data import Data

    base = data_root(root) / "tudataset_gin_format"
    candidates = [base / f"{name}.zip", base / name / f"{name}.txt", base / f"{name}.txt"]
    path = find_file(candidates)
    if path is None:
        raise DatasetNotFoundError(
            f"Dataset {name} (GIN text format) was not found: looked for {', '.join(str(c) for c in candidates)}. "
            "Set GEOSSL_DATA or pass dataset.root=<dir> with tudataset_gin_format/ in it."
        )
    cache = cache_root() / "datasets" / "gin_format" / f"{name}-{content_key([path], path.parent)}.pt"
    if cache.is_file():
        parsed = torch.load(cache, weights_only=True)
    else:
        parsed = read_gin_file(path, name)
        atomic_write(cache, lambda f: torch.save(parsed, f))
    tags = torch.cat([g["tags"] for g in parsed])
    tag_values = torch.unique(tags)
    graphs = []
    for g in parsed:
        x = None
        if all(p["attributes"] is not None for p in parsed):
            x = g["attributes"]
        elif len(tag_values) > 1:
            x = F.one_hot(torch.searchsorted(tag_values, g["tags"]), len(tag_values)).float()
        graphs.append(Data(x=x, edge_index=g["edge_index"], y=torch.tensor([g["label"]]), num_nodes=len(g["tags"])))
    return prepare_graphs(graphs, name.lower(), str(path))


#: GIN-format datasets: registry name -> file name.
GIN_FORMAT_NAMES = {"collab": "COLLAB", "reddit-binary": "REDDIT-BINARY"}
for _key, _file in GIN_FORMAT_NAMES.items():
    def _gin_builder(root: Optional[str] = None, _file=_file) -> GraphDataset:
        return load_gin_format(_file, root)

    _gin_builder.__doc__ = f"{_file} in the GIN text format (graph classification, degree features)."
    DATASETS.register(_key, domain="graph")(_gin_builder)


def _graph_problem(g) -> Optional[str]:
    """What makes a user's PyG ``Data`` unusable as a graph-classification example, or None."""
    ei, y = g.edge_index, torch.as_tensor(g.y)
    if not torch.is_tensor(ei) or ei.dim() != 2 or ei.shape[0] != 2 or ei.dtype not in (torch.int64, torch.int32):
        return f"has edge_index of shape {tuple(getattr(ei, 'shape', ()))}, expected an integer [2, E] tensor"
    if y.numel() < 1 or y.is_floating_point() and not torch.isfinite(y).all():
        return "has no usable label y"
    x = g.x
    if x is not None and (not torch.is_tensor(x) or x.dim() != 2 or not x.is_floating_point() or not torch.isfinite(x).all()):
        return "has node features x that are not a finite float [N, F] tensor"
    nodes = x.shape[0] if x is not None else g.num_nodes
    if nodes is None or nodes < 1:
        return "has no nodes"
    if ei.numel() and (int(ei.min()) < 0 or int(ei.max()) >= nodes):
        return f"has edges naming nodes outside 0..{nodes - 1}"
    return None


@DATASETS.register("graph_list", domain="graph",
                   about="a saved list of PyG Data: dataset=graph_list dataset.path=<file.pt> (docs/datasets.md)")
def graph_list(path: str = "???", name: Optional[str] = None) -> GraphDataset:
    """Graphs a user saved with ``torch.save(list_of_pyg_Data, path)`` (graph classification).

    Read with ``weights_only=True`` (only PyG's ``Data`` classes are allowed beside tensors), then
    prepared like TU graphs (:func:`prepare_graphs`): each ``Data`` needs ``edge_index`` and a
    graph label ``y``; ``x`` is optional (degree features otherwise).

    Args:
        path: the ``.pt`` file.
        name: dataset name for run folders; defaults to the file's stem.
    """
    from torch_geometric.data import Data

    file = Path(path).expanduser()
    if not file.is_file():
        raise DatasetNotFoundError(f"Graph list {file} was not found (dataset=graph_list dataset.path=<file saved with torch.save>).")
    try:
        with _pyg_safe_load(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")  # a corrupt file: refused below
            graphs = torch.load(file, weights_only=True)
    except Exception as err:
        raise GraphFileError(f"{file} could not be read as a saved list of PyG Data objects: {load_refusal(err)}") from None
    if not isinstance(graphs, (list, tuple)) or not all(isinstance(g, Data) for g in graphs):
        raise GraphFileError(f"{file} does not hold a list of torch_geometric.data.Data objects (found {type(graphs).__name__}).")
    try:
        missing = [i for i, g in enumerate(graphs) if g.edge_index is None or g.y is None]
        if missing:
            raise GraphFileError(f"{file}: graph {missing[0]} lacks edge_index or its label y ({len(missing)} such graphs).")
        for i, g in enumerate(graphs):
            problem = _graph_problem(g)
            if problem:
                raise GraphFileError(f"{file}: graph {i} {problem}.")
    except (RuntimeError, AttributeError, TypeError, KeyError) as err:  # a Data object whose storage is not PyG's
        raise GraphFileError(f"{file} holds Data objects PyG cannot use: {type(err).__name__}: {str(err)[:200]}") from None
    return prepare_graphs(list(graphs), name or file.stem.lower(), str(file))


#: Planetoid datasets: registry name -> PyG name.
PLANETOID_NAMES = {"cora": "Cora", "citeseer": "CiteSeer", "pubmed": "PubMed"}


def dataset_status(name: str, root: Optional[str] = None) -> tuple[bool, str]:
    """Whether registered dataset ``name`` is present under the data root, and where it was looked for."""
    if name in PLANETOID_NAMES:
        where = dataset_dir("planetoid", PLANETOID_NAMES[name], root) / "raw"
        return not missing_raw_files("planetoid", PLANETOID_NAMES[name], root), str(where)
    if name in TU_NAMES:
        raw, searched = tu_raw_folder(TU_NAMES[name], root)
        return raw is not None, str(raw or searched[0])
    if name in GIN_FORMAT_NAMES:
        base = data_root(root) / "tudataset_gin_format"
        found = find_file([base / f"{GIN_FORMAT_NAMES[name]}.zip", base / GIN_FORMAT_NAMES[name] / f"{GIN_FORMAT_NAMES[name]}.txt"])
        return found is not None, str(found or base / f"{GIN_FORMAT_NAMES[name]}.zip")
    return False, "dataset.name / dataset.path choose the files"


def load_dataset(key: str, **kwargs) -> GraphDataset:
    """Build the dataset registered under ``key`` (unknown keys list the valid ones)."""
    return DATASETS.get(key)(**kwargs)


def to_device(dataset: GraphDataset, device: torch.device) -> GraphDataset:
    dataset.data = dataset.data.to(device)
    return dataset


#: Node-feature keys a DGL dataset's graphs are searched for (``dataset.features=auto``), in this order; TU's
#: integer ``node_labels`` come last and become one-hot features, as geossl's own TU loader makes them.
DGL_FEATURE_KEYS = ("feat", "attr", "node_attr", "x", "node_labels")


@DATASETS.register("dgl", domain="graph",
                   about="a DGL built-in dataset from DGL's folder: dataset=dgl dataset.name=<class in dgl.data> (docs/dgl.md)")
def dgl_dataset(name: str = "CoraGraphDataset", root: Optional[str] = None, features: str = "auto",
                args: Optional[dict] = None) -> GraphDataset:
    """One of DGL's built-in datasets (``dgl.data.<name>``), read from DGL's download folder and converted
    with :func:`geossl.graph.interop.from_dgl`, then prepared as geossl's own loaders prepare graphs.

    A dataset of one graph with ``train_mask`` is node-level (its ``label`` are the classes, its masks the
    split); a dataset of ``(graph, label)`` pairs is graph-level (:func:`prepare_graphs`: graph labels renumbered,
    degree features when the graphs have none; give ``encoder=gin eval=svc`` as for TU datasets). Nothing is
    downloaded: a dataset whose files are not in DGL's folder names the folder DGL looked in.

    DGL's readers run on the raw files only: the processed copies DGL keeps beside them (graphs plus an ``info.pkl``
    pickle) are never loaded, and none are written, so the raw files are processed on every load. DGL's raw formats
    include pickles (Planetoid's ``ind.*`` files, read by DGL's own reader), so point it only at raw files you trust,
    e.g. DGL's own download folder.

    Args:
        name: the class name in ``dgl.data``, e.g. "CoraGraphDataset", "CiteseerGraphDataset", "TUDataset", "GINDataset".
        root: DGL's ``raw_dir``; defaults to DGL's download folder (``$DGL_DOWNLOAD_DIR``, else ``~/.dgl``).
        features: the ``ndata`` key of the node features, or "auto" (the first of :data:`DGL_FEATURE_KEYS`).
        args: further keyword arguments of the DGL class (TUDataset and GINDataset need ``name``, e.g. MUTAG).
    """
    import inspect
    import os

    import torch.nn.functional as F

    from geossl.errors import ConfigError, GeosslError
    from geossl.graph.interop import from_dgl, import_dgl

    dgl = import_dgl()
    import dgl.data as dgl_data

    valid = sorted(k for k, v in vars(dgl_data).items() if isinstance(v, type) and issubclass(v, dgl_data.DGLDataset)
                   and v is not dgl_data.DGLDataset and not k.startswith("_"))
    cls = getattr(dgl_data, name, None)
    if not (isinstance(cls, type) and issubclass(cls, dgl_data.DGLDataset)) or name not in valid:
        raise ConfigError(f"dataset.name={name!r} is not a DGL dataset class. Valid choices (dgl.data): {', '.join(valid)}.")
    raw_dir = str(Path(root).expanduser()) if root else dgl_data.utils.get_download_dir()

    class _Offline(cls):
        """DGL's class reading only its raw files: it never loads the processed copies DGL keeps beside them (their
        ``info.pkl`` is a pickle: a crafted one would run code), never writes any, and never downloads."""

        def has_cache(self):
            return False

        def save(self):
            """Write nothing: DGL would write its processed copies beside the raw files."""

        def _download(self):
            if not os.path.exists(self.raw_path):
                raise DatasetNotFoundError(
                    f"DGL dataset {name}{args or ''} was not found: DGL looks for its files in {self.raw_path} "
                    f"(raw_dir {self.raw_dir}: dataset.root, else $DGL_DOWNLOAD_DIR or ~/.dgl) and geossl does not download. "
                    "Download it with DGL on a machine with network access and copy that folder here.")

    _Offline.__name__ = _Offline.__qualname__ = cls.__name__
    args = dict(args or {})
    accepted = inspect.signature(cls.__init__).parameters
    unknown = sorted(set(args) - set(accepted) - {"raw_dir", "verbose"}) if not any(
        p.kind == p.VAR_KEYWORD for p in accepted.values()) else []
    missing = [k for k, p in accepted.items() if k != "self" and p.default is p.empty
               and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and k not in args]
    if unknown or missing:
        raise ConfigError(f"DGL's {name} takes {', '.join(k for k in accepted if k != 'self')}: "
                          + (f"unknown dataset.args {unknown}" if unknown else f"give {missing} as +dataset.args.<key>=<value>") + ".")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            ds = _Offline(raw_dir=raw_dir, verbose=False, **args)
    except GeosslError:
        raise
    except Exception as err:  # DGL's own readers refusing the files (or failing on them)
        first = (str(err).strip().splitlines() or [""])[0]
        raise GraphFileError(f"DGL's {name} could not read its files under {raw_dir}: {type(err).__name__}: {first}"
                             + (" (DGL 2.1.0's TUDataset fails with numpy 2; LegacyTUDataset reads the same files)"
                                if name == "TUDataset" else "")) from None
    if len(ds) == 0:
        raise GraphFileError(f"DGL dataset {name} in {raw_dir} holds no graphs.")

    def node_features(g):
        keys = [features] if features != "auto" else [k for k in DGL_FEATURE_KEYS if k in g.ndata]
        if not keys or keys[0] not in g.ndata:
            if features != "auto":
                raise ConfigError(f"DGL dataset {name}'s graphs have no node data {features!r}; they have: "
                                  f"{', '.join(g.ndata.keys()) or 'none'}.")
            return None
        return keys[0]

    first = ds[0]
    if not isinstance(first, tuple):  # node-level: one graph with labels and split masks
        g = first
        key = node_features(g)
        if key is None or "label" not in g.ndata or "train_mask" not in g.ndata:
            raise GraphFileError(f"DGL dataset {name}: a single graph needs node features, ndata['label'] and the split masks "
                                 f"(train_mask, val_mask, test_mask); it has {', '.join(g.ndata.keys()) or 'no node data'}.")
        data = from_dgl(g)
        data.x = g.ndata[key].float()
        for mask in ("train_mask", "val_mask", "test_mask"):
            setattr(data, mask, getattr(data, mask).bool())
        data = prepare(data)
        return GraphDataset(name=name.lower(), task="node", data=data, num_features=data.x.shape[1],
                            num_classes=int(data.y.max()) + 1, source=raw_dir)
    graphs = []
    key = node_features(first[0])
    width = 1 + max(int(g.ndata[key].max()) for g, _ in ds) if key == "node_labels" else 0
    for g, label in ds:
        data = from_dgl(dgl.to_homogeneous(g) if len(g.ntypes) > 1 else g, graph_labels=torch.as_tensor(label).view(-1)[:1])
        if key is None:
            data.x = None
        elif key == "node_labels":
            data.x = F.one_hot(g.ndata[key].view(-1).long(), width).float()
        else:
            data.x = g.ndata[key].float().view(g.num_nodes(), -1)
        graphs.append(data)
    return prepare_graphs(graphs, name.lower() if not args or "name" not in args else str(args["name"]).lower(), raw_dir)
