"""``nlp-transfer shift SOURCE TARGET``: how far two text sets are apart."""

from __future__ import annotations

import argparse
import json

from nlp_transfer.cli.options import whole_number


def add_parser(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this verb's parser to ``verbs``."""
    shift = verbs.add_parser("shift", help="how far TARGET texts are from SOURCE texts (or a run's training data)")
    shift.add_argument("source", help="a text file (one text a line, or csv/tsv/json/jsonl) or a saved run's output_dir")
    shift.add_argument("target", help="a text file (one text a line, or csv/tsv/json/jsonl)")
    shift.add_argument("--model", help="model whose mean-pooled embeddings are compared (default: the run's, else MiniLM)")
    shift.add_argument("--sample", type=int, default=1000, help="texts drawn from each side (default: 1000)")
    shift.add_argument("--json", action="store_true", help="print the report as one JSON object instead of text")
    shift.add_argument("--output", help="folder for shift.json and shift.png (default: TARGET-shift beside the target)")
    shift.add_argument("--text-column", default="text", help="text column of csv/tsv/json/jsonl files (default: text)")
    shift.add_argument("--encoding", default="utf-8", help="encoding of the files (default: utf-8)")
    shift.add_argument("--batch-size", type=whole_number(1), default=64, help="texts per batch (default: 64)")
    shift.add_argument(
        "--seed", type=whole_number(0, 2**32 - 1), default=0, help="seed of the samples and the classifier's folds (default: 0)"
    )
    shift.add_argument("--debug", action="store_true", help="show tracebacks and library logs")


def reads_data_from_flags(args: argparse.Namespace) -> bool:
    """Always: this verb's data settings come from its flags, so its errors name the flags, not config keys."""
    return True


def run(args: argparse.Namespace) -> None:
    """Run the verb with the parsed ``args``."""
    from nlp_transfer.shift.command import run_shift
    from nlp_transfer.shift.report import render_text

    report, paths = run_shift(
        args.source,
        args.target,
        model=args.model,
        sample=args.sample,
        output_dir=args.output,
        text_column=args.text_column,
        encoding=args.encoding,
        batch_size=args.batch_size,
        seed=args.seed,
    )
    if args.json:
        print(json.dumps(report.to_dict()))
        return
    print(render_text(report))
    print(f"report: {paths['shift.json'].parent}")
