"""``nlp-transfer evaluate RUN_DIR --data FILE``: score a saved run on a labelled file."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from nlp_transfer.cli.options import add_data_options, add_load_options, data_config, load_options
from nlp_transfer.errors import UserError
from nlp_transfer.files import write_text_atomic


def add_parser(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this verb's parser to ``verbs``."""
    evaluate = verbs.add_parser("evaluate", help="score a saved run on a labelled file")
    evaluate.add_argument("run_dir")
    evaluate.add_argument("--data", required=True, help="labelled csv/tsv/json/jsonl file")
    evaluate.add_argument("--output", help="also write the metrics JSON here")
    add_data_options(evaluate)
    add_load_options(evaluate)


def reads_data_from_flags(args: argparse.Namespace) -> bool:
    """Always: this verb's data settings come from its flags, so its errors name the flags, not config keys."""
    return True


def run(args: argparse.Namespace) -> None:
    """Run the verb with the parsed ``args``."""
    from nlp_transfer.inference import evaluate_file

    if args.output:  # a path that cannot take the metrics fails now, not after the scoring
        output = Path(args.output)
        if output.is_dir():
            raise UserError(f"--output {args.output}: a folder. Give the path of the JSON file to write.")
        writable_folder(output.parent)
    metrics = evaluate_file(
        args.run_dir, args.data, data_config(args, args.data), batch_size=args.batch_size, **load_options(args)
    )
    text = json.dumps(metrics, indent=2)
    if args.output:  # written whole and then moved into place: an earlier file is never half-replaced
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)  # only now: bad data leaves no empty folders
        write_text_atomic(args.output, text + "\n")
    print(text)


def writable_folder(folder: Path) -> None:
    """Refuse, before any scoring, an --output whose nearest existing folder is a file or cannot be written to."""
    existing = next(p for p in (folder, *folder.parents) if p.exists()) if folder.parts else Path(".")
    if not existing.is_dir():
        raise UserError(f"--output: {existing} is a file, not a folder. Give a path inside a folder.")
    if not os.access(existing, os.W_OK):
        raise UserError(f"--output: {existing} cannot be written to. Give a path you may write to.")
