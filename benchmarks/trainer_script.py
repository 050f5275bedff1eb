"""A plain Hugging Face Trainer fine-tuning script on SST-2, timed stage by stage (the partner of process_speed.py).

    python benchmarks/trainer_script.py --model MODEL_DIR --train-rows 8000 --threads 2 --output-dir OUT --stages-json OUT.json

Written the way a user writes one: read the first ``--train-rows`` rows of ../shared/datasets/sst2/train.tsv and all
of dev.tsv, tokenize them with ``datasets.map`` (truncation at ``--max-length``, dynamic padding), fine-tune
``AutoModelForSequenceClassification``, score dev with ``trainer.evaluate`` (accuracy) and ``trainer.save_model``.
The ``TrainingArguments`` are benchmarks/common.py's ``trainer_arguments`` with length grouping
(``train_sampling_strategy="group_by_length"``, the Trainer at its best), the same ones speed.py gives the Trainer.
It never imports nlp_transfer: pass the model's local folder with ``--model``. Wall-clock stage times (imports, load,
data, train, eval, save; start-up too when the parent passes ``--launch-time``) go to ``--stages-json`` with the dev
accuracy and the Trainer's own ``train_runtime``.
"""

import time

STARTED = time.time()  # before any import: the parent's launch time to here is the interpreter's start-up

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from common import MAX_LENGTH, SST2, read_sst2, trainer_arguments  # noqa: E402
from datasets import Dataset  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    Trainer,
    set_seed,
)
from transformers import logging as hf_logging  # noqa: E402

IMPORTED = time.time()


def parse_args() -> argparse.Namespace:
    """The script's flags: rows, epochs, batch size, learning rate, length, threads, precision and where to write."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="local folder of the pretrained model")
    parser.add_argument("--train-rows", type=int, default=8000, help="the first N rows of train.tsv")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--max-length", type=int, default=MAX_LENGTH)
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--bf16", action="store_true", help="the Trainer's bf16 autocast")
    parser.add_argument("--output-dir", required=True, help="where trainer.save_model writes the model")
    parser.add_argument("--stages-json", required=True, help="where the stage times and dev accuracy go")
    parser.add_argument("--launch-time", type=float, default=None, help="the parent's time.time() at launch")
    return parser.parse_args()


def tokenized(tokenizer: Any, texts: list[str], labels: list[int], max_length: int) -> Dataset:
    """A ``datasets.Dataset`` of token ids and labels, truncated at ``max_length`` and not padded."""
    return Dataset.from_dict({"text": texts, "label": labels}).map(
        lambda batch: tokenizer(batch["text"], truncation=True, max_length=max_length), batched=True, remove_columns=["text"]
    )


def accuracy(prediction: Any) -> dict[str, float]:
    """``compute_metrics`` for the Trainer: the share of argmax predictions equal to the label."""
    return {"accuracy": float((np.argmax(prediction.predictions, axis=-1) == prediction.label_ids).mean())}


def run(args: argparse.Namespace, stage: Callable[[str], None]) -> dict[str, Any]:
    """Load, tokenize, train, evaluate and save; ``stage(name)`` closes each stage. Returns the figures to report."""
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForSequenceClassification.from_pretrained(args.model, num_labels=2)
    stage("load")
    texts, labels = read_sst2(SST2 / "train.tsv", args.train_rows)
    dev_texts, dev_labels = read_sst2(SST2 / "dev.tsv")
    train_set = tokenized(tokenizer, texts, labels, args.max_length)
    dev_set = tokenized(tokenizer, dev_texts, dev_labels, args.max_length)
    stage("data")
    settings = {"batch_size": args.batch_size, "learning_rate": args.lr, "epochs": args.epochs, "seed": args.seed}
    arguments = trainer_arguments(
        args.output_dir, train_rows=len(train_set), sampling="group_by_length", bf16=args.bf16, **settings
    )
    trainer = Trainer(
        model=model,
        args=arguments,
        train_dataset=train_set,
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
        compute_metrics=accuracy,
    )
    train_metrics = trainer.train().metrics
    stage("train")
    eval_metrics = trainer.evaluate(eval_dataset=dev_set)
    stage("eval")
    trainer.save_model(args.output_dir)
    stage("save")
    return {
        "train_runtime": train_metrics["train_runtime"],
        "train_samples_per_second": train_metrics["train_samples_per_second"],
        "dev_accuracy": eval_metrics["eval_accuracy"],
        "dev_rows": len(dev_set),
        "train_rows": len(train_set),
    }


def main() -> int:
    """Time every stage of one fine-tuning run and write the stage times and dev accuracy as JSON."""
    args = parse_args()
    torch.set_num_threads(args.threads)
    hf_logging.set_verbosity_error()
    set_seed(args.seed)
    stages: dict[str, float] = {"imports": IMPORTED - STARTED}
    if args.launch_time is not None:
        stages["startup"] = STARTED - args.launch_time
    last = [IMPORTED]  # argument parsing and set-up count towards "load"

    def stage(name: str) -> None:
        """Record the wall time since the previous stage ended as stage ``name``."""
        now = time.time()
        stages[name], last[0] = now - last[0], now

    figures = run(args, stage)
    report = {"started": STARTED, "launch_time": args.launch_time, "stages": stages, **figures, "finished": time.time()}
    Path(args.stages_json).write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
