"""Graph encoders (registered in ``geossl.registry.ENCODERS``): GAT, GCN, GIN."""

from geossl.graph.encoders.gat import GAT, GATLayer  # noqa: F401
from geossl.graph.encoders.gcn import GCN  # noqa: F401
from geossl.graph.encoders.gin import GIN  # noqa: F401
from geossl.graph.encoders.inputs import CSRRows, MaskedFeatures, project_features  # noqa: F401
