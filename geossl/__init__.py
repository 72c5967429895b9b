"""geossl: self-supervised pretraining on graphs and 3D scenes.

The core (this package) knows nothing of graphs or scenes: it holds the registries, the
:class:`~geossl.encoder.Encoder` interface with its safetensors save/load, the training engine,
evaluation and the accelerated ops. Domain packages (``geossl.graph``, ``geossl.pointcloud``,
``geossl.gaussians``) register their datasets, encoders and methods here.
"""

__version__ = "0.1.0"

from geossl.encoder import Encoder, load_encoder, save_encoder  # noqa: E402
from geossl.errors import GeosslError  # noqa: E402

__all__ = ["Encoder", "GeosslError", "load_encoder", "save_encoder", "__version__"]
