"""Scene pretraining methods (registered in ``geossl.registry.METHODS`` under the domain "scene")."""

from geossl.pointcloud.methods.pointmae import PointMAE  # noqa: F401
from geossl.pointcloud.methods.pimae import PiMAE  # noqa: F401
from geossl.pointcloud.methods.gaussian2scene import Gaussian2Scene  # noqa: F401
