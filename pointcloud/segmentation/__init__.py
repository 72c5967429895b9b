"""Semantic segmentation as a downstream task: a per-point head on any scene encoder (``segmenter``: the model, saved and
loaded like a detector; ``linear``: Pointcept's linear segmentation head), scored by mIoU over every point of the test
scenes, and fine-tuning through the run pipeline (``finetune``: ``geossl finetune segmentation=linear ...``)."""

from geossl.pointcloud.segmentation import linear, segmenter  # noqa: F401  (registers the head and the saved kind)
