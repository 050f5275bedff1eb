"""Readers for tabular text files: csv, tsv, json and jsonl.

Each reader returns ``Record``s: the row's fields plus the line it started on, so that every later
check can name ``file:line``. Bytes are decoded up front, so a wrong encoding is reported with the
line of the first undecodable byte.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlp_transfer.errors import DataError

EXTENSION_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".conll": "conll",
    ".txt": "conll",
}


# csv's default field limit (131,072 characters) refuses long documents; the file is in memory anyway.
CSV_FIELD_SIZE_LIMIT = min(sys.maxsize, 2**31 - 1)  # a C long, also on Windows


@dataclass
class Record:
    """One row of a data file, with the 1-based line it starts on."""

    line: int
    fields: dict[str, Any]


def infer_format(path: str, format: str | None) -> str:
    """The given ``format``, or the one the file extension implies."""
    if format:
        return format
    if Path(path).is_dir():
        check_data_file(path)
    suffix = Path(path).suffix.lower()
    if suffix not in EXTENSION_FORMATS:
        raise DataError(
            f"{path}: cannot tell the format from the extension '{suffix}'. "
            "Set data.format to csv, tsv, json, jsonl, conll or hub."
        )
    return EXTENSION_FORMATS[suffix]


def check_data_file(path: str | Path) -> None:
    """Refuse a path that does not exist, or that is a folder, with a message that says which."""
    file = Path(path)
    if file.is_dir():
        raise DataError(f"{path}: a folder, not a data file. Give the path of a file.")
    if not file.is_file():
        raise DataError(f"{path}: no such file. Check the path (relative paths start from the current directory).")


def read_text(path: str, encoding: str) -> str:
    """The whole file decoded, or a :class:`DataError` naming the line of the first bad byte."""
    check_data_file(path)
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":  # no text encoding reads a compressed file
        raise DataError(f"{path}: a gzip-compressed file. Decompress it first (gunzip -k {path}) and give the result.")
    try:
        text = raw.decode(encoding)
    except LookupError:
        raise DataError(f"{path}: unknown encoding '{encoding}'. Set data.encoding to e.g. utf-8 or latin-1.") from None
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        bad = raw[err.start : err.start + 1].hex()
        raise DataError(
            f"{path}:{line}: byte 0x{bad} cannot be decoded as {encoding}. "
            "Set data.encoding to the file's encoding (e.g. data.encoding=latin-1) or re-save it as UTF-8."
        ) from None
    if not text.strip():
        raise DataError(f"{path}: the file is empty. Give a file with data rows.")
    return text.removeprefix("\ufeff")


def read_delimited(path: str, *, delimiter: str, header: bool | list[str], encoding: str) -> list[Record]:
    """Rows of a csv/tsv file as records; ``header`` is True, False (columns 0, 1, ...) or the names.

    Fields may be quoted (``"..."``, with tabs, commas or line breaks inside) in both formats, as pandas reads
    them. A TSV that fails to parse so is read again with quotes as plain characters, the convention of GLUE-style
    TSVs, where a text may open with a quote that never closes; if that fails too, the first error is reported.
    """
    text = read_text(path, encoding)
    if csv.field_size_limit() < CSV_FIELD_SIZE_LIMIT:
        csv.field_size_limit(CSV_FIELD_SIZE_LIMIT)
    try:
        records = _parse_delimited(path, text, delimiter, header, csv.QUOTE_MINIMAL)
    except DataError as quoted_error:
        if delimiter != "\t":
            raise
        try:
            records = _parse_delimited(path, text, delimiter, header, csv.QUOTE_NONE)
        except DataError:
            raise quoted_error from None
    if not records:
        raise DataError(f"{path}: no data rows (only a header). Give a file with data rows.")
    return records


def _parse_delimited(path: str, text: str, delimiter: str, header: bool | list[str], quoting: int) -> list[Record]:
    """The records of ``text`` read with one quoting convention; a malformed row is a DataError naming its line."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting, strict=True)
    records: list[Record] = []
    names: list[str] | None = list(header) if isinstance(header, list) else None
    line = 1
    try:
        for row in reader:
            start, line = line, reader.line_num + 1
            if len(row) < 2 and not "".join(row).strip():  # a blank line; a row of empty fields (",,") is a row
                continue
            if isinstance(header, list) and not records and [cell.strip() for cell in row] == names:
                raise DataError(
                    f"{path}:{start}: this row repeats the column names data.header gives, so the file has a header "
                    "row of its own: set data.header=true (or remove the row)."
                )
            if names is None:
                if header is True:
                    names = [cell.strip() for cell in row]
                    check_header(path, names, start)
                    continue
                names = [str(i) for i in range(len(row))]
            if len(row) != len(names):
                raise DataError(
                    f"{path}:{start}: expected {len(names)} fields separated by {delimiter!r}, found {len(row)}. "
                    "Quote fields that contain the delimiter, or set data.delimiter / data.header."
                )
            records.append(Record(start, dict(zip(names, row, strict=True))))
    except csv.Error as err:
        kind = "TSV" if delimiter == "\t" else "CSV"
        if "end of data" in str(err):  # a quote that never closes swallows the rest of the file: name where it opened
            raise DataError(
                f"{path}:{line}: a quoted field that starts on this row never closes (the file ends inside it). "
                'Close the quote, or write a quote inside a quoted field as two ("").'
            ) from None
        raise DataError(
            f"{path}:{reader.line_num}: malformed {kind} ({err}). "
            'Write a quote inside a quoted field as two (""), or check data.delimiter.'
        ) from None
    return records


