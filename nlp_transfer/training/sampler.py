"""Batching by length: texts of similar length share a batch, so little compute goes to padding."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Shuffled batches of similar-length examples, reproducible from ``(seed, epoch)``.

    Each epoch shuffles all indices, cuts them into groups of ``group_batches`` batches, sorts each
    group by length, cuts it into batches, and shuffles the batches, the one short batch last (see
    :func:`short_batch_last`). With ``shuffle=False`` the batches simply follow length order (evaluation and
    prediction).

    ``streaming=True`` is for datasets too large to list, such as contrastive pairs drawn on demand: the epoch's
    order is a seeded affine permutation ``k -> (a * k + c) mod n`` (``a`` coprime to ``n``), computed one group at
    a time, and batches are shuffled within their group; memory stays that of one group whatever ``n`` is.
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
        streaming: bool = False,
    ) -> None:
        self.lengths = lengths if streaming else list(lengths)
        self.streaming = streaming
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
        if self.streaming:
            yield from self._streamed_batches(n)
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
        shuffled = [batches[b] for b in torch.randperm(len(batches), generator=generator).tolist()]
        yield from short_batch_last(shuffled, self.batch_size)

    def _streamed_batches(self, n: int) -> Iterator[list[int]]:
        """One epoch in constant memory: an affine permutation cut into groups, each sorted and shuffled on its own."""
        if n == 0:
            return
        draw = random.Random(f"{self.seed}:{self.epoch}")
        stride = draw.randrange(1, max(n, 2))
        while math.gcd(stride, n) != 1:
            stride = draw.randrange(1, n)
        offset = draw.randrange(n)
        group = self.batch_size * (self.group_batches if self.group_by_length else 1)
        for start in range(0, n, group):
            chunk = [(stride * k + offset) % n for k in range(start, min(start + group, n))]
            if self.group_by_length:
                chunk.sort(key=lambda i: -self.lengths[i])
            batches = [chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
            draw.shuffle(batches)
            yield from short_batch_last(batches, self.batch_size)


def short_batch_last(batches: list[list[int]], batch_size: int) -> list[list[int]]:
    """``batches`` in their order, except that the short one (the epoch's remainder) comes last.

    Accelerate shards batches across processes in turns and expects only the last to be short: a short batch
    elsewhere made it drop that whole turn, so rows went untrained and the epoch took a step less than planned.
    """
    return [b for b in batches if len(b) == batch_size] + [b for b in batches if len(b) != batch_size]
