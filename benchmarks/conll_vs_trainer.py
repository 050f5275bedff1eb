"""nlp-transfer's NER recipe against a run_ner.py-style Trainer: same model, same CoNLL-2003 sentences, one run.

    python benchmarks/conll_vs_trainer.py --train-sentences 4000 --threads 2

Both fine-tune the default model (MiniLM-L6, uncased) for one epoch with AdamW (lr 1e-4, linear
decay, 6 % warmup, weight decay 0.01, batch 16, max_length 128), label the first subword of each word
(run_ner.py's default), and score entity F1 with seqeval on the validation sentences. The Trainer
runs as run_ner.py runs it: random order, DataCollatorForTokenClassification. Training throughput
excludes evaluation. With --train-sentences 0 the whole training set is used and test F1 is reported.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
CONLL = REPO.parent / "shared" / "datasets" / "conll2003"


def run_trainer(model_path: str, args: argparse.Namespace) -> dict[str, float]:
    """A run_ner.py-style Trainer run."""
    import numpy as np
    from datasets import Dataset
    from seqeval.metrics import f1_score
    from transformers import (
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    from nlp_transfer.data.conll import entity_types, read_conll, tag_names

    set_seed(args.seed)
    train = read_conll(str(CONLL / "train.txt"), tag_column=3).sentences
    if args.train_sentences:
        train = train[: args.train_sentences]
    evaluation = read_conll(str(CONLL / args.eval_file), tag_column=3).sentences
    labels = tag_names(entity_types(train))
    label2id = {t: i for i, t in enumerate(labels)}
    tokenizer = AutoTokenizer.from_pretrained(model_path)

    def encode(sentences):
        data = Dataset.from_dict(
            {"tokens": [s.tokens for s in sentences], "tags": [[label2id[t] for t in s.tags] for s in sentences]}
        )

        def align(batch):
            enc = tokenizer(batch["tokens"], is_split_into_words=True, truncation=True, max_length=128)
            enc["labels"] = []
            for i, tags in enumerate(batch["tags"]):
                previous, row = None, []
                for word in enc.word_ids(i):
                    row.append(-100 if word is None or word == previous else tags[word])
                    previous = word
                enc["labels"].append(row)
            return enc

        return data.map(align, batched=True, remove_columns=["tokens", "tags"])

    train_set, eval_set = encode(train), encode(evaluation)
    model = AutoModelForTokenClassification.from_pretrained(
        model_path, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label2id
    )
    steps = math.ceil(len(train_set) / args.batch_size) * args.epochs
    with tempfile.TemporaryDirectory() as out:
        training_args = TrainingArguments(
            output_dir=out,
            per_device_train_batch_size=args.batch_size,
            per_device_eval_batch_size=64,
            learning_rate=args.learning_rate,
            num_train_epochs=args.epochs,
            weight_decay=0.01,
            warmup_steps=math.ceil(0.06 * steps),
            lr_scheduler_type="linear",
            save_strategy="no",
            eval_strategy="no",
            report_to="none",
            seed=args.seed,
            use_cpu=True,
            disable_tqdm=True,
        )
        trainer = Trainer(
            model=model, args=training_args, train_dataset=train_set, data_collator=DataCollatorForTokenClassification(tokenizer)
        )
        result = trainer.train()
        output = trainer.predict(eval_set)
    predictions = np.argmax(output.predictions, axis=-1)
    y_true, y_pred = [], []
    for pred_row, gold_row in zip(predictions, output.label_ids, strict=True):
        keep = gold_row != -100
        y_true.append([labels[t] for t in gold_row[keep]])
        y_pred.append([labels[t] for t in pred_row[keep]])
    return {
        "samples_per_second": result.metrics["train_samples_per_second"],
        "train_seconds": result.metrics["train_runtime"],
        "entity_f1": float(f1_score(y_true, y_pred)),
    }


def run_nlp_transfer(args: argparse.Namespace, out: Path) -> dict[str, float]:
    """nlp-transfer's NER recipe config on the same sentences."""
    from nlp_transfer.config import load_config
    from nlp_transfer.pipeline import run_training

    overrides = [
        f"output_dir={out}",
        f"training.epochs={args.epochs}",
        f"training.batch_size={args.batch_size}",
        f"training.learning_rate={args.learning_rate}",
        f"training.torch_threads={args.threads}",
        f"seed={args.seed}",
        "training.warmup_ratio=0.06",
        f"data.train_file={CONLL / 'train.txt'}",
        f"data.validation_file={CONLL / args.eval_file}",
        "data.test_file=null",
    ]
    if args.train_sentences:
        overrides.append(f"data.max_train_samples={args.train_sentences}")
    result = run_training(load_config(REPO / "recipes/configs/ner/conll2003_full.yaml", overrides), overwrite=True)
    return {
        "samples_per_second": result.info["train_samples_per_second"],
        "train_seconds": result.info["train_seconds"],
        "entity_f1": result.metrics["validation"]["f1"],
    }


def main() -> int:
    """Run both sides and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-sentences", type=int, default=4000, help="first N training sentences; 0 = all")
    parser.add_argument("--eval-file", default="valid.txt", help="valid.txt or test.txt")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    if not (CONLL / "train.txt").is_file():
        print(f"error: {CONLL} is missing; the benchmark reads CoNLL-2003 from ../shared/datasets.", file=sys.stderr)
        return 2
    import torch
    import transformers

    from nlp_transfer.models import resolve_model

    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    model_path = resolve_model("sentence-transformers/all-MiniLM-L6-v2").path
    with tempfile.TemporaryDirectory() as tmp:
        ours = run_nlp_transfer(args, Path(tmp) / "run")
        theirs = run_trainer(model_path, args)
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "command": "python " + " ".join(sys.argv),
        "machine": f"{os.cpu_count()} CPUs, torch threads {args.threads}, torch {torch.__version__}",
        "nlp_transfer": ours,
        "trainer": theirs,
        "throughput_ratio": ours["samples_per_second"] / theirs["samples_per_second"],
    }
    print(f"\nCoNLL-2003, {args.train_sentences or 'all'} train sentences, {args.epochs} epoch(s), scored on {args.eval_file}:")
    print(f"{'':<14}{'samples/s':>10}{'train s':>10}{'entity F1':>11}")
    for side, values in (("trainer", theirs), ("nlp_transfer", ours)):
        print(f"{side:<14}{values['samples_per_second']:>10.1f}{values['train_seconds']:>10.1f}{values['entity_f1']:>11.4f}")
    print(f"throughput ratio nlp-transfer / Trainer: {report['throughput_ratio']:.2f}")
    results = REPO / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / f"conll_vs_trainer_{args.train_sentences}.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
