"""The accelerated core: one function per primitive, with a backend per device.

Callers never branch on the device; each function picks its backend from its inputs.
"""

from geossl.ops.dropout import dropout, dropout_mask  # noqa: F401
from geossl.ops.camera import (CameraError, backproject_depth, check_intrinsics, check_pose, invert_pose,  # noqa: F401
                               pixel_rays, project_points, scale_intrinsics, transform_points)
from geossl.ops.rasterize import RENDER_MODES, RasterizeError, rasterize_gaussians  # noqa: F401
