"""nlp-transfer's SST-2 run of ``process_speed.py``, with the Trainer's length-grouped batch order instead of its own.

    python benchmarks/batch_order.py --train-rows 67349 --threads 2 --precision bf16 --seed 42

The one systematic difference left between the two sides of ``process_speed.py`` is the batch order. nlp-transfer
cuts a shuffled epoch into groups of 50 batches, sorts each group by length and shuffles all the batches; the
Trainer's ``group_by_length`` keeps each group's batches in sequence, longest first, and moves the group holding the
longest example to the front. This script runs nlp-transfer exactly as ``process_speed.py`` does (same overrides,
dev scored) with its sampler replaced by that order, and prints the dev accuracy: if the order explained a gap in
dev accuracy between the sides, this run would score like the Trainer. Benchmark-only: the package is unchanged.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from common import MAX_LENGTH, SST2, SST2_CONFIG, dataset_present, sst2_overrides, sst2_parser


def trainer_order(sampler: Any) -> Iterator[list[int]]:
    """The Trainer's length-grouped order for ``sampler``'s lengths, batch size, seed and epoch."""
    import torch

    lengths, size = sampler.lengths, sampler.batch_size
    generator = torch.Generator().manual_seed(sampler.seed + sampler.epoch)
    shuffled = torch.randperm(len(lengths), generator=generator).tolist()
    group = max(min(len(lengths) // (size * 4), 50), 1) * size
    groups = [sorted(shuffled[i : i + group], key=lambda j: -lengths[j]) for i in range(0, len(lengths), group)]
    longest = max(range(len(groups)), key=lambda k: lengths[groups[k][0]])
    groups[0][0], groups[longest][0] = groups[longest][0], groups[0][0]
    order = [i for g in groups for i in g]
    yield from (order[i : i + size] for i in range(0, len(order), size))


def patch_sampler() -> None:
    """Shuffled, length-grouped, listed epochs of the training sampler follow :func:`trainer_order`."""
    from nlp_transfer.training.sampler import LengthGroupedBatchSampler

    own = LengthGroupedBatchSampler.__iter__

    def iterate(self: LengthGroupedBatchSampler) -> Iterator[list[int]]:
        """The Trainer's order where it applies, the sampler's own elsewhere (evaluation, streaming)."""
        if self.shuffle and self.group_by_length and not self.streaming:
            return trainer_order(self)
        return own(self)

    LengthGroupedBatchSampler.__iter__ = iterate


def main() -> int:
    """Train once with the Trainer's order and print the dev accuracy."""
    parser = sst2_parser(__doc__, epochs=1, learning_rate=5e-5, repeats=False)
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    args = parser.parse_args()
    if not dataset_present(SST2, "train.tsv", "SST-2"):
        return 2
    patch_sampler()
    from nlp_transfer.cli import main as cli

    with tempfile.TemporaryDirectory(prefix="batch-order-") as tmp:
        precision = "bf16" if args.precision == "bf16" else "no"
        extra = [f"training.max_length={MAX_LENGTH}", "data.test_file=null", f"training.mixed_precision={precision}"]
        return cli(["train", str(SST2_CONFIG), *sst2_overrides(Path(tmp) / "run", args), *extra])


if __name__ == "__main__":
    sys.exit(main())
