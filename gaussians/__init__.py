"""3D Gaussian primitives and scene fitting (installed as ``geossl.gaussians``).

Nothing is built here yet: the Gaussian rasterization core and RGB-D scene fitting are tracked
as their own issue. The package exists so that the installed layout is fixed from the start.
"""
