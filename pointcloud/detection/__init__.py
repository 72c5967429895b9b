"""3D object detection on scene encoders: mmdetection3d-compatible indoor evaluation (``evaluation``)."""

from geossl.pointcloud.detection.evaluation import DetectionEvalError, DetectionResult, box_iou_3d, indoor_map  # noqa: F401
