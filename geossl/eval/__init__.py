"""Evaluation: linear probes (node classification, point segmentation), the SVC protocol (labels) and RankMe (no labels)."""

from geossl.eval.linear_probe import LinearProbeResult, linear_probe  # noqa: F401
from geossl.eval.rankme import rankme  # noqa: F401
from geossl.eval.seg_probe import SegProbeResult, seg_probe  # noqa: F401
from geossl.eval.svc import SVCResult, svc_cross_validation  # noqa: F401
