"""``nlp-transfer export RUN_DIR``: ONNX (optionally int8), checked on the validation split."""

from __future__ import annotations

import argparse
import sys

from nlp_transfer.cli.options import add_load_options, finite_number, load_options


def add_parser(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this verb's parser to ``verbs``."""
    export = verbs.add_parser("export", help="write a run as ONNX (optionally int8), checked on its validation split")
    export.add_argument("run_dir")
    export.add_argument("--int8", action="store_true", help="also write a dynamically quantized int8 model and serve that one")
    export.add_argument("--output", help="export folder (default: RUN_DIR/onnx)")
    export.add_argument(
        "--max-drop",
        type=finite_number(0.0),
        default=0.5,
        help="refuse (exit 1, nothing written) when the export's validation metric is more than this many points below the run's (default: 0.5)",
    )
    add_load_options(export)  # --batch-size (texts per batch when checking), --trust-remote-code, --allow-pickle, --debug


def run(args: argparse.Namespace) -> None:
    """Run the verb with the parsed ``args``."""
    from nlp_transfer.export.command import ExportRefused, export_run

    try:
        report = export_run(
            args.run_dir,
            output=args.output,
            int8=args.int8,
            max_drop=args.max_drop,
            batch_size=args.batch_size,
            **load_options(args),
        )
    except ExportRefused as refused:
        print(refused, file=sys.stderr)
        raise SystemExit(1) from None
    for name, check in report["checks"].items():
        print(
            f"{name}: label agreement {check['label_agreement']:.4f}, {check['metric']} {check['before']:.4f} -> "
            f"{check['after']:.4f} ({100 * (check['after'] - check['before']):+.2f} points) on {report['checked_on']}"
        )
    print(f"export: {report['output']}")
