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
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
SST2 = REPO.parent / "shared" / "datasets" / "sst2"


def read_sst2(path: Path, limit: int | None = None) -> tuple[list[str], list[int]]:
    """Sentences and 0/1 labels of an SST-2 TSV as published."""
    lines = path.read_text(encoding="utf-8").splitlines()[1:]
    if limit:
        lines = lines[:limit]
    rows = [line.rsplit("\t", 1) for line in lines]
    return [text.strip() for text, _ in rows], [int(label) for _, label in rows]


def run_trainer(model_path: str, rows: int, args: argparse.Namespace) -> dict[str, float]:
    """The plain Trainer, as the example scripts run it."""
    import numpy as np
    from datasets import Dataset
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    set_seed(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    texts, labels = read_sst2(SST2 / "train.tsv", rows)
    dev_texts, dev_labels = read_sst2(SST2 / "dev.tsv")

    def encode(t: list[str], y: list[int]) -> Dataset:
        data = Dataset.from_dict({"text": t, "label": y})
        return data.map(lambda b: tokenizer(b["text"], truncation=True, max_length=128), batched=True, remove_columns=["text"])

    train, dev = encode(texts, labels), encode(dev_texts, dev_labels)
    model = AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=2)
    steps = math.ceil(len(train) / args.batch_size) * args.epochs
    with tempfile.TemporaryDirectory() as out:
        training_args = TrainingArguments(
            output_dir=out,
            per_device_train_batch_size=args.batch_size,
            per_device_eval_batch_size=64,
            learning_rate=args.learning_rate,
            num_train_epochs=args.epochs,
            weight_decay=0.01,
            warmup_steps=math.ceil(0.06 * steps),
            max_grad_norm=1.0,
            lr_scheduler_type="linear",
            save_strategy="no",
            eval_strategy="no",
            report_to="none",
            logging_steps=50,
            seed=args.seed,
            use_cpu=True,
            disable_tqdm=True,
        )
        trainer = Trainer(model=model, args=training_args, train_dataset=train, data_collator=DataCollatorWithPadding(tokenizer))
        result = trainer.train()
        predictions = trainer.predict(dev).predictions
    accuracy = float((np.argmax(predictions, axis=-1) == np.asarray(dev_labels)).mean())
    return {
        "samples_per_second": result.metrics["train_samples_per_second"],
        "train_seconds": result.metrics["train_runtime"],
        "dev_accuracy": accuracy,
    }


def run_nlp_transfer(rows: int, args: argparse.Namespace, out: Path) -> dict[str, float]:
    """nlp-transfer's sentiment recipe config on the same rows."""
    from nlp_transfer.config import load_config
    from nlp_transfer.pipeline import run_training

    config = load_config(
        REPO / "recipes/configs/sentiment/sst2_full.yaml",
        [
            f"output_dir={out}",
            f"data.max_train_samples={rows}",
            f"training.epochs={args.epochs}",
            f"training.batch_size={args.batch_size}",
            f"training.learning_rate={args.learning_rate}",
            "training.eval_strategy=epoch",
            f"training.torch_threads={args.threads}",
            f"seed={args.seed}",
            f"data.train_file={SST2 / 'train.tsv'}",
            f"data.validation_file={SST2 / 'dev.tsv'}",
        ],
    )
    result = run_training(config, overwrite=True)
    return {
        "samples_per_second": result.info["train_samples_per_second"],
        "train_seconds": result.info["train_seconds"],
        "dev_accuracy": result.metrics["validation"]["accuracy"],
    }


def main() -> int:
    """Run both sides, print the comparison and save it as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-rows", type=int, default=8000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads for both sides")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    if not (SST2 / "train.tsv").is_file():
        print(f"error: {SST2} is missing; the benchmark reads SST-2 from ../shared/datasets.", file=sys.stderr)
        return 2

    import torch
    import transformers

    from nlp_transfer.models import resolve_model

    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    model_path = resolve_model("sentence-transformers/all-MiniLM-L6-v2").path
    runs: dict[str, list[dict[str, float]]] = {"trainer": [], "nlp_transfer": []}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            runs["nlp_transfer"].append(run_nlp_transfer(args.train_rows, args, Path(tmp) / f"run{repeat}"))
            runs["trainer"].append(run_trainer(model_path, args.train_rows, args))
    median = {side: {k: statistics.median(r[k] for r in results) for k in results[0]} for side, results in runs.items()}
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "command": "python " + " ".join(sys.argv),
        "machine": f"{os.cpu_count()} CPUs, torch threads {args.threads}, torch {torch.__version__}, transformers {transformers.__version__}",
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
    results = REPO / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / f"sst2_vs_trainer_{args.train_rows}.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
