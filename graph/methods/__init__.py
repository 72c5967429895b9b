"""Graph pretraining methods (registered in ``geossl.registry.METHODS``)."""

from geossl.graph.methods.graphmae import GraphMAE  # noqa: F401
