"""Scene-level point clouds and RGB-D sequences (installed as ``geossl.pointcloud``).

Built: posed RGB-D sequence readers (``rgbd``: 7-Scenes, Redwood, ScanNet export), point batches
with voxelisation (``batch``), scene encoders (``encoders``: SpUNet, point-patch transformer).
Not built yet: scene datasets for pretraining (ScanNet samples, rooms), TSDF fusion, Gaussian2Scene.
"""
