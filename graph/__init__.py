"""Graph self-supervised learning on PyTorch Geometric (installed as ``geossl.graph``).

Importing this package registers its datasets (Planetoid citation graphs), encoders
(GAT, GCN, GIN) and methods (GraphMAE) in :mod:`geossl.registry`.
"""

from geossl.graph import datasets, encoders, methods  # noqa: F401  (registration side effects)
from geossl.graph.datasets import GraphDataset, load_dataset, prepare  # noqa: F401
