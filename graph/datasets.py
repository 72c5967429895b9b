"""Graph datasets read through PyTorch Geometric from the geossl data root.

Layout under the data root (``dataset.root``, else ``$GEOSSL_DATA``)::

    planetoid/<Name>/raw/ind.<name>.{x,tx,allx,y,ty,ally,graph,test.index}

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

from geossl.data import cache_root, data_root, writable_dataset_dir
from geossl.errors import DatasetNotFoundError
from geossl.registry import DATASETS

PLANETOID_FILES = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")


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


def planetoid_dir(name: str, root: Optional[str] = None) -> Path:
    """The folder a Planetoid dataset is expected in: ``<data root>/planetoid/<Name>``."""
    return data_root(root) / "planetoid" / name


def planetoid_missing(name: str, root: Optional[str] = None) -> list[str]:
    """Raw files of Planetoid ``name`` that are not under its folder (empty list: all present)."""
    raw = planetoid_dir(name, root) / "raw"
    return [f"ind.{name.lower()}.{s}" for s in PLANETOID_FILES if not (raw / f"ind.{name.lower()}.{s}").is_file()]


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

    src = planetoid_dir(name, root)
    missing = planetoid_missing(name, root)
    if missing:
        if not download:
            raise DatasetNotFoundError(
                f"Dataset {name} was not found: looked for {src / 'raw'} (missing {', '.join(missing[:3])}"
                f"{'...' if len(missing) > 3 else ''}). Point the data root at a folder with "
                f"planetoid/{name}/raw/ (set GEOSSL_DATA or pass dataset.root=<dir>), or allow a download "
                "with dataset.download=true."
            )
        folder = cache_root() / "datasets" / "planetoid"
        ds = Planetoid(str(folder), name=name, transform=NormalizeFeatures())
        source = folder / name
    else:
        folder = writable_dataset_dir(src, f"planetoid/{name}")
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            ds = Planetoid(str(folder.parent), name=name, transform=NormalizeFeatures())
        source = src
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


#: How ``geossl datasets`` finds each registered graph dataset on disk: name -> (PyG name, checker).
PLANETOID_NAMES = {"cora": "Cora", "citeseer": "CiteSeer", "pubmed": "PubMed"}


def dataset_status(name: str, root: Optional[str] = None) -> tuple[bool, str]:
    """Whether dataset ``name`` is present under the data root, and the folder searched."""
    pyg = PLANETOID_NAMES[name]
    return not planetoid_missing(pyg, root), str(planetoid_dir(pyg, root) / "raw")


def load_dataset(name: str, **kwargs) -> GraphDataset:
    """Build a registered dataset by name (unknown names list the valid ones)."""
    return DATASETS.get(name)(**kwargs)


def to_device(dataset: GraphDataset, device: torch.device) -> GraphDataset:
    dataset.data = dataset.data.to(device)
    return dataset
