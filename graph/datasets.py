"""Graph datasets read through PyTorch Geometric from the geossl data root.

Layout under the data root (``dataset.root``, else ``$GEOSSL_DATA``)::

    planetoid/<Name>/raw/ind.<name>.{x,tx,allx,y,ty,ally,graph,test.index}
    tudataset/<NAME>/raw/<NAME>_{A,graph_indicator,graph_labels,...}.txt

Nothing is downloaded unless ``download=True``; a missing dataset raises
:class:`~geossl.errors.DatasetNotFoundError` naming the folder that was searched.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from geossl.data import cache_root, data_root, cached_dataset_dir
from geossl.errors import DatasetNotFoundError
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
        return pyg_cls(str(folder.parent), name=name, **kwargs), folder
    folder = cached_dataset_dir(src, f"{collection}/{name}")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return pyg_cls(str(folder.parent), name=name, **kwargs), src


def load_planetoid(name: str, root: Optional[str] = None, download: bool = False) -> GraphDataset:
    """Load a Planetoid citation graph with the public split, as GraphMAE/SelfTask use it.

    Features are row-normalised; self-loops are removed and then added once to every node.

    Args:
        name: "Cora", "CiteSeer" or "PubMed".
        root: data root; defaults to ``$GEOSSL_DATA``.
        download: allow PyG to download the raw files into the geossl cache when they are missing.
    """
    from torch_geometric.datasets import Planetoid
    from torch_geometric.transforms import NormalizeFeatures
    from torch_geometric.utils import add_self_loops, remove_self_loops

    ds, source = _open_pyg(Planetoid, "planetoid", name, root, download, transform=NormalizeFeatures())
    data = ds[0]
    edge_index, _ = remove_self_loops(data.edge_index)
    data.edge_index, _ = add_self_loops(edge_index, num_nodes=data.num_nodes)
    return GraphDataset(
        name=name.lower(), task="node", data=data, num_features=ds.num_features,
        num_classes=ds.num_classes, source=str(source),
    )


@DATASETS.register("cora")
def cora(root: Optional[str] = None, download: bool = False) -> GraphDataset:
    """Cora citation graph (2708 nodes, 1433 bag-of-words features, 7 classes), public split."""
    return load_planetoid("Cora", root, download)


@DATASETS.register("citeseer")
def citeseer(root: Optional[str] = None, download: bool = False) -> GraphDataset:
    """CiteSeer citation graph (3327 nodes, 3703 features, 6 classes), public split."""
    return load_planetoid("CiteSeer", root, download)


@DATASETS.register("pubmed")
def pubmed(root: Optional[str] = None, download: bool = False) -> GraphDataset:
    """PubMed citation graph (19717 nodes, 500 TF-IDF features, 3 classes), public split."""
    return load_planetoid("PubMed", root, download)


def load_tu(name: str, root: Optional[str] = None, download: bool = False) -> GraphDataset:
    """Load a TU graph-classification dataset (Morris et al., 2020) through PyG's ``TUDataset``.

    Node labels, where the dataset has them, become one-hot node features (``x``).

    Args:
        name: the TU name, e.g. "MUTAG", "PROTEINS", "IMDB-BINARY".
        root: data root; defaults to ``$GEOSSL_DATA``.
        download: allow PyG to download the dataset into the geossl cache when it is missing.
    """
    from torch_geometric.datasets import TUDataset

    ds, source = _open_pyg(TUDataset, "tudataset", name, root, download)
    return GraphDataset(name=name.lower(), task="graph", data=ds, num_features=ds.num_features,
                        num_classes=ds.num_classes, source=str(source))


@DATASETS.register("tu")
def tu(name: str = "MUTAG", root: Optional[str] = None, download: bool = False) -> GraphDataset:
    """Any TU dataset by its TU name (``dataset=tu dataset.name=<NAME>``)."""
    return load_tu(name, root, download)


def _register_tu(key: str, tu_name: str) -> None:
    def builder(root: Optional[str] = None, download: bool = False) -> GraphDataset:
        return load_tu(tu_name, root, download)

    builder.__doc__ = f"TU dataset {tu_name} (graph classification)."
    builder.__name__ = key.replace("-", "_")
    DATASETS.register(key)(builder)


#: TU datasets with a registry name of their own: registry name -> TU name.
TU_NAMES = {"mutag": "MUTAG", "proteins": "PROTEINS", "nci1": "NCI1", "imdb-binary": "IMDB-BINARY", "imdb-multi": "IMDB-MULTI"}
for _key, _tu_name in TU_NAMES.items():
    _register_tu(_key, _tu_name)

#: Planetoid datasets: registry name -> PyG name.
PLANETOID_NAMES = {"cora": "Cora", "citeseer": "CiteSeer", "pubmed": "PubMed"}


def dataset_status(name: str, root: Optional[str] = None) -> tuple[bool, str]:
    """Whether registered dataset ``name`` is present under the data root, and the folder searched."""
    collection, pyg = ("planetoid", PLANETOID_NAMES[name]) if name in PLANETOID_NAMES else ("tudataset", TU_NAMES.get(name, "<NAME>"))
    where = str(dataset_dir(collection, pyg, root) / "raw")
    return (name in PLANETOID_NAMES or name in TU_NAMES) and not missing_raw_files(collection, pyg, root), where


def load_dataset(key: str, **kwargs) -> GraphDataset:
    """Build the dataset registered under ``key`` (unknown keys list the valid ones)."""
    return DATASETS.get(key)(**kwargs)


def to_device(dataset: GraphDataset, device: torch.device) -> GraphDataset:
    dataset.data = dataset.data.to(device)
    return dataset
