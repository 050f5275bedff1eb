"""nlp-transfer's NER recipe against a run_ner.py-style Trainer: same model, same CoNLL-2003 sentences, one run.

    python benchmarks/conll_vs_trainer.py --train-sentences 4000 --threads 2

Both fine-tune the default model (MiniLM-L6, uncased) for one epoch with AdamW (lr 1e-4, linear
decay, 6 % warmup, weight decay 0.01, batch 16, max_length 128), label the first subword of each word
(run_ner.py's default), and score entity F1 with seqeval on the validation sentences. The Trainer
runs as run_ner.py runs it: random order, DataCollatorForTokenClassification. Training throughput
excludes evaluation. With --train-sentences 0 the whole training set is used and test F1 is reported.

Like for like: the CoNLL recipe (conll2003_full.yaml) turns on ``transfer.case_vocab`` (a cased vocabulary
for the uncased model), which the Trainer side has no counterpart for. So nlp-transfer runs here with
``transfer.case_vocab=false``, the same uncased inputs as the Trainer, and the ratio compares those two.
``--also-case-vocab`` adds a run of the recipe as shipped (case_vocab on), reported as a row of its own
and never in the ratio.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import (
    CONLL,
    CONLL_CONFIG,
    dataset_present,
    read_conll_sentences,
    recipe_figures,
    report_header,
    run_recipe,
    setup,
    train_with_trainer,
    write_result,
)


def encode_first_subword(tokenizer: Any, sentences: list[Any], label2id: dict[str, int]) -> Any:
    """Tokenize CoNLL sentences as run_ner.py does: the first subword of each word labelled, the rest -100."""
    from datasets import Dataset

    data = Dataset.from_dict(
        {"tokens": [s.tokens for s in sentences], "tags": [[label2id[t] for t in s.tags] for s in sentences]}
    )

    def align(batch: dict[str, list]) -> Any:
        """Tokenize a batch of word lists and label each word's first subword."""
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


def run_trainer(model_path: str, args: argparse.Namespace) -> dict[str, float]:
    """A run_ner.py-style Trainer run, scored with seqeval on the evaluation file."""
    import numpy as np
    from seqeval.metrics import f1_score
    from transformers import AutoModelForTokenClassification, AutoTokenizer, DataCollatorForTokenClassification, set_seed

    from nlp_transfer.data.conll import entity_types, tag_names

    set_seed(args.seed)
    train = read_conll_sentences("train.txt", args.train_sentences)
    labels = tag_names(entity_types(train))
    label2id = {t: i for i, t in enumerate(labels)}
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    train_set = encode_first_subword(tokenizer, train, label2id)
    eval_set = encode_first_subword(tokenizer, read_conll_sentences(args.eval_file), label2id)
    model = AutoModelForTokenClassification.from_pretrained(
        model_path, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label2id
    )
    settings = {"batch_size": args.batch_size, "learning_rate": args.learning_rate, "epochs": args.epochs, "seed": args.seed}
    figures, output = train_with_trainer(model, train_set, DataCollatorForTokenClassification(tokenizer), settings, eval_set)
    predictions = np.argmax(output.predictions, axis=-1)
    y_true, y_pred = [], []
    for pred_row, gold_row in zip(predictions, output.label_ids, strict=True):
        keep = gold_row != -100
        y_true.append([labels[t] for t in gold_row[keep]])
        y_pred.append([labels[t] for t in pred_row[keep]])
    return {**figures, "entity_f1": float(f1_score(y_true, y_pred))}


def run_nlp_transfer(args: argparse.Namespace, out: Path, *, case_vocab: bool = False) -> dict[str, float]:
    """nlp-transfer's NER recipe config on the same sentences, with ``transfer.case_vocab`` as given (off: like for like)."""
    overrides = [
        f"output_dir={out}",
        f"training.epochs={args.epochs}",
        f"training.batch_size={args.batch_size}",
        f"training.learning_rate={args.learning_rate}",
        f"training.torch_threads={args.threads}",
        f"seed={args.seed}",
        "training.warmup_ratio=0.06",
        f"transfer.case_vocab={'true' if case_vocab else 'false'}",
        f"data.train_file={CONLL / 'train.txt'}",
        f"data.validation_file={CONLL / args.eval_file}",
        "data.test_file=null",
    ]
    if args.train_sentences:
        overrides.append(f"data.max_train_samples={args.train_sentences}")
    return recipe_figures(run_recipe(CONLL_CONFIG, overrides), "f1", "entity_f1")


def print_report(args: argparse.Namespace, report: dict[str, Any]) -> None:
    """The comparison table: Trainer, nlp-transfer (case_vocab off) and, when run, the recipe as shipped."""
    print(f"\nCoNLL-2003, {args.train_sentences or 'all'} train sentences, {args.epochs} epoch(s), scored on {args.eval_file}:")
    print("nlp_transfer runs with transfer.case_vocab=false (uncased, like the Trainer); the recipe as shipped turns it on.")
    print(f"{'':<24}{'samples/s':>10}{'train s':>10}{'entity F1':>11}")
    for side in ("trainer", "nlp_transfer", "nlp_transfer_case_vocab"):
        if side in report:
            values = report[side]
            print(f"{side:<24}{values['samples_per_second']:>10.1f}{values['train_seconds']:>10.1f}{values['entity_f1']:>11.4f}")
    print(f"throughput ratio nlp-transfer (case_vocab off) / Trainer: {report['throughput_ratio']:.2f}")


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
    parser.add_argument(
        "--also-case-vocab",
        action="store_true",
        help="also run the recipe as shipped (transfer.case_vocab=true), as a separate row",
    )
    args = parser.parse_args()
    if not dataset_present(CONLL, "train.txt", "CoNLL-2003"):
        return 2
    model_path = setup(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        ours = run_nlp_transfer(args, Path(tmp) / "run")
        theirs = run_trainer(model_path, args)
        cased = run_nlp_transfer(args, Path(tmp) / "run_case_vocab", case_vocab=True) if args.also_case_vocab else None
    report: dict[str, Any] = {
        **report_header(args.threads),
        "case_vocab": "nlp_transfer ran with transfer.case_vocab=false (the Trainer has no cased vocabulary)",
        "nlp_transfer": ours,
        "trainer": theirs,
        "throughput_ratio": ours["samples_per_second"] / theirs["samples_per_second"],
    }
    if cased is not None:
        report["nlp_transfer_case_vocab"] = cased
    print_report(args, report)
    write_result(f"conll_vs_trainer_{args.train_sentences}", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
