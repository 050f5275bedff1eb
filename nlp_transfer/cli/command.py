"""The ``nlp-transfer`` console script: which verb runs, parsed how.

``train`` and ``adapt`` parse their own arguments (:mod:`nlp_transfer.cli.train`, :mod:`nlp_transfer.adapt.command`);
every other verb is a module of this package with ``add_parser(verbs)`` and ``run(args)``, listed in :data:`VERBS`.
A verb whose data settings come from its flags also has ``reads_data_from_flags(args)``: its errors then name the
flag (``--text-column``) in place of the config key (``data.text_column``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from types import ModuleType

from nlp_transfer.cli import check, compare, evaluate, export, predict, push, rank, settings, shift
from nlp_transfer.cli.guard import guard, quiet_libraries
from nlp_transfer.cli.options import OneLineParser, name_flags
from nlp_transfer.cli.train import run_recipe
from nlp_transfer.collector import mark_command_line, skip_final_collection

#: the verbs parsed here, in the order ``--help`` lists them, and the module that parses and runs each
VERBS: dict[str, ModuleType] = {
    "evaluate": evaluate,
    "predict": predict,
    "config": settings,
    "push": push,
    "compare": compare,
    "rank": rank,
    "check": check,
    "shift": shift,
    "export": export,
}


def build_parser() -> argparse.ArgumentParser:
    """The parser of every verb but ``train`` and ``adapt`` (listed here for the help; they parse their own)."""
    parser = OneLineParser(prog="nlp-transfer", description="Transfer learning for NLP on Hugging Face models.")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="{" + ",".join(["train", "adapt", *VERBS]) + "}")
    verbs.add_parser("train", help="fine-tune as a YAML config says: nlp-transfer train CONFIG [key=value ...]")
    verbs.add_parser("adapt", help="masked-LM pretraining on unlabelled text: nlp-transfer adapt CONFIG [key=value ...]")
    for module in VERBS.values():
        module.add_parser(verbs)
    return parser


def dispatch(args: argparse.Namespace) -> int:
    """Run the verb ``args`` names; returns the exit code."""
    quiet_libraries(args.debug)
    skip_final_collection()
    module = VERBS[args.verb]
    copies, rank = launched_copies()
    if copies > 1:  # accelerate launch / torchrun started this verb once per process: one of them does the work
        if args.verb == "compare":  # each arm is a process of its own: launched copies would train every arm twice
            if rank == 0:
                print(f"error: compare starts a process per arm itself; {LAUNCH_FIX}", file=sys.stderr)
            return 2
        if rank > 0:
            return 0
        for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):  # the others have gone: a process group
            os.environ.pop(name, None)  # joined now (rank's Accelerate state) would wait for them for ever
        print(f"note: {args.verb} runs in one process; the {copies - 1} other(s) launched with it did nothing.", file=sys.stderr)
    takes_flags = getattr(module, "reads_data_from_flags", lambda _: False)(args)
    return guard(args.debug, lambda: module.run(args), name_flags if takes_flags else str)


LAUNCH_FIX = "run it without accelerate launch or torchrun."


def launched_copies() -> tuple[int, int]:
    """(how many copies of this command ``accelerate launch`` or ``torchrun`` started, this one's rank): (1, 0) alone."""
    try:
        return max(int(os.environ.get("WORLD_SIZE") or 1), 1), int(os.environ.get("RANK") or 0)
    except ValueError:  # not set by a launcher
        return 1, 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nlp-transfer`` console script."""
    mark_command_line(argv)
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "train":
        return run_recipe(None, argv[1:])
    if argv and argv[0] == "adapt":  # like train: CONFIG, overrides and flags in any order
        from nlp_transfer.adapt.command import run_adapt

        return run_adapt(argv[1:])
    parser = build_parser()
    if not argv:  # the bare command: what it can do, not an error about what is missing
        parser.print_help(sys.stderr)
        return 2
    verb = verb_parser(parser, argv[0])
    if verb is None:  # no verb, an unknown one, or --help: the top-level parser says what is wrong
        return dispatch(parser.parse_args(argv))
    args = verb.parse_intermixed_args(argv[1:])  # flags, texts and key=value overrides in any order
    args.verb = argv[0]
    return dispatch(args)


def verb_parser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser | None:
    """The sub-parser of verb ``name`` in ``parser`` (built by :func:`build_parser`), or None for no such verb."""
    if name not in VERBS:  # train and adapt parse their own arguments; anything else is not a verb
        return None
    verbs = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    return verbs.choices[name]
