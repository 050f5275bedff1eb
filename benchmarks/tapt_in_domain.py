"""Continued pretraining on a task's own training texts, then fine-tuning on their labels (issue #17, in-domain case).

For each seed, on the first ``--rows`` rows of the emotion training set (six classes, tweets):

- ``adapt``: ``nlp-transfer adapt`` (recipes/configs/adapt/minilm_tapt.yaml, ``--adapt-epochs``) on those rows'
  texts, labels dropped, 10 % of them held out for the masked-LM loss; run as its own process, so its wall time and
  peak resident memory (``ru_maxrss`` of the child) are the command's as a user meets it;
- ``base``: the emotion recipe (recipes/configs/classification/emotion_full.yaml, ``--epochs``) on the same rows'
  labels, from the default model; validation is the published val.txt (picks the epoch), test.txt scored once;
- ``tapt``: the same run from the adapted model.

No setting is chosen on the test split: the settings are the two recipes'. Rows are appended to
``benchmarks/results/tapt_in_domain.jsonl`` as each step ends; ``--report`` prints the table.

    python benchmarks/tapt_in_domain.py --rows 4000 --seeds 0,1 --threads 2
    python benchmarks/tapt_in_domain.py --report
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import DATASETS, DEFAULT_MODEL, REPO, append_row, dataset_present, read_rows, results_folder

RESULTS = "tapt_in_domain.jsonl"
EMOTION = DATASETS / "emotion"
TAPT_CONFIG = REPO / "recipes/configs/adapt/minilm_tapt.yaml"
EMOTION_CONFIG = REPO / "recipes/configs/classification/emotion_full.yaml"


def adapt(folder: Path, seed: int, args: argparse.Namespace) -> dict:
    """``nlp-transfer adapt`` in a child process on the first ``--rows`` emotion texts; its time, memory and losses."""
    command = [
        sys.executable, "-m", "nlp_transfer.cli", "adapt", str(TAPT_CONFIG),
        f"output_dir={folder}", f"seed={seed}", f"data.train_file={EMOTION / 'train.txt'}", "data.format=csv",
        "data.delimiter=;", "data.header=[text, label]", "data.text_column=text",
        f"data.max_train_samples={args.rows}", f"training.epochs={args.adapt_epochs}",
        f"training.torch_threads={args.threads}",
    ]  # fmt: skip
    started = time.perf_counter()
    child = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)  # this child's own resource use, peak memory included
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise subprocess.CalledProcessError(child.returncode, command)
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    return {
        "seconds": round(time.perf_counter() - started, 1),
        "peak_rss_mib": round(usage.ru_maxrss / 1024),
        "adapt_epochs": args.adapt_epochs,
        "metrics": metrics,
    }


def fine_tune(model: str | Path, seed: int, args: argparse.Namespace, folder: Path) -> dict:
    """The emotion recipe on the first ``--rows`` rows from ``model``: validation and test metrics."""
    from nlp_transfer.config import load_config
    from nlp_transfer.pipeline import run_training

    values = {
        "model": model,
        "output_dir": folder,
        "seed": seed,
        "data.train_file": EMOTION / "train.txt",
        "data.validation_file": EMOTION / "val.txt",
        "data.test_file": EMOTION / "test.txt",
        "data.max_train_samples": args.rows,
        "training.epochs": args.epochs,
        "training.torch_threads": args.threads,
    }
    started = time.perf_counter()
    result = run_training(load_config(EMOTION_CONFIG, [f"{k}={v}" for k, v in values.items()]))
    return {
        "seconds": round(time.perf_counter() - started, 1),
        "validation": result.metrics["validation"],
        "test": result.metrics["test"],
    }


def run(args: argparse.Namespace) -> int:
    """For every seed not done yet: adapt, then fine-tune from the base and from the adapted model."""
    if not dataset_present(EMOTION, "train.txt", "emotion"):
        return 2
    path = results_folder() / RESULTS
    done = {(r["seed"], r["arm"]) for r in read_rows(path) if r["rows"] == args.rows}
    for seed in (int(s) for s in args.seeds.split(",")):
        if not {(seed, "base"), (seed, "tapt")} <= done:
            one_seed(seed, args, path, done)
    return 0


def one_seed(seed: int, args: argparse.Namespace, path: Path, done: set[tuple[int, str]]) -> None:
    """Adapt (always: the tapt run needs this seed's adapted model), then the fine-tuning runs not done yet."""

    def record(arm: str, figures: dict) -> None:
        if (seed, arm) not in done:
            append_row(path, {"seed": seed, "arm": arm, "rows": args.rows, "threads": args.threads, **figures})

    with tempfile.TemporaryDirectory(prefix="tapt-in-domain-") as work:
        adapted = Path(work) / "adapted"
        record("adapt", adapt(adapted, seed, args))
        for arm, model in (("base", DEFAULT_MODEL), ("tapt", adapted)):
            if (seed, arm) not in done:
                record(arm, fine_tune(model, seed, args, Path(work) / arm))


def report(rows_used: int) -> int:
    """Mean ± std of test accuracy and macro-F1 per arm (runs on ``rows_used`` rows), and adaptation's cost."""
    rows = [r for r in read_rows(results_folder() / RESULTS) if r["rows"] == rows_used]
    print("| arm | seeds | test accuracy | test macro-F1 | validation macro-F1 |\n|---|---|---|---|---|")
    for arm in ("base", "tapt"):
        found = [r for r in rows if r["arm"] == arm]
        if not found:
            continue
        cells = []
        for split, key in (("test", "accuracy"), ("test", "f1_macro"), ("validation", "f1_macro")):
            values = [100 * r[split][key] for r in found]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):.1f} ± {spread:.1f} ({' / '.join(f'{v:.1f}' for v in values)})")
        print(f"| {arm} | {len(found)} | " + " | ".join(cells) + " |")
    for r in (r for r in rows if r["arm"] == "adapt"):
        per_1000 = 1000 * r["seconds"] / (r["rows"] * r["adapt_epochs"])
        print(
            f"adapt seed {r['seed']}: {r['seconds']} s, {per_1000:.0f} s per 1,000 texts a pass, peak RSS {r['peak_rss_mib']} MiB"
        )
    return 0


def main() -> int:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=4000, help="emotion training rows: the adapted texts and the labelled rows")
    parser.add_argument("--seeds", default="0,1", help="run seeds")
    parser.add_argument("--adapt-epochs", type=int, default=3, help="masked-LM epochs (the adapt recipe's 3)")
    parser.add_argument("--epochs", type=int, default=3, help="fine-tuning epochs (the emotion recipe's 3)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--report", action="store_true", help="print the table of the results so far")
    args = parser.parse_args()
    return report(args.rows) if args.report else run(args)


if __name__ == "__main__":
    raise SystemExit(main())
