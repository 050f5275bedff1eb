"""``nlp-transfer train CONFIG [key=value ...]`` and the recipe scripts, which parse their own arguments."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from nlp_transfer.cli.guard import guard, quiet_libraries
from nlp_transfer.cli.options import OneLineParser
from nlp_transfer.collector import imports_paused, mark_command_line, skip_final_collection
from nlp_transfer.errors import UserError

RECIPE_TASKS = {"sentiment": ("classification",), "classification": ("classification", "multilabel"), "ner": ("ner",)}


def train_parser(prog: str, description: str = "Fine-tune a pretrained model as CONFIG says.") -> argparse.ArgumentParser:
    """``CONFIG [key=value ...] [--resume] [--overwrite] [--debug]``: the arguments of train (and of adapt)."""
    parser = OneLineParser(prog=prog, description=description)
    parser.add_argument("config", help="YAML config (see recipes/configs/); 'key=value' items override its keys")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. training.epochs=2")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in output_dir")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing, non-empty output_dir")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and library logs")
    return parser


def parse_config_arguments(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """``CONFIG [key=value ...]`` and flags; without a CONFIG, say that one is needed (argparse also names key=value)."""
    if not any(not arg.startswith("-") for arg in argv) and not {"-h", "--help"} & set(argv):
        parser.error("give a CONFIG: a YAML file (recipes/configs/ holds examples); key=value overrides are optional")
    args = parser.parse_intermixed_args(list(argv))
    if args.resume and args.overwrite:  # --overwrite was ignored silently
        parser.error("--resume continues the run in output_dir and --overwrite replaces it; give one of them")
    return args


def run_recipe(recipe: str | None, argv: Sequence[str], prog: str = "nlp-transfer train") -> int:
    """Parse ``CONFIG [key=value ...] [--resume] [--overwrite]`` and run one training run."""
    mark_command_line(argv)  # a recipe run as a script
    args = parse_config_arguments(train_parser(prog), argv)
    quiet_libraries(args.debug)
    skip_final_collection()
    started: list[str] = []  # the run's output_dir, once its config is read

    def action() -> None:
        from nlp_transfer.config import load_config

        # checking the config's task imports torch and transformers: the collector stays paused through it
        with imports_paused("nlp_transfer.pipeline"):
            config = load_config(args.config, args.overrides)
            if recipe is not None and config.task not in RECIPE_TASKS[recipe]:
                matching = (
                    config.task if config.task in RECIPE_TASKS else next(n for n, t in RECIPE_TASKS.items() if config.task in t)
                )
                raise UserError(
                    f"{args.config}: task={config.task} does not fit the {recipe} recipe "
                    f"(it runs {', '.join(RECIPE_TASKS[recipe])}). Run it with python recipes/{matching}.py, "
                    "or nlp-transfer train."
                )
            from nlp_transfer.pipeline import run_training

        started.append(config.output_dir)
        run_training(config, resume=args.resume, overwrite=args.overwrite)

    return guard(args.debug, action, resumable=lambda: resumable_run(started, resuming=args.resume))


def resumable_run(started: Sequence[str], *, resuming: bool = False) -> bool:
    """Whether an interrupted run can continue with --resume: its output_dir holds a checkpoint, or a self-training
    round that finished or checkpointed. Stopped before its config was read, only a run given --resume can (a new one
    was told to resume, and --resume then found no folder)."""
    from pathlib import Path

    from nlp_transfer.output_dir import has_checkpoint
    from nlp_transfer.self_training import has_resumable_round

    # a self-training run's checkpoints are its rounds' (finished rounds count too)
    if not started:  # stopped before the config was read: resumable only if it was resuming already
        return resuming
    return has_checkpoint(Path(started[-1])) or has_resumable_round(Path(started[-1]))
