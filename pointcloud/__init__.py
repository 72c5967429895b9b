"""Scene-level point clouds (installed as ``geossl.pointcloud``).

Importing this package registers its scene datasets (``datasets``: procedural rooms, ScanNet, RGB-D
sequences, the scene-folder format), encoders (``encoders``: SpUNet, point-patch transformer), methods
(``methods``: Point-MAE, PiMAE, Gaussian2Scene) and downstream heads (``detection``: the VoteNet head;
``segmentation``: Pointcept's linear head), fine-tuned models saved alike (``finetuned``).
Also: transforms (``transforms``), posed RGB-D sequence readers (``rgbd``), TSDF fusion (``tsdf``),
ScanNet samples (``scannet``), procedural rooms (``rooms``), PLY/PCD/NPZ point files (``files``), PNG
views (``show``), the scene adapter of the run pipeline (``adapter``) and the scene commands
``geossl show`` and ``geossl fit-gaussians`` (``commands``). Point batches and posed frames are the
core's (``geossl.points``, ``geossl.frames``).
"""

from geossl.pointcloud import datasets, detection, encoders, methods, segmentation  # noqa: F401  (registration side effects)
