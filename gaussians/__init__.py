"""3D Gaussian primitives and scene fitting (installed as ``geossl.gaussians``).

``model.GaussianSet`` (the 3DGS parameterisation), ``fit.fit_gaussians`` (fitting to posed RGB-D
frames), ``metrics`` (PSNR, SSIM), ``ply`` (3DGS PLY files), ``run`` (``geossl fit-gaussians``).
Rendering is ``geossl.ops.rasterize_gaussians``.
"""

from geossl.gaussians.model import GaussianSet, GaussianSetError  # noqa: F401
