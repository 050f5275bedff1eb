"""The unlabelled texts of an adaptation run: read, checked, and split into training and held-out lines.

``data.train_file`` names one file or several, separated by commas. Each file is read as
``data.format`` says, or, without it, by its extension: ``.csv .tsv .json .jsonl .ndjson`` are tables
whose ``data.text_column`` holds the texts, ``.conll`` files give one text per sentence (its tokens
joined by spaces), and any other file is plain text with one text a line (blank lines skipped).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from nlp_transfer.config import DataConfig
from nlp_transfer.data.conll import read_conll
from nlp_transfer.data.readers import read_records, read_text, text_lines
from nlp_transfer.data.texts import cell_text, check_not_binary
from nlp_transfer.errors import DataError

TABLE_EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}


@dataclass
class UnlabelledTexts:
    """Training and held-out texts, the files they came from, and how each file was read."""

    train: list[str]
    heldout: list[str]
    files: list[str]
    formats: dict[str, str] = field(default_factory=dict)


def text_files(data: DataConfig) -> list[str]:
    """The files ``data.train_file`` names (a comma-separated list)."""
    files = [part.strip() for part in (data.train_file or "").split(",") if part.strip()]
    if not files:
        raise DataError("data.train_file names no file. Set data.train_file=TEXTS.txt (several: a,b,c).")
    return files


def file_format(path: str, data: DataConfig) -> str:
    """How ``path`` is read: ``data.format`` when set, else its extension (``lines`` for plain text)."""
    if data.format == "hub":
        raise DataError(f"{path}: data.format=hub is not read by adapt. Give local text files (data.format=null).")
    if data.format:
        return data.format
    suffix = Path(path).suffix.lower()
    return TABLE_EXTENSIONS.get(suffix, "conll" if suffix == ".conll" else "lines")


def read_file_texts(path: str, data: DataConfig) -> tuple[list[str], str]:
    """The non-blank texts of one file and the format it was read as."""
    if not Path(path).is_file():
        read_text(path, data.encoding)  # the readers' own message for a missing path or a folder
    check_not_binary(path, data.encoding)
    kind = file_format(path, data)
    if kind == "lines":
        texts = [line.strip() for line in text_lines(read_text(path, data.encoding))]
    elif kind == "conll":
        tagged = read_conll(path, token_column=data.token_column, tag_column=data.tag_column, encoding=data.encoding)
        texts = [" ".join(sentence.tokens) for sentence in tagged.sentences]
    else:
        texts = table_texts(path, kind, data)
    texts = [text for text in texts if text.strip()]
    if not texts:
        raise DataError(f"{path}: no text in the file (only blank lines or empty {data.text_column!r} cells). Give text.")
    return texts, kind


def table_texts(path: str, kind: str, data: DataConfig) -> list[str]:
    """The ``data.text_column`` of every row of a csv/tsv/json/jsonl file (label columns are not needed)."""
    records = read_records(path, format=kind, delimiter=data.delimiter, header=data.header, encoding=data.encoding)
    texts = []
    for record in records:
        if data.text_column not in record.fields:
            columns = ", ".join(map(str, record.fields)) or "none"
            raise DataError(
                f"{path}:{record.line}: no column {data.text_column!r} (columns: {columns}). "
                "Set data.text_column to the column that holds the text."
            )
        texts.append(cell_text(path, record.line, record.fields[data.text_column]))  # a JSON list or object refused
    return texts


def read_texts(data: DataConfig, seed: int) -> UnlabelledTexts:
    """Every file's texts in order, cut to ``data.max_train_samples``, with a seeded held-out share.

    ``data.validation_split`` of the texts (at least one, at most ``data.max_eval_samples``) are held out
    with ``seed`` to score the masked-LM loss before and after; the rest train, in file order.
    """
    texts: list[str] = []
    formats: dict[str, str] = {}
    files = text_files(data)
    for path in files:
        found, formats[path] = read_file_texts(path, data)
        texts.extend(found)
    texts = texts[: data.max_train_samples]
    if len(texts) < 2:
        raise DataError(f"{files[0]}: only {len(texts)} text; adapt needs at least 2 (one is held out). Give more text.")
    size = max(1, round(data.validation_split * len(texts)))
    size = min(size, data.max_eval_samples or size, len(texts) - 1)
    chosen = set(random.Random(seed).sample(range(len(texts)), size))
    heldout = [text for i, text in enumerate(texts) if i in chosen]
    train = [text for i, text in enumerate(texts) if i not in chosen]
    return UnlabelledTexts(train=train, heldout=heldout, files=files, formats=formats)
