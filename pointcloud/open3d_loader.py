"""Import open3d (the ``scene`` extra: ``open3d-cpu==0.20.0``) with the one system library it lacks here.

open3d-cpu 0.20.0 links against ``libusb-1.0.so.0`` (Debian package ``libusb-1.0-0``), which slim
Linux images do not have. The ``libusb-package`` wheel ships that library; loading it with
``RTLD_GLOBAL`` before the first ``import open3d`` satisfies the dependency without root.
"""

from __future__ import annotations

import ctypes
import functools

from geossl.errors import GeosslError


@functools.lru_cache(maxsize=1)
def import_open3d():
    """The ``open3d`` module, or a :class:`GeosslError` that says how to install it."""
    try:
        import libusb_package

        path = libusb_package.get_library_path()
        if path is not None:
            ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
    except (ImportError, OSError):
        pass  # a system libusb (apt install libusb-1.0-0) serves as well
    try:
        import open3d
    except ImportError as e:
        raise GeosslError(
            f"open3d is needed here (TSDF fusion, ray casting) but cannot be imported: {e}. "
            "Install the scene extra: pip install -e '.[scene]' torch==2.13.0 "
            "(open3d-cpu==0.20.0 and libusb-package, which provides libusb-1.0.so.0).") from e
    return open3d
