"""geossl: self-supervised pretraining on graphs and 3D scenes.

The core (this package) knows nothing of graphs or scenes: it holds the registries, the
:class:`~geossl.encoder.Encoder` interface with its safetensors save/load, the training engine,
evaluation and the accelerated ops. Domain packages (``geossl.graph``, ``geossl.pointcloud``,
``geossl.gaussians``) register their datasets, encoders and methods here.
"""

import os as _os
import sys as _sys

# `python -m geossl` puts the working directory first on sys.path (Python does, for -m) before this package
# is imported, so a `hydra.py` or `torch.py` lying in the folder a user runs geossl from would be imported
# instead of the library. Nothing is imported from the working directory: while -m locates this package,
# sys.argv[0] is "-m", and the working-directory entry is dropped before any import below.
if _sys.argv[:1] == ["-m"] and _sys.path and _sys.path[0] in ("", _os.getcwd()):
    del _sys.path[0]

__version__ = "0.1.0"

from geossl.errors import GeosslError  # noqa: E402

__all__ = ["Encoder", "GeosslError", "load_encoder", "save_encoder", "__version__"]


def __getattr__(name: str):
    """``geossl.Encoder``, ``geossl.load_encoder`` and ``geossl.save_encoder``, imported on first use: importing
    ``geossl`` alone (``geossl --help``) does not import torch."""
    if name in ("Encoder", "load_encoder", "save_encoder"):
        from geossl import encoder

        return getattr(encoder, name)
    raise AttributeError(f"module 'geossl' has no attribute {name!r}")
