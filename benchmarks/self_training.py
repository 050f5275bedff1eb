"""Self-training across domains: Amazon reviews of one product domain labelled, another's unlabelled (issue #17).

For each SOURCE:TARGET pair and seed, three runs of the same recipe settings (the default model, full fine-tuning):

- ``source_only``: train on SOURCE/train.tsv (10 % held out, seeded, picks the best epoch), test on TARGET/dev.tsv;
- ``self_training``: the same, plus ``data.unlabeled_file=TARGET/train.tsv`` (its texts only; labels are never read)
  and one round of pseudo-labels (``self_training.*`` at their defaults);
- ``in_domain``: train on TARGET/train.tsv, test on TARGET/dev.tsv (the upper bound).

No setting is chosen on the target: the settings are the SST-2 recipe's. Results are appended to
``benchmarks/results/self_training_runs.jsonl`` as each run ends, so an interrupted benchmark resumes where it
stopped; ``--report`` prints the table (mean and spread over seeds, and the share of the source-to-in-domain
gap that self-training closes).

    python benchmarks/self_training.py --pairs books:kitchen,electronics:dvd --seeds 0,1 --threads 2
    python benchmarks/self_training.py --report
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from common import AMAZON, REPO, append_row, dataset_present, read_rows, results_folder

RUNS_FILE = "self_training_runs.jsonl"
ARMS = ("source_only", "self_training", "in_domain")


def overrides(arm: str, source: str, target: str, seed: int, output_dir: Path, args: argparse.Namespace) -> list[str]:
    """The recipe overrides of one run."""
    train = AMAZON / (target if arm == "in_domain" else source) / "train.tsv"
    values = {
        "output_dir": output_dir,
        "seed": seed,
        "data.train_file": train,
        "data.validation_file": None,
        "data.validation_split": 0.1,
        "data.test_file": AMAZON / target / "dev.tsv",
        "training.epochs": args.epochs,
        "training.max_length": args.max_length,
        "training.eval_strategy": "epoch",
        "training.torch_threads": args.threads,
    }
    if arm == "self_training":
        values["data.unlabeled_file"] = AMAZON / target / "train.tsv"
    return [f"{key}={'null' if value is None else value}" for key, value in values.items()]


def run_one(arm: str, source: str, target: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """Train one arm and return its row for the results file."""
    from nlp_transfer.config import load_config
    from nlp_transfer.pipeline import run_training

    with tempfile.TemporaryDirectory() as work:
        config = load_config(
            REPO / "recipes/configs/sentiment/sst2_full.yaml", overrides(arm, source, target, seed, Path(work) / "run", args)
        )
        started = time.perf_counter()
        result = run_training(config)
        seconds = time.perf_counter() - started
    row = {"source": source, "target": target, "seed": seed, "arm": arm, "seconds": round(seconds, 1)}
    row["test_accuracy"] = result.metrics["test"]["accuracy"]
    row["validation_accuracy"] = result.metrics["validation"]["accuracy"]
    rounds = result.info.get("self_training", {}).get("rounds", [])
    if rounds:
        row["pseudo_labels"] = rounds[-1].get("pseudo_labels_per_class")
        row["round_0_validation_accuracy"] = rounds[0]["validation"].get("accuracy")
    return row


def run_benchmark(args: argparse.Namespace) -> int:
    """Run every pending (pair, seed, arm), appending each result as it ends."""
    if not dataset_present(AMAZON / "books", "train.tsv", "amazon_multidomain"):
        return 2
    path = results_folder() / RUNS_FILE
    done = {(r["source"], r["target"], r["seed"], r["arm"], r.get("epochs")) for r in read_rows(path)}
    for pair in args.pairs.split(","):
        source, target = pair.split(":")
        for seed in (int(s) for s in args.seeds.split(",")):
            for arm in ARMS:
                if (source, target, seed, arm, args.epochs) in done:
                    continue
                row = {**run_one(arm, source, target, seed, args), "epochs": args.epochs, "threads": args.threads}
                append_row(path, row)
    return 0


def report(args: argparse.Namespace) -> int:
    """Print the table: test accuracy per pair and arm (mean ± spread over seeds) and the gap self-training closes."""
    rows = read_rows(results_folder() / RUNS_FILE)
    pairs = sorted({(r["source"], r["target"]) for r in rows})
    print("| source -> target | seeds | source only | self-training | in-domain | gap closed |")
    print("|---|---|---|---|---|---|")
    for source, target in pairs:
        cells, means = [], {}
        for arm in ARMS:
            values = [100 * r["test_accuracy"] for r in rows if (r["source"], r["target"], r["arm"]) == (source, target, arm)]
            means[arm] = statistics.mean(values) if values else float("nan")
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{means[arm]:.1f} ± {spread:.1f}" if values else "-")
        seeds = len({r["seed"] for r in rows if (r["source"], r["target"]) == (source, target)})
        gap = means["in_domain"] - means["source_only"]
        closed = f"{100 * (means['self_training'] - means['source_only']) / gap:.0f} %" if gap > 0 else "-"
        print(f"| {source} -> {target} | {seeds} | " + " | ".join(cells) + f" | {closed} |")
    return 0


def parse_args() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--pairs", default="books:kitchen,electronics:dvd", help="SOURCE:TARGET,... of books, dvd, electronics, kitchen"
    )
    parser.add_argument("--seeds", default="0,1", help="run seeds")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of every run (default 2)")
    parser.add_argument("--max-length", type=int, default=128, help="tokens per review (default 128)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--report", action="store_true", help="print the table of the results so far")
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    raise SystemExit(report(arguments) if arguments.report else run_benchmark(arguments))
