"""Entity F1 of an int8 ONNX export of a CoNLL-2003 run against its PyTorch model, on the CoNLL test split.

    python benchmarks/export_ner.py --train-sentences 2000 --epochs 1 --threads 2

Trains the NER recipe (recipes/configs/ner/conll2003_full.yaml) on the first ``--train-sentences`` training sentences
for ``--epochs`` epochs (validated on the first ``--eval-sentences`` of valid.txt), or takes ``--run``; exports it
with ``int8=True`` and ``max_drop=100`` (so it always writes) into a temporary folder; then scores the first
``--test-sentences`` sentences of test.txt (default all 3,453) three ways through the code path of the export check
(nlp_transfer/export/validation.py and command.py: the run's own reader and task encode the split, ``score`` gives
the logits, ``compare`` the seqeval entity F1 and the tag agreement):
  torch       the run's PyTorch model
  onnx_int8   the int8 export (onnxruntime, dynamic quantization)
  onnx_fp32   the float32 export
Reported per side: entity F1 (micro, seqeval), its change from torch in points, the agreement of the predicted tag
with torch's on every scored word, the largest logit difference, and the wall time of one scoring pass (after a
one-batch warm-up). Every side runs with ``--threads`` threads (torch.set_num_threads and onnxruntime's intra-op
threads). Result: export_ner.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import CONLL, CONLL_CONFIG, dataset_present, report_header, run_recipe, setup, write_result

SIDES = ("torch", "onnx_int8", "onnx_fp32")


def parse_args() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", help="a trained CoNLL-2003 run directory (default: train one)")
    parser.add_argument("--train-sentences", type=int, default=2000, help="training sentences when no --run is given")
    parser.add_argument("--eval-sentences", type=int, default=1000, help="valid.txt sentences that validate the training run")
    parser.add_argument("--epochs", type=int, default=1, help="training epochs when no --run is given")
    parser.add_argument("--test-sentences", type=int, default=None, help="test.txt sentences to score (default: all)")
    parser.add_argument("--batch-size", type=int, default=64, help="scoring batch size of every side")
    parser.add_argument("--threads", type=int, default=2, help="threads of torch and onnxruntime alike")
    return parser.parse_args()


def trained_run(args: argparse.Namespace, folder: Path) -> Path:
    """``--run``, or the NER recipe trained on the first ``--train-sentences`` sentences (no test scoring)."""
    if args.run:
        return Path(args.run)
    out = folder / "run"
    overrides = [
        f"output_dir={out}",
        f"data.max_train_samples={args.train_sentences}",
        f"data.max_eval_samples={args.eval_sentences}",
        f"training.epochs={args.epochs}",
        f"training.torch_threads={args.threads}",
        f"data.train_file={CONLL / 'train.txt'}",
        f"data.validation_file={CONLL / 'valid.txt'}",
        "data.test_file=null",  # test is scored below, once per side
    ]
    run_recipe(CONLL_CONFIG, overrides)
    return out


def test_split(run: Path, task: Any, sentences: int | None) -> Any:
    """The test split as the export check reads a validation split: the run's config.yaml, its reader and task."""
    from nlp_transfer.config import load_config
    from nlp_transfer.export.validation import tagged_validation

    overrides = [
        f"data.validation_file={CONLL / 'test.txt'}",
        f"data.max_eval_samples={sentences or 'null'}",
        "data.test_file=null",
    ]
    return tagged_validation(load_config(run / "config.yaml", overrides), task)


def side_models(run: Path, export: Path, threads: int) -> tuple[dict[str, Any], Any]:
    """Name -> model (torch, or an onnxruntime session that answers like one) per side, and the run's task."""
    from nlp_transfer.export.onnx_backend import INT8_FILE, MODEL_FILE, OnnxModel, open_session
    from nlp_transfer.inference import load_run

    model, task = load_run(run, device="cpu")
    models = {
        "torch": model,
        "onnx_int8": OnnxModel(open_session(export / INT8_FILE, threads)),
        "onnx_fp32": OnnxModel(open_session(export / MODEL_FILE, threads)),
    }
    return models, task


def score_sides(models: dict[str, Any], task: Any, data: Any, batch_size: int) -> dict[str, dict[str, Any]]:
    """Per side: F1, its change from torch, tag agreement with torch and the seconds of one scoring pass (warmed up)."""
    from nlp_transfer.export.command import score
    from nlp_transfer.export.validation import compare
    from nlp_transfer.inference import batched_logits

    logits, seconds = {}, {}
    for name, model in models.items():
        batched_logits(model, task, {k: v[:batch_size] for k, v in data.rows.items()}, batch_size=batch_size)  # warm-up
        started = time.perf_counter()
        logits[name] = score(model, task, data, batch_size)
        seconds[name] = time.perf_counter() - started
    table = {}
    for name in models:
        check = compare(task, logits["torch"], logits[name], data)
        table[name] = {
            "entity_f1": round(check["after"], 4),
            "f1_change_points": round(-check["drop_points"], 2) + 0.0,  # no -0.0
            "tag_agreement_with_torch": round(check["label_agreement"], 5),
            "max_logit_difference": round(check["max_logit_difference"], 4),
            "seconds": round(seconds[name], 2),
            "sentences_per_second": round(len(data.labels) / seconds[name], 1),
        }
    return table


def main() -> int:
    """Train or take the run, export it with int8, score the test split with each side and write the report."""
    args = parse_args()
    if not dataset_present(CONLL, "test.txt", "CoNLL-2003"):
        return 1
    setup(args.threads)
    from nlp_transfer.export.command import export_run

    report: dict[str, Any] = {**report_header(args.threads), "train_sentences": args.train_sentences, "epochs": args.epochs}
    if args.run:
        report["run"] = args.run
    with tempfile.TemporaryDirectory() as scratch:
        run = trained_run(args, Path(scratch))
        export = export_run(run, output=Path(scratch) / "onnx", int8=True, max_drop=100.0)  # the figures, not a gate
        report["export_checks_on_validation"] = export["checks"]
        models, task = side_models(run, Path(export["output"]), args.threads)
        data = test_split(run, task, args.test_sentences)
        report["test_sentences"] = len(data.labels)
        report["scored_words"] = int((data.labels != -100).sum())
        report["sides"] = score_sides(models, task, data, args.batch_size)
    path = write_result("export_ner", report)
    print_table(report)
    print(f"results: {path}")
    return 0


def print_table(report: dict[str, Any]) -> None:
    """A Markdown table: one row per side."""
    print(f"CoNLL-2003 test, {report['test_sentences']} sentences, {report['scored_words']} scored words")
    print("| side | entity F1 | change (points) | tag agreement with torch | max logit diff | seconds | sentences/s |")
    print("|---|---|---|---|---|---|---|")
    for name, row in report["sides"].items():
        print(
            f"| {name} | {row['entity_f1']} | {row['f1_change_points']:+.2f} | {row['tag_agreement_with_torch']} | "
            f"{row['max_logit_difference']} | {row['seconds']} | {row['sentences_per_second']} |"
        )


if __name__ == "__main__":
    sys.exit(main())
