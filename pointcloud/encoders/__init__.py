"""Scene encoders (registered in ``geossl.registry.ENCODERS``): the sparse-conv UNet ``spunet`` and
the point-patch transformer ``point_patch_transformer``. Both take a :class:`PointBatch`."""

from geossl.pointcloud.encoders.patch_transformer import PointPatchTransformer  # noqa: F401
from geossl.pointcloud.encoders.spunet import SpUNet  # noqa: F401
