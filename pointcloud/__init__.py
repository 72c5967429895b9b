"""Scene-level point-cloud pretraining (installed as ``geossl.pointcloud``).

Nothing is built here yet: scene datasets, point batches, scene encoders and Gaussian2Scene
are tracked as their own issues. The package exists so that the installed layout
(``geossl.graph``, ``geossl.pointcloud``, ``geossl.gaussians``) is fixed from the start.
"""
