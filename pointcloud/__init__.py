"""Scene-level point clouds (installed as ``geossl.pointcloud``).

Importing this package registers its scene datasets (``datasets``: rooms, ScanNet, RGB-D sequences, the
scene-folder format), encoders (``encoders``: SpUNet, point-patch transformer) and methods (``methods``:
Point-MAE). Also: transforms (``transforms``), posed RGB-D sequence readers (``rgbd``), TSDF fusion
(``tsdf``), ScanNet samples (``scannet``), procedural rooms (``rooms``), PLY/PCD/NPZ point files
(``files``), PNG views (``show``), and the scene adapter of the run pipeline (``adapter``).
Point batches and posed frames are the core's (``geossl.points``, ``geossl.frames``).
"""

from geossl.pointcloud import datasets, encoders, methods  # noqa: F401  (registration side effects)
