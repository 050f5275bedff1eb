"""Unlabelled texts from a file: one a line, or a column of a csv/tsv/json/jsonl file; whole or read lazily."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from itertools import chain, islice
from pathlib import Path
from typing import Any

from nlp_transfer.errors import DataError, UserError

#: bytes read from the start of a file to tell text from binary
SNIFF_BYTES = 8192


def check_not_binary(path: str | Path, encoding: str = "utf-8") -> None:
    """Refuse a file whose first bytes hold a NUL byte (a binary file), unless ``encoding`` is UTF-16 or UTF-32."""
    with Path(path).open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
    if b"\x00" in head and not encoding.lower().replace("-", "").replace("_", "").startswith(("utf16", "utf32")):
        raise DataError(
            f"{path}: looks like a binary file (it has NUL bytes), not text. Give a text file: one text a line, or "
            "csv/tsv/json/jsonl (UTF-16 text: re-save it as UTF-8, or pass its encoding)."
        )


def read_texts(path: str, *, text_column: str = "text", encoding: str = "utf-8") -> list[str]:
    """Texts to predict: one per line for .txt, or a column of a csv/tsv/json/jsonl file.

    Blank lines, blank cells and JSON nulls are skipped; a JSON list or object where a text belongs is an error
    naming its line.
    """
    from nlp_transfer.data.readers import check_data_file, infer_format, read_records, read_text, text_lines

    check_data_file(path)
    check_not_binary(path, encoding)
    if Path(path).suffix.lower() in (".txt", ""):
        return [line.strip() for line in text_lines(read_text(path, encoding)) if line.strip()]
    records = read_records(path, format=infer_format(path, None), delimiter=None, header=True, encoding=encoding)
    return [text for _, text in record_texts(path, records, text_column)]


def record_texts(path: str, records: Sequence[Any], text_column: str) -> Iterator[tuple[int, str]]:
    """``(line, text)`` of the ``text_column`` of read records, blank cells and JSON nulls skipped."""
    if text_column not in records[0].fields:
        raise _missing_column(path, text_column, list(records[0].fields))
    for record in records:
        if text := cell_text(path, record.line, record.fields.get(text_column)):
            yield record.line, text


def cell_text(path: str, line: int, value: Any) -> str:
    """A table cell as a text: "" for a blank cell or a JSON null (skipped by the readers), an error for a list or object."""
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        raise DataError(f"{path}:{line}: the text is a JSON {type(value).__name__}, not a string. Give one string a row.")
    if isinstance(value, (bool, int, float)):  # training refuses them: predict and adapt read them as "42" or "True"
        raise DataError(f"{path}:{line}: the text is the JSON value {json.dumps(value)}, not a string. Write it in quotes.")
    text = str(value)
    return text if text.strip() else ""


def iter_texts(path: str, *, text_column: str = "text", encoding: str = "utf-8") -> Iterator[str]:
    """Texts of ``path`` read lazily, as :func:`read_texts` reads them: one per line, or a column of a table."""
    return (text for _, text in iter_numbered_texts(path, text_column=text_column, encoding=encoding))


def iter_numbered_texts(path: str, *, text_column: str = "text", encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    """``(line, text)`` of each text of ``path``, read lazily: the line tells a text's row when blank ones are skipped.

    .txt, csv, tsv and jsonl files are read a line at a time; a .json array is parsed whole (JSON cannot be
    read in pieces), so give a large file as jsonl. A bad row, or a byte the encoding cannot decode, is a
    :class:`DataError` naming its line; a file with NUL bytes near its start is refused as binary. A byte-order
    mark at the start is dropped in every format.
    """
    from nlp_transfer.data.readers import check_data_file, infer_format, read_records

    check_data_file(path)
    check_not_binary(path, encoding)
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in (".txt", ""):
        format = infer_format(path, None)
        if format == "json":
            yield from record_texts(
                path, read_records(path, format="json", delimiter=None, header=True, encoding=encoding), text_column
            )
            return
        if format not in ("csv", "tsv", "jsonl"):
            raise DataError(f"{path}: format '{format}' holds no texts to predict. Give a .txt, csv, tsv, json or jsonl file.")
    try:
        with open(file, encoding=encoding, newline="" if suffix in (".csv", ".tsv") else None) as handle:
            lines = _without_bom(handle)
            if suffix in (".txt", ""):
                yield from ((number, line.strip()) for number, line in enumerate(lines, start=1) if line.strip())
            elif suffix in (".jsonl", ".ndjson"):
                yield from _jsonl_texts(path, lines, text_column)
            else:
                delimiter = "\t" if suffix == ".tsv" else ","
                yield from _table_texts(path, lines, delimiter, text_column, _quoting(path, delimiter, encoding))
    except LookupError:
        raise DataError(f"{path}: unknown encoding '{encoding}'. Pass --encoding, e.g. utf-8 or latin-1.") from None
    except UnicodeDecodeError:
        raise _undecodable(path, encoding) from None


def _undecodable(path: str, encoding: str) -> DataError:
    """The error for a file that does not decode as ``encoding``, naming the line of its first bad byte as training
    does (a text-mode read reports a position inside its buffer, not the file): the file is decoded again a line at
    a time, so a large file is not held in memory."""
    import codecs
    import itertools

    decoder = codecs.getincrementaldecoder(encoding)()
    with open(path, "rb") as handle:
        for number, raw in enumerate(itertools.chain(handle, [b""]), start=1):  # b"": the end (a character cut short)
            try:
                decoder.decode(raw, final=not raw)
            except UnicodeDecodeError as err:
                bad = err.object[err.start : err.start + 1].hex()
                return DataError(
                    f"{path}:{number - (not raw)}: byte 0x{bad} cannot be decoded as {encoding}. "
                    "Pass --encoding with the file's encoding (e.g. --encoding latin-1), or re-save it as UTF-8."
                )
    return DataError(f"{path}: the file does not decode as {encoding}. Pass --encoding with the file's encoding.")


def _without_bom(handle: Iterable[str]) -> Iterator[str]:
    """The lines of ``handle``, a UTF-8 byte-order mark at the start of the first one dropped."""
    iterator = iter(handle)
    for first in iterator:
        yield first.removeprefix("\ufeff")
        yield from iterator


def _missing_column(path: str, text_column: str, columns: Sequence[str], line: int | None = None) -> UserError:
    if line is not None:  # one row lacks the key the others have: the row is at fault, not --text-column
        return UserError(f"{path}:{line}: no key '{text_column}' in this row (its keys: {list(columns)}). Fix the row.")
    return UserError(f"{path}: no column '{text_column}'; the columns are {list(columns)}. Pass --text-column.")


def _quoting(path: str, delimiter: str, encoding: str) -> int:
    """How to read quotes in ``path``, as training reads them (``readers.read_delimited``): quoted fields, or for a
    TSV that does not parse so, quotes as plain characters (GLUE-style TSVs, where a text may open a quote it never
    closes, or a quoted field swallows a tab so the row's fields do not match the header's). A TSV is parsed once
    to decide, a row at a time; a csv is always read quoted."""
    import csv

    from nlp_transfer.data.readers import CSV_FIELD_SIZE_LIMIT

    if csv.field_size_limit() < CSV_FIELD_SIZE_LIMIT:  # a long review is one field, as it is when training reads it
        csv.field_size_limit(CSV_FIELD_SIZE_LIMIT)
    if delimiter != "\t":
        return csv.QUOTE_MINIMAL
    with open(path, encoding=encoding, newline="") as handle:
        try:
            rows = csv.reader(handle, delimiter=delimiter, strict=True)
            width = len(next(rows, []))
            if any(row and len(row) != width for row in rows):  # a quote that swallowed a tab: training rereads too
                return csv.QUOTE_NONE
        except csv.Error:
            return csv.QUOTE_NONE
    return csv.QUOTE_MINIMAL


def _table_texts(path: str, handle: Any, delimiter: str, text_column: str, quoting: int) -> Iterator[tuple[int, str]]:
    """``(line, text)`` of the ``text_column`` of a csv/tsv file with a header, a row at a time; a quote that never
    closes is an error naming the line it opened on (it swallowed every row after it into one text)."""
    import csv

    from nlp_transfer.data.readers import check_header

    reader = csv.reader(handle, delimiter=delimiter, quoting=quoting, strict=True)
    start = 1  # the line a row starts on: a quoted cell may run over several
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                break
            start = reader.line_num + 1
        else:
            raise DataError(f"{path}: the file is empty. Give a file with data rows.")
        names = [cell.strip().removeprefix("\ufeff") for cell in row]
        check_header(path, names, start)
        if text_column not in names:
            raise _missing_column(path, text_column, names)
        index = names.index(text_column)
        start = reader.line_num + 1
        for row in reader:
            if len(row) >= 2 or "".join(row).strip():  # a blank line is skipped; a row of empty fields (",,") is a row
                if len(row) != len(names):  # as training refuses it: an unquoted delimiter cut the text
                    raise DataError(
                        f"{path}:{start}: expected {len(names)} fields separated by {delimiter!r}, found {len(row)}. "
                        "Quote fields that contain the delimiter, or give the texts as a .txt file, one a line."
                    )
                if text := cell_text(path, start, row[index]):
                    yield start, text
            start = reader.line_num + 1
    except csv.Error as err:
        if "end of data" in str(err):
            raise DataError(
                f"{path}:{start}: a quote opened in this row never closes, so it would swallow the rows after it. "
                'Close the quote, or double it ("") inside a quoted field.'
            ) from None
        raise DataError(f"{path}:{reader.line_num}: malformed row ({err}).") from None


def _jsonl_texts(path: str, handle: Any, text_column: str) -> Iterator[tuple[int, str]]:
    """``(line, text)`` of the ``text_column`` of each JSON object of a jsonl file, a line at a time."""
    from nlp_transfer.data.readers import RepeatedKey, repeated_key_error, unique_keys

    first = True
    for number, line in enumerate(handle, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line, object_pairs_hook=unique_keys)
        except RepeatedKey as err:
            raise repeated_key_error(f"{path}:{number}", err) from None
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{number}: invalid JSON at column {err.colno}: {err.msg}.") from None
        if not isinstance(obj, dict):
            raise DataError(f"{path}:{number}: expected a JSON object per line, found {type(obj).__name__}.")
        if text_column not in obj:  # the first object names the columns; a later one lacking the key is a bad row
            raise _missing_column(path, text_column, list(obj), None if first else number)
        first = False
        if text := cell_text(path, number, obj[text_column]):
            yield number, text


def chunked(items: Iterable[str], size: int) -> Iterator[list[str]]:
    """Lists of up to ``size`` consecutive items, read from ``items`` only as each list is needed."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def non_empty(texts: Iterable[str]) -> Iterator[str] | None:
    """``texts`` as an iterator, or None when it yields nothing (reads only the first text to tell)."""
    iterator = iter(texts)
    for first in iterator:
        return chain([first], iterator)
    return None
