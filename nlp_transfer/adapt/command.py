"""``nlp-transfer adapt CONFIG [key=value ...] [--resume] [--overwrite]`` and ``recipes/adapt.py``.

Import-light: the config is loaded and checked before torch and transformers are imported.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def adapt_parser(prog: str) -> argparse.ArgumentParser:
    """The arguments of the adapt verb (the same as train's)."""
    from nlp_transfer.cli.train import train_parser

    return train_parser(
        prog,
        "Continued pretraining: masked-LM training of CONFIG's model on the unlabelled texts of data.train_file "
        "(one text a line, or data.text_column of csv/tsv/json/jsonl; several files: a,b,c).",
    )


def run_adapt(argv: Sequence[str], prog: str = "nlp-transfer adapt") -> int:
    """Parse the arguments and run one adaptation; returns the exit code (2 for bad input)."""
    from nlp_transfer.cli.guard import guard, quiet_libraries
    from nlp_transfer.cli.train import parse_config_arguments, resumable_run

    args = parse_config_arguments(adapt_parser(prog), argv)
    quiet_libraries(args.debug)

    started: list[str] = []  # the run's output_dir, once its config is read

    def action() -> None:
        from nlp_transfer.config import load_config
        from nlp_transfer.config.checks import checks_for_adapt

        with checks_for_adapt():
            config = load_config(args.config, args.overrides)
        from nlp_transfer.adapt.run import run_adaptation  # torch and transformers load only for a valid config

        started.append(config.output_dir)
        run_adaptation(config, resume=args.resume, overwrite=args.overwrite)

    return guard(args.debug, action, resumable=lambda: resumable_run(started, resuming=args.resume))
