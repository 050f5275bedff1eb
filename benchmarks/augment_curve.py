"""Does ``data.augment`` help with few training examples? SST-2 at 8 and 32 examples per class, seeds 0, 1, 2.

    python benchmarks/augment_curve.py --threads 1

Each seed samples ``k`` training sentences per class from SST-2's train file (``random.Random(seed).sample(the
class's row indices, k)``, a fresh generator per class) and ``--validation-per-class`` validation sentences per
class from the rest of it (``random.Random(10_000 + seed)``); GLUE dev (872 sentences) is the test set, scored once
per run. The samples go to temporary CSV files outside the repository. Every run is the default model (MiniLM-L6),
strategy frozen with mean pooling and cached features (the encoder runs once per split), the head trained with
AdamW at ``--learning-rate`` for the same number of optimizer steps (``--steps``; epochs are set to reach them, so
augmented runs do not train longer), evaluated every ``--steps // 10`` steps, the best evaluation on validation kept.

Arms: no augmentation, then each augmenter with ``--copies`` copies at each ``--rates`` rate. The rate of each
augmenter is chosen per size on mean validation accuracy alone; test accuracy is reported for every arm.
Results: a table on stdout and benchmarks/results/augment_curve.json.
"""

from __future__ import annotations

import argparse
import csv
import math
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import SST2, SST2_CONFIG, dataset_present, read_sst2, report_header, setup, write_result

AUGMENTERS = ("word_dropout", "word_swap", "neighbour_tokens")


def parse_args() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="8,32", help="training examples per class")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--validation-per-class", type=int, default=100)
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--rates", default="0.1,0.15")
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps of every run")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=1)
    return parser.parse_args()


def sample_rows(labels: list[int], per_class: int, seed: int, exclude: set[int] = frozenset()) -> list[int]:
    """``per_class`` row indices of each class (not in ``exclude``), a fresh ``random.Random(seed)`` per class, sorted."""
    chosen: list[int] = []
    for label in sorted(set(labels)):
        rows = [i for i, value in enumerate(labels) if value == label and i not in exclude]
        chosen.extend(random.Random(seed).sample(rows, per_class))
    return sorted(chosen)


def write_rows(path: Path, texts: list[str], labels: list[int], indices: list[int]) -> Path:
    """The chosen rows as a CSV with SST-2's column names (``sentence``, ``label``)."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sentence", "label"])
        writer.writerows([texts[i], labels[i]] for i in indices)
    return path


def arms(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Name -> data.augment settings of each arm."""
    found: dict[str, dict[str, Any]] = {"none": {}}
    for name in AUGMENTERS:
        for rate in args.rates.split(","):
            found[f"{name}@{rate}"] = {"data.augment": f"[{name}]", "data.augment_copies": args.copies, "data.augment_rate": rate}
    return found


def run_arm(files: dict[str, Path], settings: dict[str, Any], rows: int, seed: int, args: argparse.Namespace, out: Path) -> dict:
    """One run: validation and test accuracy, training rows, seconds."""
    from nlp_transfer.config import load_config
    from nlp_transfer.pipeline import run_training

    copies = args.copies if settings else 0
    per_epoch = math.ceil(rows * (1 + copies) / args.batch_size)
    values = {
        "output_dir": out,
        "seed": seed,
        "strategy": "frozen",
        "transfer.pooling": "mean",
        "data.train_file": files["train"],
        "data.validation_file": files["validation"],
        "data.test_file": SST2 / "dev.tsv",
        "training.epochs": math.ceil(args.steps / per_epoch),
        "training.batch_size": args.batch_size,
        "training.learning_rate": args.learning_rate,
        "training.eval_strategy": "steps",
        "training.eval_steps": max(1, args.steps // 10),
        "training.save_total_limit": 1,
        "training.torch_threads": args.threads,
        **settings,
    }
    started = time.perf_counter()
    result = run_training(load_config(SST2_CONFIG, [f"{k}={v}" for k, v in values.items()]), overwrite=True)
    return {
        "validation": result.metrics["validation"]["accuracy"],
        "test": result.metrics["test"]["accuracy"],
        "train_rows": result.info["examples"]["train"],
        "augmented": result.info["augmented_examples"],
        "steps": result.info["global_steps"],
        "seconds": round(time.perf_counter() - started, 1),
    }


def mean_std(values: list[float]) -> str:
    """``mean ± std`` (sample std) of accuracies, in percent."""
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):.1f} ± {100 * spread:.1f}"


def table(results: dict[str, dict[str, list[dict]]]) -> str:
    """Markdown: per size and arm, validation and test accuracy (mean ± std over seeds), test change against none."""
    lines = [
        "| per class | arm | validation acc. % | test acc. % | test change (points) | chosen on validation |",
        "|---|---|---|---|---|---|",
    ]
    for size, by_arm in results.items():
        base = statistics.mean(r["test"] for r in by_arm["none"])
        chosen = choose_rates(by_arm)
        for arm, runs in by_arm.items():
            val, test = [r["validation"] for r in runs], [r["test"] for r in runs]
            change = "" if arm == "none" else f"{100 * (statistics.mean(test) - base):+.1f}"
            mark = "yes" if arm in chosen else ""
            lines.append(f"| {size} | {arm} | {mean_std(val)} | {mean_std(test)} | {change} | {mark} |")
    return "\n".join(lines)


def choose_rates(by_arm: dict[str, list[dict]]) -> set[str]:
    """Per augmenter, the arm (rate) with the best mean validation accuracy."""
    chosen = set()
    for name in AUGMENTERS:
        candidates = [arm for arm in by_arm if arm.startswith(name + "@")]
        chosen.add(max(candidates, key=lambda arm: statistics.mean(r["validation"] for r in by_arm[arm])))
    return chosen


def main() -> int:
    """Run every size x seed x arm, print the table and save the results as JSON."""
    args = parse_args()
    if not dataset_present(SST2, "train.tsv", "SST-2"):
        return 2
    setup(args.threads)
    texts, labels = read_sst2(SST2 / "train.tsv")
    results: dict[str, dict[str, list[dict]]] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for size in [int(s) for s in args.sizes.split(",")]:
            by_arm: dict[str, list[dict]] = {arm: [] for arm in arms(args)}
            for seed in [int(s) for s in args.seeds.split(",")]:
                train = sample_rows(labels, size, seed)
                validation = sample_rows(labels, args.validation_per_class, 10_000 + seed, exclude=set(train))
                files = {
                    "train": write_rows(folder / f"train-{size}-{seed}.csv", texts, labels, train),
                    "validation": write_rows(folder / f"validation-{size}-{seed}.csv", texts, labels, validation),
                }
                for arm, settings in arms(args).items():
                    row = run_arm(files, settings, len(train), seed, args, folder / "run")
                    by_arm[arm].append(row)
                    print(f"augment_curve: {size}/class seed {seed} {arm}: {row}", file=sys.stderr, flush=True)
            results[str(size)] = by_arm
    report = {**report_header(args.threads), "settings": vars(args), "minutes": round((time.perf_counter() - started) / 60, 1)}
    report["results"] = results
    report["table"] = table(results)
    print(report["table"])
    print(f"results: {write_result('augment_curve', report)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
