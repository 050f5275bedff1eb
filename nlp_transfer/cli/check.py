"""``nlp-transfer check RUN_DIR``: calibration, behaviour, bias and slices of a run before shipping it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nlp_transfer.cli.options import add_data_options, add_load_options, data_config, load_options


def add_parser(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this verb's parser to ``verbs``."""
    check = verbs.add_parser("check", help="calibration, behavioural tests, bias and slices of a saved run, before shipping it")
    check.add_argument("run_dir")
    check.add_argument("--data", help="labelled file to score (default: the run's test split, else its validation split)")
    check.add_argument(
        "--fail-under",
        nargs="+",
        metavar="KEY=VALUE",
        help="exit 1 when a figure of check.json misses its bound: below it for accuracy, recall and auc; above it for "
        "error, flip and failure rates, gaps, ece and brier; e.g. behaviour.negation.failure_rate=0.2",
    )
    check.add_argument(
        "--suite",
        nargs="+",
        metavar="NAME|FILE",
        help="behavioural suites to add to the shipped ones: a YAML/JSONL file or a shipped name",
    )
    check.add_argument("--slice-column", help="also report accuracy per value of this column of --data (or of the test file)")
    check.add_argument(
        "--drift",
        metavar="FILE",
        help="new, unlabelled inputs (one a line, or --text-column of a table): how far they are from the run's "
        "training texts (nlp-transfer shift's domain classifier; drift.* gates)",
    )
    check.add_argument("--bins", type=int, default=15, help="confidence bins of the calibration error (default: 15)")
    check.add_argument(
        "--calibrator",
        choices=["temperature", "isotonic", "auto"],
        default="temperature",
        help="what predict/evaluate apply to single-label scores afterwards: a temperature (default); isotonic, a "
        "temperature then a monotone map of the chosen label's score (repairs a model over-confident in mid range and "
        "under-confident at the top); auto, the one with the lower cross-fitted validation ECE",
    )
    add_data_options(check)
    add_load_options(check)


def reads_data_from_flags(args: argparse.Namespace) -> bool:
    """Whether this run's data came from flags (``--data``; otherwise the run's own validation data): its errors then
    name the flags, not config keys."""
    return bool(args.data)


def run(args: argparse.Namespace) -> None:
    """Run the verb with the parsed ``args``."""
    from nlp_transfer.check.command import check_run
    from nlp_transfer.check.report_md import summary_lines

    data = data_config(args, args.data) if args.data else None
    report = check_run(
        args.run_dir,
        data_path=args.data,
        data=data,
        batch_size=args.batch_size,
        bins=args.bins,
        suites=args.suite or [],
        slice_column=args.slice_column,
        fail_under=args.fail_under or [],
        drift=args.drift,
        drift_encoding=args.encoding,
        text_column=args.text_column,
        calibrator=args.calibrator,
        **load_options(args),
    )
    print("\n".join(summary_lines(report)))
    print(f"report: {Path(args.run_dir) / 'check'}")
    missed = report["gates"]["missed"]
    if missed:
        print("check failed: " + "; ".join(missed), file=sys.stderr)
        raise SystemExit(1)
