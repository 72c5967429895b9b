"""The one training loop every method uses."""

from geossl.engine.checkpoint import load_checkpoint, save_checkpoint  # noqa: F401
from geossl.engine.engine import Engine, FitResult, TrainerConfig  # noqa: F401
