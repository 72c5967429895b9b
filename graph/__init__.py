"""Graph self-supervised learning on PyTorch Geometric (installed as ``geossl.graph``).

Importing this package registers in :mod:`geossl.registry` its datasets (Planetoid citation graphs, TU and
GIN-format graph classification sets, saved graph lists, DGL's datasets, a degree-corrected SBM generator),
encoders (GAT, GCN, GIN) and methods (GraphMAE with its GraphMAE2 options, SelfTask, Graph Barlow Twins). Also: sampled
mini-batches (``minibatch``, ``sampling``), layer-wise inference (``layerwise``), DGL interop (``interop``),
pooling, fine-tuning, and the graph adapter of the run pipeline (``adapter``).
"""

from geossl.graph import datasets, encoders, interop, methods, synthetic  # noqa: F401  (registration side effects)
from geossl.graph.interop import allow_dgl_without_graphbolt

allow_dgl_without_graphbolt()  # `import dgl` after `import geossl.graph` works with this torch (docs/dgl.md)
from geossl.graph.datasets import GraphDataset, load_dataset, prepare  # noqa: F401
