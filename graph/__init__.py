"""Graph self-supervised learning on PyTorch Geometric (installed as ``geossl.graph``).

Importing this package registers its datasets (Planetoid citation graphs), encoders
(GAT, GCN, GIN) and methods (GraphMAE) in :mod:`geossl.registry`.
"""

from geossl.graph import datasets, encoders, interop, methods, synthetic  # noqa: F401  (registration side effects)
from geossl.graph.interop import allow_dgl_without_graphbolt

allow_dgl_without_graphbolt()  # `import dgl` after `import geossl.graph` works with this torch (docs/dgl.md)
from geossl.graph.datasets import GraphDataset, load_dataset, prepare  # noqa: F401
