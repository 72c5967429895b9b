"""Scene-level point clouds and RGB-D sequences (installed as ``geossl.pointcloud``).

Built: posed RGB-D sequence readers (``rgbd``: 7-Scenes, Redwood, ScanNet export) and point batches
with voxelisation (``batch``). Not built yet: scene encoders, scene datasets for pretraining,
geometry (kNN, FPS, Chamfer), Gaussian2Scene.
"""
