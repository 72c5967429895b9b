"""Training checkpoints: written atomically, read back without unpickling arbitrary objects.

A checkpoint is a ``torch.save`` file of tensors and plain Python values only (model and
optimiser state, epoch, RNG states, a config fingerprint), loaded with ``weights_only=True``.
"""

from __future__ import annotations

import os
import random
import warnings
from pathlib import Path
from typing import Any, Dict

import numpy as np
import torch

from geossl.errors import CheckpointError
from geossl.io import atomic_write, load_refusal

CHECKPOINT_FORMAT = "geossl-checkpoint"
CHECKPOINT_VERSION = 1


def capture_rng() -> Dict[str, Any]:
    """RNG states of torch (CPU and CUDA), Python and NumPy as tensors and plain values."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.random.get_rng_state(),
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]), int(np_state[3]), float(np_state[4])],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: Dict[str, Any]) -> None:
    torch.random.set_rng_state(state["torch"])
    random.setstate(_tuples(state["python"]))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuples(value):
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def save_checkpoint(path: str | os.PathLike, payload: Dict[str, Any]) -> Path:
    """Atomically write ``payload`` (plus format tags) to ``path``."""
    data = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **payload}
    return atomic_write(path, lambda tmp: torch.save(data, tmp))


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (``weights_only=True``).

    Raises:
        CheckpointError: missing, corrupt, or not a geossl training checkpoint.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.is_file():
        raise CheckpointError(f"Checkpoint {str(path)!r} does not exist.")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")  # a corrupt file: refused below
            data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"Checkpoint {str(path)!r} cannot be read safely ({load_refusal(exc)}). It is corrupt, truncated, "
            "or holds objects other than tensors and plain values; geossl does not load such a file."
        ) from None
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a geossl training checkpoint.")
    if data.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{str(path)!r} has checkpoint version {data.get('version')}; this geossl reads {CHECKPOINT_VERSION}.")
    return data
