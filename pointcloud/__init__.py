"""Scene-level point clouds and RGB-D sequences (installed as ``geossl.pointcloud``).

Built: posed RGB-D sequence readers (``rgbd``: 7-Scenes, Redwood, ScanNet export), TSDF fusion of
such sequences into point clouds (``tsdf``, open3d), ScanNet sample scenes (``scannet``),
procedural labelled rooms with ray-cast RGB-D views (``rooms``), PLY/PCD/NPZ point files
(``files``), scenes by dataset name (``scenes``), point batches with voxelisation (``batch``), scene
encoders (``encoders``: SpUNet, point-patch transformer), PNG views (``show``).
Not built yet: Gaussian2Scene pretraining.
"""
