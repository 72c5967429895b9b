"""Per-item seeds for data loading, so that augmentations do not depend on the worker count."""

from __future__ import annotations

import itertools
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


class StreamSampler(Sampler):
    """The training items of a run measured in optimiser steps (``trainer.steps``): one endless stream of passes.

    Pass ``p`` is ``sampler``'s order for epoch ``p`` (``set_epoch(p)``: a fresh shuffle), so a training set smaller
    than the step budget repeats, reshuffled, and batches run on across a pass's end (every batch is full). With
    ``seed`` set, items come as ``(index, seed)`` pairs with the seeds :class:`SeededSampler` gives pass ``p``. The
    engine stops after its steps; :meth:`start_at` skips the items a resumed run already trained on, without
    loading them. ``len()`` is one pass.

    Args:
        sampler: the sampler of one pass's indices (``DistributedSampler``: each process its share).
        seed: the run's seed for per-item seeds, or None for plain indices.
    """

    def __init__(self, sampler: Sampler, seed=None):
        self.sampler, self.seed, self.start = sampler, seed, 0

    def start_at(self, items: int) -> None:
        self.start = int(items)

    def __iter__(self):
        skip = self.start
        for p in itertools.count():
            n = len(self.sampler)
            if n == 0:
                return
            if skip >= n:
                skip -= n
                continue
            one = SeededSampler(self.sampler, self.seed) if self.seed is not None else self.sampler
            if hasattr(one, "set_epoch"):
                one.set_epoch(p)
            for item in itertools.islice(iter(one), skip, None):
                yield item
            skip = 0

    def __len__(self) -> int:
        return len(self.sampler)
