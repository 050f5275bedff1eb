"""Feature extraction with cached encoder outputs against the Trainer with a frozen encoder, side by side.

    python benchmarks/feature_extraction_vs_trainer.py --train-rows 8000 --epochs 5 --threads 2

Both train the same head (BERT's pooler + classifier over the [CLS] state of the default model, MiniLM-L6)
on the same SST-2 rows for the same epochs with AdamW (lr 1e-3, linear decay, 6 % warmup, batch 32) and
score all 872 dev rows. The encoder (embeddings and layers) is frozen on both sides.

- Trainer: the encoder's parameters get ``requires_grad=False`` and the Trainer trains as usual, so the
  frozen encoder runs forward on every batch of every epoch. It runs twice: as the example scripts run it
  (random order, dynamic padding) and at its best (``train_sampling_strategy="group_by_length"``).
- nlp-transfer: ``strategy=frozen`` (``transfer.cache_features=true``, the default) runs the encoder once
  over train and dev and trains the head on the cached vectors. Its time includes encoding train (encoding
  dev counts as evaluation, which is left out on both sides).

Times exclude tokenization and the final dev scoring on both sides. Results go to stdout and
benchmarks/results/.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import (
    SST2,
    SST2_CONFIG,
    dataset_present,
    medians,
    report_header,
    run_interleaved,
    run_recipe,
    setup,
    sst2_overrides,
    sst2_parser,
    trainer_on_sst2,
    write_result,
)


def freeze_encoder(model: Any) -> None:
    """Freeze BERT's embeddings and layers by hand (``requires_grad=False``), as a user would write it.

    The pooler and the classifier train: the same head as nlp-transfer's frozen strategy.
    """
    for name, param in model.bert.named_parameters():
        param.requires_grad_(name.startswith("pooler."))


def run_trainer(model_path: str, args: argparse.Namespace, *, grouped: bool) -> dict[str, float]:
    """The Trainer with the encoder frozen by hand, in random order or length-grouped."""
    figures = trainer_on_sst2(
        model_path,
        args.train_rows,
        prepare=freeze_encoder,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        epochs=args.epochs,
        seed=args.seed,
        sampling="group_by_length" if grouped else "random",
    )
    return {"train_seconds": figures["train_seconds"], "dev_accuracy": figures["dev_accuracy"]}


def run_nlp_transfer(args: argparse.Namespace, out: Path) -> dict[str, float]:
    """nlp-transfer's frozen strategy with cached features, from the SST-2 recipe config."""
    overrides = sst2_overrides(out, args)
    result = run_recipe(SST2_CONFIG, [*overrides, "strategy=frozen"])
    return {
        "train_seconds": result.info["train_seconds"],
        "train_encoding_seconds": result.info["feature_encoding_seconds"]["train"],
        "dev_accuracy": result.metrics["validation"]["accuracy"],
    }


def main() -> int:
    """Run the three sides, print the comparison and save it as JSON."""
    args = sst2_parser(__doc__, epochs=5, learning_rate=1e-3).parse_args()
    if not dataset_present(SST2, "train.tsv", "SST-2"):
        return 2
    model_path = setup(args.threads)
    sides = {
        "nlp_transfer_cached": lambda out: run_nlp_transfer(args, out),
        "trainer_random": lambda out: run_trainer(model_path, args, grouped=False),
        "trainer_grouped": lambda out: run_trainer(model_path, args, grouped=True),
    }
    with tempfile.TemporaryDirectory() as tmp:
        runs = run_interleaved(sides, args.repeats, Path(tmp))
    median = medians(runs)
    ours = median["nlp_transfer_cached"]["train_seconds"]
    report = {
        **report_header(args.threads),
        "train_rows": args.train_rows,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "learning_rate": args.learning_rate,
        "median": median,
        "runs": runs,
        "speedup_vs_trainer_random": median["trainer_random"]["train_seconds"] / ours,
        "speedup_vs_trainer_grouped": median["trainer_grouped"]["train_seconds"] / ours,
    }
    print(
        f"\nFeature extraction, SST-2 first {args.train_rows} rows, {args.epochs} epochs, batch {args.batch_size}, "
        f"{args.threads} threads, median of {args.repeats}:"
    )
    print(f"{'':<22}{'train s':>10}{'dev acc':>10}{'speed-up':>10}")
    for side in runs:
        m = median[side]
        print(f"{side:<22}{m['train_seconds']:>10.1f}{m['dev_accuracy']:>10.4f}{m['train_seconds'] / ours:>10.2f}")
    write_result(f"feature_extraction_{args.train_rows}", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
