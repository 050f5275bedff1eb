"""``nlp-transfer compare CONFIG``: several strategies on the same data, over sizes and seeds."""

from __future__ import annotations

import argparse

from nlp_transfer.cli.options import whole_number
from nlp_transfer.errors import UserError


def add_parser(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this verb's parser to ``verbs``."""
    compare = verbs.add_parser("compare", help="train several strategies and a from-scratch baseline on the same data")
    compare.add_argument("config", help="YAML config of the runs; 'key=value' items override its keys")
    compare.add_argument(
        "overrides", nargs="*", metavar="key=value", help="overrides for every run; STRATEGY:key=value for one strategy's runs"
    )
    compare.add_argument(
        "--strategies",
        default="full,frozen,lora",
        help="comma-separated strategies (default: full,frozen,lora); LABEL=STRATEGY adds a variant, configured by LABEL:key=value",
    )
    compare.add_argument("--train-sizes", help="comma-separated training-set sizes or 'all' (the default), e.g. 50,100,500,all")
    compare.add_argument(
        "--per-class",
        metavar="SIZES",
        help="few-shot learning curve in place of --train-sizes: comma-separated training examples per class, e.g. "
        "8,16,32,64 (data.per_class, sampled with data.sample_seed: the same rows for every strategy)",
    )
    compare.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="repeat each size with this many seeds and report mean ± std (default: 1); with --per-class they are "
        "the sample seeds data.sample_seed, +1, ... (the run's seed stays); with --train-sizes the run's seed, +1, ...",
    )
    compare.add_argument("--output", help="report folder (default: OUTPUT_DIR-compare); runs go under its runs/")
    compare.add_argument("--no-scratch", action="store_true", help="skip the from-scratch baseline")
    compare.add_argument(
        "--overwrite", action="store_true", help="replace an earlier comparison's report and runs in the output folder"
    )
    compare.add_argument(
        "--baseline",
        metavar="LABEL",
        help="flag runs scoring below this label's run (same size and seed) as negative transfer, in place of the "
        "from-scratch run; e.g. base=full,adapted=full adapted:model=ADAPTED_DIR --baseline base",
    )
    compare.add_argument(
        "--min-steps",
        type=whole_number(0),
        default=0,
        help="raise the epochs of small training sets so each run takes at least this many optimizer steps (learning "
        "curves; with --per-class the training set is the size times the number of classes)",
    )
    compare.add_argument("--debug", action="store_true", help="show tracebacks and library logs (of every run)")


def run(args: argparse.Namespace) -> None:
    """Run the verb with the parsed ``args``."""
    from nlp_transfer.compare import (
        aggregate_rows,
        aggregate_table,
        default_output_dir,
        failure_summary,
        label_config,
        markdown_table,
        parse_per_class,
        parse_strategies,
        parse_train_sizes,
        recommendations,
        run_comparison,
        several_seeds,
        split_strategy_overrides,
    )
    from nlp_transfer.config import load_config

    if args.per_class is not None and args.train_sizes is not None:
        raise UserError("--per-class and --train-sizes both choose the training rows; give one of them.")
    strategies = parse_strategies(args.strategies)
    baseline = args.baseline or "scratch"
    if args.baseline and baseline not in strategies and not (baseline == "scratch" and not args.no_scratch):
        raise UserError(f"--baseline {baseline}: not one of the compared labels ({', '.join(strategies)}). Name one of them.")
    per_class = parse_per_class(args.per_class) if args.per_class is not None else []
    train_sizes = parse_train_sizes(args.train_sizes or "all")
    common, own = split_strategy_overrides(args.overrides, list(strategies))
    from nlp_transfer.transfer.base import unread_options_allowed

    with unread_options_allowed():  # shared by every strategy: an option reaches the strategies that read it
        config = load_config(args.config, common)
    output = args.output or default_output_dir(config)
    rows = run_comparison(
        config,
        strategies,
        train_sizes,
        per_class=per_class,
        seeds=args.seeds,
        output_dir=output,
        scratch=not args.no_scratch,
        strategy_configs={  # each label's own overrides are checked against its own strategy
            name: label_config(config, strategies.get(name, "full"), extra, name) for name, extra in own.items()
        },
        min_steps=args.min_steps,
        debug=args.debug,
        baseline=baseline,
        overwrite=args.overwrite,
    )
    print("\n" + markdown_table(rows))
    aggregates = aggregate_rows(rows)
    if several_seeds(rows):
        print("\n" + aggregate_table(aggregates))
    print("\n" + "\n".join(recommendations(aggregates, rows)))
    failed = failure_summary(rows, output)
    if failed:  # every run was tried and reported; the exit code still says that some failed
        raise UserError(failed)
