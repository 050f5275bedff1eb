"""Batching by length: texts of similar length share a batch, so little compute goes to padding."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Shuffled batches of similar-length examples, reproducible from ``(seed, epoch)``.

    Each epoch shuffles all indices, cuts them into groups of ``group_batches`` batches, sorts each
    group by length, cuts it into batches, and shuffles the batches. With ``shuffle=False`` the
    batches simply follow length order (evaluation and prediction).
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        group_batches: int = 50,
        group_by_length: bool = True,
    ) -> None:
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.group_batches = group_batches
        self.group_by_length = group_by_length
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order the next iteration yields."""
        self.epoch = epoch

    def __len__(self) -> int:
        return (len(self.lengths) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[list[int]]:
        n = len(self.lengths)
        if not self.shuffle:
            order = sorted(range(n), key=lambda i: -self.lengths[i]) if self.group_by_length else list(range(n))
            yield from (order[i : i + self.batch_size] for i in range(0, n, self.batch_size))
            return
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(n, generator=generator).tolist()
        if not self.group_by_length:
            yield from (order[i : i + self.batch_size] for i in range(0, n, self.batch_size))
            return
        group = self.batch_size * self.group_batches
        batches = []
        for start in range(0, n, group):
            chunk = sorted(order[start : start + group], key=lambda i: -self.lengths[i])
            batches.extend(chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size))
        for b in torch.randperm(len(batches), generator=generator).tolist():
            yield batches[b]
