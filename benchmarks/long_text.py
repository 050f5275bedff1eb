"""Long reviews: truncation at 128 and 256 tokens against overlapping windows of 128 (issue #20).

For each Amazon domain and seed, three runs of the SST-2 recipe's settings (the default model, full fine-tuning)
that differ only in how a review longer than the model's window is read:

- ``truncate_128``: ``training.max_length=128``, the rest of the review is cut off;
- ``truncate_256``: ``training.max_length=256``;
- ``windows_128``: ``training.long_text=windows``, ``max_length=128``, ``window_stride=32``, window logits averaged.

Train on DOMAIN/train.tsv (10 % held out, seeded, picks the best epoch), test once on DOMAIN/dev.tsv. Besides
test accuracy each row records the wall time of the run and the test accuracy on the reviews longer than 128 tokens
(where the arms can differ at all). Results are appended to ``benchmarks/results/long_text_runs.jsonl`` as each run
ends (an interrupted benchmark resumes); ``--report`` prints the table.

    python benchmarks/long_text.py --domains books --seeds 0,1 --threads 2
    python benchmarks/long_text.py --report
"""

from __future__ import annotations

import argparse
import csv
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from common import AMAZON, REPO, append_row, dataset_present, read_rows, results_folder

RUNS_FILE = "long_text_runs.jsonl"
ARMS = {
    "truncate_128": {"training.max_length": 128},
    "truncate_256": {"training.max_length": 256},
    "windows_128": {"training.max_length": 128, "training.long_text": "windows", "training.window_stride": 32},
}
LONG = 128  # tokens (with the special tokens) beyond which a review is "long"


def overrides(arm: str, domain: str, seed: int, output_dir: Path, args: argparse.Namespace) -> list[str]:
    """The recipe overrides of one run."""
    values = {
        "output_dir": output_dir,
        "seed": seed,
        "data.train_file": AMAZON / domain / "train.tsv",
        "data.validation_file": None,
        "data.validation_split": 0.1,
        "data.test_file": AMAZON / domain / "dev.tsv",
        "training.epochs": args.epochs,
        "training.eval_strategy": "epoch",
        "training.torch_threads": args.threads,
        **ARMS[arm],
    }
    return [f"{key}={'null' if value is None else value}" for key, value in values.items()]


def long_review_accuracy(run_dir: Path, domain: str) -> tuple[float, int]:
    """Test accuracy of the saved run on the dev reviews longer than :data:`LONG` tokens, and how many there are."""
    from nlp_transfer.inference import load_run, predict_texts

    csv.field_size_limit(1 << 30)
    with (AMAZON / domain / "dev.tsv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    model, task = load_run(run_dir, device="cpu")
    long_rows = [r for r in rows if len(task.tokenizer(r["sentence"])["input_ids"]) > LONG]
    predicted = predict_texts(model, task, [r["sentence"] for r in long_rows], batch_size=32)
    correct = sum(p["label"] == task.id2label[int(r["label"])] for p, r in zip(predicted, long_rows, strict=True))
    return correct / len(long_rows), len(long_rows)


def run_one(arm: str, domain: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """Train one arm and return its row for the results file."""
    from nlp_transfer.config import load_config
    from nlp_transfer.pipeline import run_training

    with tempfile.TemporaryDirectory() as work:
        run_dir = Path(work) / "run"
        config = load_config(REPO / "recipes/configs/sentiment/sst2_full.yaml", overrides(arm, domain, seed, run_dir, args))
        started = time.perf_counter()
        result = run_training(config)
        seconds = time.perf_counter() - started
        long_accuracy, long_count = long_review_accuracy(run_dir, domain)
    return {
        "domain": domain,
        "seed": seed,
        "arm": arm,
        "seconds": round(seconds, 1),
        "test_accuracy": result.metrics["test"]["accuracy"],
        "validation_accuracy": result.metrics["validation"]["accuracy"],
        "long_test_accuracy": long_accuracy,
        "long_test_reviews": long_count,
        "truncated_texts": result.info.get("truncated_texts", {}),
    }


def run_benchmark(args: argparse.Namespace) -> int:
    """Run every pending (domain, seed, arm), appending each result as it ends."""
    if not dataset_present(AMAZON / "books", "train.tsv", "amazon_multidomain"):
        return 2
    path = results_folder() / RUNS_FILE
    done = {(r["domain"], r["seed"], r["arm"], r.get("epochs")) for r in read_rows(path)}
    for domain in args.domains.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            for arm in args.arms.split(","):
                if (domain, seed, arm, args.epochs) in done:
                    continue
                row = {**run_one(arm, domain, seed, args), "epochs": args.epochs, "threads": args.threads}
                append_row(path, row)
    return 0


def cell(values: list[float], digits: int = 1) -> str:
    """Mean ± spread over seeds (spread 0 for one seed)."""
    if not values:
        return "-"
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {spread:.{digits}f}"


def report(args: argparse.Namespace) -> int:
    """Print the table: test accuracy, accuracy on long reviews and run time per domain and arm."""
    rows = read_rows(results_folder() / RUNS_FILE)
    print("| domain | arm | seeds | test accuracy | accuracy on reviews > 128 tokens | run time (s) |")
    print("|---|---|---|---|---|---|")
    for domain in sorted({r["domain"] for r in rows}):
        for arm in ARMS:
            mine = [r for r in rows if (r["domain"], r["arm"]) == (domain, arm)]
            if not mine:
                continue
            accuracy = cell([100 * r["test_accuracy"] for r in mine])
            long_accuracy = cell([100 * r["long_test_accuracy"] for r in mine])
            seconds = statistics.median(r["seconds"] for r in mine)
            print(
                f"| {domain} | {arm} | {len(mine)} | {accuracy} | {long_accuracy} (n={mine[0]['long_test_reviews']}) | {seconds:.0f} |"
            )
    return 0


def parse_args() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--domains", default="books", help="Amazon domains, comma-separated (books has the longest reviews)")
    parser.add_argument("--arms", default=",".join(ARMS), help=f"which of {', '.join(ARMS)}")
    parser.add_argument("--seeds", default="0,1", help="run seeds")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of every run (default 2)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--report", action="store_true", help="print the table of the results so far")
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    raise SystemExit(report(arguments) if arguments.report else run_benchmark(arguments))
