"""Scene-level point clouds and RGB-D sequences (installed as ``geossl.pointcloud``).

Built: posed RGB-D sequence readers (``rgbd``: 7-Scenes, Redwood, ScanNet export). Not built yet:
point batches, scene encoders, scene datasets for pretraining, Gaussian2Scene.
"""
