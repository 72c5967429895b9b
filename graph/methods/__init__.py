"""Graph pretraining methods (registered in ``geossl.registry.METHODS``)."""

from geossl.graph.methods.graphmae import GraphMAE  # noqa: F401
from geossl.graph.methods.selftask import SelfTask  # noqa: F401
from geossl.graph.methods.barlow_twins import GraphBarlowTwins  # noqa: F401