def check_header(path: str, names: list[str], line: int = 1) -> None:
    """Refuse a header (on ``line``) that names a column twice: which of the two a setting meant cannot be told."""
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise DataError(f"{path}:{line}: duplicate column name(s) {sorted(duplicates)} in the header. Rename them.")


def text_lines(text: str) -> list[str]:
    """``text`` cut at its line breaks as a file read in text mode cuts it (``str.splitlines`` also cuts at U+2028,
    U+2029, U+0085 and form feeds, which a line's text may hold)."""
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


class RepeatedKey(ValueError):
    """A JSON object names one key twice (``json`` keeps the last silently)."""


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` for ``json.loads``: the object, or :class:`RepeatedKey` naming a key given twice."""
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise RepeatedKey(key)
        seen.add(key)
    return dict(pairs)


def repeated_key_error(where: str, err: RepeatedKey) -> DataError:
    """The one-line error of a key given twice in one object, at ``where`` (``path:line`` or ``path``)."""
    return DataError(f"{where}: an object gives the key {err.args[0]!r} twice (JSON keeps only the last); keep one.")


def read_jsonl(path: str, *, encoding: str) -> list[Record]:
    """One JSON object per line; blank lines are skipped. Lines end at a line break (\\n, \\r\\n or \\r) only: a JSON
    string may hold U+2028 or U+0085 unescaped (``json.dumps(..., ensure_ascii=False)`` writes them so)."""
    text = read_text(path, encoding)
    records = []
    for number, line in enumerate(text_lines(text), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line, object_pairs_hook=unique_keys)
        except RepeatedKey as err:
            raise repeated_key_error(f"{path}:{number}", err) from None
        except json.JSONDecodeError as err:
            pretty = (
                " The file looks like one JSON document: name it .json or set data.format=json."
                if line.strip() in ("[", "{")
                else ""
            )
            raise DataError(
                f"{path}:{number}: invalid JSON at column {err.colno}: {err.msg}. Each line must be one JSON object.{pretty}"
            ) from None
        if not isinstance(obj, dict):
            array = (
                " A JSON array of objects is a .json file: name it so, or set data.format=json." if isinstance(obj, list) else ""
            )
            raise DataError(f"{path}:{number}: expected a JSON object per line, found {type(obj).__name__}.{array}")
        records.append(Record(number, obj))
    return records


def read_json(path: str, *, encoding: str) -> list[Record]:
    """A JSON array of objects, or an object holding one such array (e.g. ``{"data": [...]}``)."""
    text = read_text(path, encoding)
    try:
        obj = json.loads(text, object_pairs_hook=unique_keys)
    except RepeatedKey as err:
        raise repeated_key_error(path, err) from None
    except json.JSONDecodeError as err:
        if err.lineno > 1 and "Extra data" in err.msg:
            raise DataError(f"{path}:{err.lineno}: several JSON values; for one object per line use data.format=jsonl.") from None
        raise DataError(f"{path}:{err.lineno}: invalid JSON at column {err.colno}: {err.msg}.") from None
    key = None
    if isinstance(obj, dict):  # {"data": [...]}; a single row ({"text": ..., "labels": [...]}) is not a wrapper
        arrays = [(k, v) for k, v in obj.items() if isinstance(v, list) and all(isinstance(item, dict) for item in v)]
        if len(arrays) != 1:
            raise DataError(
                f"{path}: expected a JSON array of objects, or an object holding exactly one array of objects "
                f'({{"data": [...]}}); found one object with keys {list(obj)[:6]}. Write the rows as [{{...}}, {{...}}], '
                "or one object per line in a .jsonl file."
            )
        key, obj = arrays[0]
    if not isinstance(obj, list) or not obj:
        raise DataError(f"{path}: expected a non-empty JSON array of objects.")
    line_starts = _object_lines(text, len(obj), key)
    records = []
    for index, item in enumerate(obj):
        line = line_starts[index] if index < len(line_starts) else 1
        if not isinstance(item, dict):
            raise DataError(f"{path}:{line}: item {index} is a {type(item).__name__}, expected an object.")
        records.append(Record(line, item))
    return records


def _object_lines(text: str, count: int, key: str | None = None) -> list[int]:
    """Best-effort line numbers of the rows array's objects (for messages only): the top-level array, or the value of
    ``key`` in a top-level object (``{"meta": {"tags": [...]}, "data": [...]}``: not the first ``[`` of the text)."""
    decoder = json.JSONDecoder()
    start = _array_start(text, key)
    lines: list[int] = []
    position = start + 1
    counted, line = 0, 1  # lines are counted on from the previous object, not from the start each time
    while len(lines) < count and position > 0:
        while position < len(text) and text[position] in " \t\r\n,":
            position += 1
        if position >= len(text) or text[position] == "]":
            break
        line += text.count("\n", counted, position)
        counted = position
        lines.append(line)
        try:
            _, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError:
            break
    return lines


def _skip_blanks(text: str, position: int) -> int:
    """The first position at or after ``position`` that is not JSON whitespace."""
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


def _array_start(text: str, key: str | None) -> int:
    """Where the rows array opens: the top-level ``[``, or that of the member ``key`` of a top-level object; -1 if unseen."""
    decoder = json.JSONDecoder()
    position = _skip_blanks(text, 0)
    if key is None:
        return position if text.startswith("[", position) else -1
    position = _skip_blanks(text, position + 1)  # past the object's "{"
    try:
        while text.startswith('"', position):
            name, position = decoder.raw_decode(text, position)
            position = _skip_blanks(text, _skip_blanks(text, position) + 1)  # past the ":"
            if name == key:
                return position
            _, position = decoder.raw_decode(text, position)
            position = _skip_blanks(text, position)
            if not text.startswith(",", position):
                break
            position = _skip_blanks(text, position + 1)
    except json.JSONDecodeError:
        pass
    return -1


def read_records(path: str, *, format: str, delimiter: str | None, header: bool | list[str], encoding: str) -> list[Record]:
    """Read a csv, tsv, json or jsonl file into records."""
    if format in ("csv", "tsv"):
        delimiter = delimiter or ("\t" if format == "tsv" else ",")
        return read_delimited(path, delimiter=delimiter, header=header, encoding=encoding)
    if format == "jsonl":
        return read_jsonl(path, encoding=encoding)
    if format == "json":
        return read_json(path, encoding=encoding)
    raise DataError(f"{path}: format '{format}' is not a table format. Use csv, tsv, json or jsonl for this task.")
