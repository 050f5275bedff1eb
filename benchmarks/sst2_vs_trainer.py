"""nlp-transfer against the plain Hugging Face Trainer: same model, same SST-2 rows, same machine, one run.

    python benchmarks/sst2_vs_trainer.py --train-rows 8000 --threads 2 --repeats 1

Both fine-tune the default model (MiniLM-L6) for one epoch with AdamW (lr 5e-5, linear decay, 6 %
warmup, weight decay 0.01, clipping 1.0, batch 32, max_length 128) and score all 872 dev rows.
The Trainer runs as the example scripts run it: random order with dynamic padding
(DataCollatorWithPadding). nlp-transfer runs its default loop (length-grouped batches).
Training throughput excludes evaluation for both. With --repeats N each side runs N times,
alternating, and the medians are reported. Results go to stdout and benchmarks/results/.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from common import (
    SST2,
    SST2_CONFIG,
    dataset_present,
    medians,
    recipe_figures,
    report_header,
    run_interleaved,
    run_recipe,
    setup,
    sst2_overrides,
    sst2_parser,
    trainer_on_sst2,
    write_result,
)


def run_nlp_transfer(args: argparse.Namespace, out: Path) -> dict[str, float]:
    """nlp-transfer's sentiment recipe config on the same rows."""
    overrides = sst2_overrides(out, args)
    return recipe_figures(run_recipe(SST2_CONFIG, overrides), "accuracy", "dev_accuracy")


def run_trainer(model_path: str, args: argparse.Namespace) -> dict[str, float]:
    """The plain Trainer, as the example scripts run it (random order, dynamic padding)."""
    settings = {"batch_size": args.batch_size, "learning_rate": args.learning_rate, "epochs": args.epochs, "seed": args.seed}
    return trainer_on_sst2(model_path, args.train_rows, **settings)


def main() -> int:
    """Run both sides, print the comparison and save it as JSON."""
    args = sst2_parser(__doc__, epochs=1, learning_rate=5e-5).parse_args()
    if not dataset_present(SST2, "train.tsv", "SST-2"):
        return 2
    model_path = setup(args.threads)
    sides = {"nlp_transfer": lambda out: run_nlp_transfer(args, out), "trainer": lambda out: run_trainer(model_path, args)}
    with tempfile.TemporaryDirectory() as tmp:
        runs = run_interleaved(sides, args.repeats, Path(tmp))
    median = medians(runs)
    report = {
        **report_header(args.threads),
        "train_rows": args.train_rows,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "median": median,
        "runs": runs,
        "throughput_ratio": median["nlp_transfer"]["samples_per_second"] / median["trainer"]["samples_per_second"],
    }
    print(
        f"\nSST-2, first {args.train_rows} train rows, {args.epochs} epoch(s), batch {args.batch_size}, {args.threads} threads, "
        f"median of {args.repeats}:"
    )
    print(f"{'':<14}{'samples/s':>10}{'train s':>10}{'dev acc':>10}")
    for side in ("trainer", "nlp_transfer"):
        m = median[side]
        print(f"{side:<14}{m['samples_per_second']:>10.1f}{m['train_seconds']:>10.1f}{m['dev_accuracy']:>10.4f}")
    print(f"throughput ratio nlp-transfer / Trainer: {report['throughput_ratio']:.2f}")
    write_result(f"sst2_vs_trainer_{args.train_rows}", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
