"""The accelerated core: one function per primitive, with a backend per device.

Callers never branch on the device; each function picks its backend from its inputs.
"""

from geossl.ops.dropout import dropout, dropout_mask  # noqa: F401
