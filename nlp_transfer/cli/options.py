"""Argument types and the options that several verbs share (data files, model loading)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any, NoReturn

from nlp_transfer.errors import without_secrets


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose refusals are one line (``error: ...``, exit 2), as every other refusal is: the usage
    block argparse prints above the error is left to ``--help``."""

    def error(self, message: str) -> NoReturn:
        """Print ``error: PROG: MESSAGE; see PROG --help.`` and exit with code 2."""
        self.exit(2, f"error: {self.prog}: {without_secrets(message)}; see {self.prog} --help.\n")


def whole_number(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse ``type``: an integer of at least ``low`` and at most ``high`` (argparse turns the refusal into one
    usage error, exit 2)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be at most {high}, got {value}")
        return value

    return parse


def one_character(text: str) -> str:
    """An argparse ``type``: a field delimiter, one character."""
    if len(text) != 1:
        raise argparse.ArgumentTypeError(f"must be one character (e.g. ',' or a tab), got {text!r}")
    return text


def finite_number(low: float, high: float | None = None) -> Callable[[str], float]:
    """An argparse ``type``: a finite number in ``[low, high]`` (no upper bound when ``high`` is None)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value) or value < low or (high is not None and value > high):
            bounds = f"between {low:g} and {high:g}" if high is not None else f"a finite number of at least {low:g}"
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {text}")
        return value

    return parse


def add_data_options(parser: argparse.ArgumentParser) -> None:
    """The flags that say how to read a data file (format, columns, delimiter, header, encoding)."""
    parser.add_argument(
        "--format", choices=["csv", "tsv", "json", "jsonl", "conll"], help="file format (default: from the extension)"
    )
    parser.add_argument("--token-column", type=int, default=0, help="CoNLL: column of the token (default: 0)")
    parser.add_argument("--tag-column", type=int, default=-1, help="CoNLL: column of the tag (default: -1, the last)")
    parser.add_argument("--text-column", default="text", help="column with the text (default: text)")
    parser.add_argument("--label-column", default="label", help="column with the label (default: label)")
    parser.add_argument("--delimiter", type=one_character, help="field delimiter of csv/tsv files")
    parser.add_argument("--no-header", action="store_true", help="the file has no header; columns are 0, 1, ...")
    parser.add_argument("--columns", help="comma-separated column names for a file without header")
    parser.add_argument("--encoding", default="utf-8", help="file encoding (default: utf-8)")
    parser.add_argument("--label-separator", default="|", help="separator of multi-label labels (default: |)")


def data_config(args: argparse.Namespace, path: str) -> Any:
    """A :class:`~nlp_transfer.config.DataConfig` reading ``path`` as the data flags in ``args`` say."""
    from nlp_transfer.config import DataConfig

    header: bool | list[str] = True
    if args.columns:
        header = [c.strip() for c in args.columns.split(",")]
    elif args.no_header:
        header = False
    return DataConfig(
        train_file=path,
        format=args.format,
        text_column=args.text_column,
        label_column=args.label_column,
        delimiter=args.delimiter,
        header=header,
        encoding=args.encoding,
        label_separator=args.label_separator,
        token_column=args.token_column,
        tag_column=args.tag_column,
    )


def load_options(args: argparse.Namespace) -> dict[str, Any]:
    """How a saved run may be loaded, from ``--trust-remote-code`` and ``--allow-pickle``."""
    return {"trust_remote_code": args.trust_remote_code, "allow_pickle": args.allow_pickle}


def add_load_options(parser: argparse.ArgumentParser) -> None:
    """The flags of verbs that load a saved run: batch size, loading safety, ``--debug``."""
    parser.add_argument("--batch-size", type=whole_number(1), default=64, help="texts per batch (default: 64)")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow the model folder to run its own code")
    parser.add_argument("--allow-pickle", action="store_true", help="allow pickle-based (.bin) weights")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and library logs")


#: the data settings that evaluate, predict, check and shift take as flags: the readers' messages name config keys
FLAG_OF_KEY = {
    "data.text_column": "--text-column",
    "data.label_column": "--label-column",
    "data.encoding": "--encoding",
    "data.delimiter": "--delimiter",
    "data.format": "--format",
    "data.header": "--no-header / --columns",
    "data.label_separator": "--label-separator",
    "data.token_column": "--token-column",
    "data.tag_column": "--tag-column",
}


def name_flags(message: str) -> str:
    """``message`` with each data config key replaced by the flag that sets it on the command line."""
    for key, flag in FLAG_OF_KEY.items():
        message = message.replace(key, flag)
    return message
