"""``nlp-transfer rank CONFIG --models ...``: score candidate source models before training."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nlp_transfer.cli.options import whole_number
from nlp_transfer.collector import imports_paused


def add_parser(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this verb's parser to ``verbs``."""
    rank = verbs.add_parser("rank", help="score candidate source models on the run's data before training")
    rank.add_argument("config", help="YAML config of the run (its data, task and model); 'key=value' items override its keys")
    rank.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. data.train_file=PATH")
    rank.add_argument(
        "--models",
        required=True,
        help="comma-separated candidates: Hub ids or folders, each optionally MODEL@key=value+... with keys "
        "layer (index or mean), pooling (cls, mean), depth (bottom K layers), init (random: a control); @depth=3 means the config's model",
    )
    rank.add_argument("--sample", type=whole_number(1), default=2000, help="training rows encoded per candidate (default: 2000)")
    rank.add_argument("--estimators", help="comma-separated subset of logme,hscore,knn,linear_probe (default: all)")
    rank.add_argument("--recommend-by", default="logme", help="the estimator whose best score names the pick (default: logme)")
    rank.add_argument("--output", help="report folder for rank.json, rank.md, rank.png (default: OUTPUT_DIR-rank)")
    rank.add_argument("--debug", action="store_true", help="show tracebacks and library logs")


def run(args: argparse.Namespace) -> None:
    """Run the verb with the parsed ``args``."""
    from nlp_transfer.config import load_config

    with imports_paused("nlp_transfer.rank"):  # torch and transformers (checking the config's task imports them too)
        config = load_config(args.config, args.overrides)
        from nlp_transfer.rank import markdown_table, parse_candidates, run_ranking
    candidates = parse_candidates(args.models, default_model=config.model, default_pooling=config.transfer.pooling)
    estimators = [e.strip() for e in args.estimators.split(",") if e.strip()] if args.estimators else None
    rows, recommended, paths = run_ranking(
        config,
        candidates,
        sample_size=args.sample,
        estimators=estimators,
        recommend_by=args.recommend_by,
        output_dir=Path(args.output) if args.output else None,
    )
    scored = dict.fromkeys(k for r in rows for k in r.scores if not k.endswith("_seconds"))  # a failed first row has none
    shown = estimators or list(scored) or [args.recommend_by]
    shown = [e for e in shown if any(e in r.scores for r in rows)]
    print("\n" + markdown_table(rows, shown, recommended, args.recommend_by))
    print(f"\nrecommended (by {args.recommend_by}): {recommended}\nreport: {paths['rank.json'].parent}")
    failed = [r for r in rows if r.error is not None]
    if failed:
        print(f"{len(failed)} candidate(s) could not be scored; see the table.", file=sys.stderr)
