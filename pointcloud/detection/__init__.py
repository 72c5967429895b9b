"""3D object detection on scene encoders: a detector (``detector``: any scene encoder + a head of
:data:`geossl.registry.HEADS`), the VoteNet head (``votenet``), mmdetection3d-compatible indoor evaluation
(``evaluation``), and detection as a fine-tuning task of the run pipeline (``finetune``)."""

from geossl.pointcloud.detection import detector, votenet  # noqa: F401  (registers the head and the saved kind)
from geossl.pointcloud.detection.evaluation import DetectionEvalError, DetectionResult, box_iou_3d, indoor_map  # noqa: F401
