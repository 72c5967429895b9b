"""Graph pretraining methods (registered in ``geossl.registry.METHODS``)."""

from geossl.graph.methods.graphmae import GraphMAE  # noqa: F401
from geossl.graph.methods.selftask import SelfTask  # noqa: F401
