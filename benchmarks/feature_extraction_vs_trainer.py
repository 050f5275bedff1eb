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
sys.path.insert(0, str(REPO / "benchmarks"))

from sst2_vs_trainer import SST2, read_sst2  # noqa: E402


def run_trainer(model_path: str, args: argparse.Namespace, *, grouped: bool) -> dict[str, float]:
    """The Trainer with the encoder frozen by hand (``requires_grad=False``), as a user would write it."""
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
    texts, labels = read_sst2(SST2 / "train.tsv", args.train_rows)
    dev_texts, dev_labels = read_sst2(SST2 / "dev.tsv")

    def encode(t: list[str], y: list[int]) -> Dataset:
        data = Dataset.from_dict({"text": t, "label": y})
        return data.map(lambda b: tokenizer(b["text"], truncation=True, max_length=128), batched=True, remove_columns=["text"])

    train = encode(texts, labels)
    model = AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=2)
    for name, param in model.bert.named_parameters():
        param.requires_grad_(name.startswith("pooler."))  # the same head as nlp-transfer's frozen strategy
    steps = math.ceil(len(train) / args.batch_size) * args.epochs
    extra = {"train_sampling_strategy": "group_by_length"} if grouped else {}
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
            **extra,
        )
        trainer = Trainer(model=model, args=training_args, train_dataset=train, data_collator=DataCollatorWithPadding(tokenizer))
        result = trainer.train()
    # score outside the Trainer: with group_by_length, Trainer.predict returns its predictions out of order (transformers 5.23)
    from nlp_transfer.inference import text_logits
    from nlp_transfer.tasks.classification import SequenceClassificationTask

    task = SequenceClassificationTask(model_path=model_path, labels=["0", "1"], tokenizer=tokenizer, max_length=128)
    model.eval()
    accuracy = float((text_logits(model, task, dev_texts).argmax(-1) == np.asarray(dev_labels)).mean())
    return {"train_seconds": result.metrics["train_runtime"], "dev_accuracy": accuracy}


def run_nlp_transfer(args: argparse.Namespace, out: Path) -> dict[str, float]:
    """nlp-transfer's frozen strategy with cached features, from the SST-2 recipe config."""
    from nlp_transfer.config import load_config
    from nlp_transfer.pipeline import run_training

    config = load_config(
        REPO / "recipes/configs/sentiment/sst2_full.yaml",
        [
            f"output_dir={out}",
            "strategy=frozen",
            f"data.max_train_samples={args.train_rows}",
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
        "train_seconds": result.info["train_seconds"],
        "train_encoding_seconds": result.info["feature_encoding_seconds"]["train"],
        "dev_accuracy": result.metrics["validation"]["accuracy"],
    }


def main() -> int:
    """Run the three sides, print the comparison and save it as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-rows", type=int, default=8000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads for every side")
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
    runs: dict[str, list[dict[str, float]]] = {"nlp_transfer_cached": [], "trainer_random": [], "trainer_grouped": []}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            runs["nlp_transfer_cached"].append(run_nlp_transfer(args, Path(tmp) / f"run{repeat}"))
            runs["trainer_random"].append(run_trainer(model_path, args, grouped=False))
            runs["trainer_grouped"].append(run_trainer(model_path, args, grouped=True))
    median = {side: {k: statistics.median(r[k] for r in results) for k in results[0]} for side, results in runs.items()}
    ours = median["nlp_transfer_cached"]["train_seconds"]
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "command": "python " + " ".join(sys.argv),
        "machine": f"{os.cpu_count()} CPUs, torch threads {args.threads}, torch {torch.__version__}, transformers {transformers.__version__}",
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
    results = REPO / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / f"feature_extraction_{args.train_rows}.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
