"""Per-item seeds for data loading, so that augmentations do not depend on the worker count."""

from __future__ import annotations

from typing import Iterator, Tuple

import torch
from torch.utils.data import Sampler


class SeededSampler(Sampler):
    """Wraps an index sampler and yields ``(index, seed)`` pairs.

    The seeds of an epoch are drawn from a generator seeded with ``(seed, epoch)``, so the item at a
    given position of a given epoch gets the same seed whichever worker loads it, and a run resumed at
    an epoch boundary sees the same seeds as an uninterrupted one. A dataset built for it accepts
    ``dataset[(index, seed)]`` and draws all of that item's randomness from ``seed``.

    Args:
        sampler: the sampler of indices (``DistributedSampler`` for training, sequential for evaluation).
        seed: the run's seed.
    """

    def __init__(self, sampler: Sampler, seed: int):
        self.sampler, self.seed, self.epoch = sampler, int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[Tuple[int, int]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        for index in self.sampler:
            yield int(index), int(torch.randint(0, 2**62, (1,), generator=g))

    def __len__(self) -> int:
        return len(self.sampler)
