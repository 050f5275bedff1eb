"""``nlp-transfer predict RUN_DIR [TEXT ...]``: label texts with a saved run, one JSON line each."""

from __future__ import annotations

import argparse
import json
import sys
from collections import deque
from collections.abc import Iterator

from nlp_transfer.cli.options import add_load_options, finite_number, load_options, whole_number
from nlp_transfer.errors import UserError


def add_parser(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this verb's parser to ``verbs``."""
    predict = verbs.add_parser("predict", help="label texts with a saved run; JSON lines out")
    predict.add_argument("run_dir")
    predict.add_argument("texts", nargs="*", help="texts to label")
    predict.add_argument("--input", help="a .txt file (one text a line) or a csv/tsv/json/jsonl file")
    predict.add_argument("--text-column", default="text", help="text column of --input (default: text)")
    predict.add_argument("--encoding", default="utf-8", help="encoding of --input or standard input (default: utf-8)")
    predict.add_argument(
        "--min-score",
        type=finite_number(0.0, 1.0),
        help='mark predictions (NER: each entity) scored below this "abstain": true (nlp-transfer check reports the '
        "score that reaches a target accuracy)",
    )
    predict.add_argument(
        "--backend", choices=["torch", "onnx"], default="torch", help="torch weights, or the ONNX model of nlp-transfer export"
    )
    predict.add_argument("--export-dir", help="--backend onnx: the export folder (default: RUN_DIR/onnx)")
    predict.add_argument(
        "--chunk-size",
        type=whole_number(1),
        default=1024,
        help="texts read and predicted at a time; memory stays that of one chunk",
    )
    add_load_options(predict)


def reads_data_from_flags(args: argparse.Namespace) -> bool:
    """Always: this verb's data settings come from its flags, so its errors name the flags, not config keys."""
    return True


def run(args: argparse.Namespace) -> None:
    """Stream JSON lines: texts are read lazily (arguments, --input, stdin) and predicted a chunk at a time.

    A text read from --input or standard input carries ``line``, the line it came from (blank rows are skipped).
    """
    from nlp_transfer.inference import Progress, load_backend, non_empty, stream_predictions

    if args.export_dir and args.backend != "onnx":
        raise UserError(f"--export-dir {args.export_dir} names an ONNX export: add --backend onnx to predict with it.")
    numbered, lines = numbered_texts(args), deque()
    texts = non_empty(_noting_lines(numbered, lines))  # reads the first text only: a bad file fails before the model
    if texts is None and args.input and not args.texts:
        raise UserError(
            f"{args.input}: no text to predict: the file holds only a header or blank lines (a table's texts are read "
            f"from column '{args.text_column}'). Give a file with texts, or name their column with --text-column."
        )
    if texts is None:
        raise UserError("nothing to predict. Give texts as arguments, --input FILE, or lines on standard input.")
    model, task = load_backend(args.run_dir, args.backend, export_dir=args.export_dir, **load_options(args))
    progress = Progress(sys.stderr) if args.input else None
    for row in stream_predictions(model, task, texts, batch_size=args.batch_size, chunk_size=args.chunk_size):
        line = lines.popleft()  # rows come back one per text, in order
        if line is not None:
            row["line"] = line
        if args.min_score is not None:
            mark_abstentions(row, args.min_score)
        print(json.dumps(row, ensure_ascii=False))
        if progress is not None:
            progress.update()
    if progress is not None:
        progress.close()


def mark_abstentions(row: dict, min_score: float) -> None:
    """Add ``abstain`` (score below ``min_score``) to a classification line, or to each entity of an NER line."""
    if "entities" in row:
        for entity in row["entities"]:
            entity["abstain"] = entity["score"] < min_score
    elif "score" in row:
        row["abstain"] = row["score"] < min_score


def numbered_texts(args: argparse.Namespace) -> Iterator[tuple[int | None, str]]:
    """``(line, text)`` of the texts to predict: arguments (no line), then --input's or standard input's."""
    from nlp_transfer.inference import iter_numbered_texts

    yield from ((None, text) for text in args.texts)
    if args.input:
        yield from iter_numbered_texts(args.input, text_column=args.text_column, encoding=args.encoding)
    elif not args.texts and not sys.stdin.isatty():
        yield from stdin_texts(args.encoding)


def _noting_lines(numbered: Iterator[tuple[int | None, str]], lines: deque[int | None]) -> Iterator[str]:
    """The texts of ``numbered``, each one's line appended to ``lines`` as it is read."""
    for line, text in numbered:
        lines.append(line)
        yield text


def stdin_texts(encoding: str) -> Iterator[tuple[int, str]]:
    """``(line, text)`` of the non-blank lines of standard input, decoded with ``encoding``; an undecodable line is one
    error naming it."""
    for number, raw in enumerate(sys.stdin.buffer, start=1):
        try:
            line = raw.decode(encoding).strip()
            if number == 1:  # a UTF-8 byte-order mark, dropped as it is from a file given by --input
                line = line.removeprefix("\ufeff").strip()
        except UnicodeDecodeError as err:
            raise UserError(
                f"standard input, line {number}: byte 0x{raw[err.start]:02x} cannot be decoded as {encoding}. "
                "Pass the input's encoding with --encoding (e.g. --encoding latin-1)."
            ) from None
        if "\x00" in line:  # as a file with NUL bytes is refused (UTF-16 without --encoding, or a binary file)
            raise UserError(
                f"standard input, line {number}: it holds NUL bytes, so it looks like a binary or UTF-16 stream. "
                "Pass the input's encoding with --encoding, or give text."
            )
        if line:
            yield number, line
