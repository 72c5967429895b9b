"""Hydra config groups shipped with geossl (composed by ``geossl.cli``)."""
