"""Text classification rows: a text column and a label column, read from files or a Hub dataset.

:class:`TextRows` is the row reader :func:`~nlp_transfer.data.loading.load_splits` calls for text classification
(columns ``text``, ``label``, ``line``; labels stay strings, the task turns them into ids);
:func:`load_text_classification_data` adds what only this task has: augmented copies, rows written from the label
names and pseudo-labelled rows, all to the training split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import datasets

from nlp_transfer.config import DataConfig
from nlp_transfer.data.augment import augment_training_split
from nlp_transfer.data.hygiene import warn_about_shared_texts
from nlp_transfer.data.label_examples import add_label_examples
from nlp_transfer.data.labels import (
    check_known_labels,
    choose_label_names,
    map_integer_label_column,
    parse_multi_label,
    parse_single_label,
)
from nlp_transfer.data.loading import LoadedSplits, class_names, load_splits, require_columns, row_columns
from nlp_transfer.data.readers import Record, infer_format, read_records
from nlp_transfer.errors import DataError


@dataclass
class TextRow:
    """One text, its label (a list of labels for multi-label) and the line it came from."""

    text: str
    label: Any
    line: int


class TextRows:
    """Rows of text classification: records with a text column and a label column."""

    def __init__(self, config: DataConfig, multi_label: bool) -> None:
        self.config, self.multi_label = config, multi_label
        label = datasets.Sequence(datasets.Value("string")) if multi_label else datasets.Value("string")
        self.features = datasets.Features({"text": datasets.Value("string"), "label": label, "line": datasets.Value("int64")})

    def read_file(self, path: str) -> list[TextRow]:
        """The checked rows of a csv/tsv/json/jsonl file."""
        config = self.config
        fmt = infer_format(path, config.format)
        if fmt == "conll":
            raise DataError(f"{path}: CoNLL files hold token tags, not text labels. Use task=ner, or csv/tsv/json/jsonl.")
        records = read_records(path, format=fmt, delimiter=config.delimiter, header=config.header, encoding=config.encoding)
        wanted = {"data.text_column": config.text_column, "data.label_column": config.label_column}
        require_columns(path, list(records[0].fields), wanted, config.header)
        return self._rows(records, path)

    def read_hub(self, part: datasets.Dataset, where: str) -> list[TextRow]:
        """The checked rows of a Hub split; ClassLabel ids become their names."""
        text, label = self.config.text_column, self.config.label_column
        require_columns(where, part.column_names, {"data.text_column": text, "data.label_column": label})
        names = class_names(part.features[label])
        records = [Record(i + 1, {text: row[text], label: _hub_label(row[label], names)}) for i, row in enumerate(part)]
        return self._rows(records, where)

    def check_labels(self, splits: dict[str, list[TextRow]], sources: dict[str, str]) -> list[str]:
        """Label names from data.labels (integer labels index them) or the training split; other splits must fit."""
        if self.config.labels:
            for rows in splits.values():
                for row, label in zip(rows, map_integer_label_column([r.label for r in rows], self.config.labels), strict=True):
                    row.label = label
        names = choose_label_names([r.label for r in splits["train"]], self.config.labels, sources["train"])
        known_from = "data.labels" if self.config.labels else "training"
        for split, rows in splits.items():
            check_known_labels([r.label for r in rows], [r.line for r in rows], names, sources[split], known_from=known_from)
        return names

    def hold_out_keys(self, rows: list[TextRow]) -> tuple[list[Any] | None, None]:
        """The rows' labels, by which the hold-out keeps a training row of each class (and, single-label, stratifies
        when every class fits on both sides); a multi-label row's label is its list of labels."""
        return [list(r.label) if self.multi_label else r.label for r in rows], None

    def _rows(self, records: list[Record], path: str) -> list[TextRow]:
        config, rows = self.config, []
        text_column, label_column = config.text_column, config.label_column
        for record in records:  # a hot loop (every row of every file): the message text is built only on an error
            fields = record.fields
            text, raw = fields.get(text_column), fields.get(label_column)
            if text is None or raw is None:  # absent, or present as null (refused below as not a string / no label)
                for column in (text_column, label_column):
                    if column not in fields:
                        raise DataError(
                            f"{path}:{record.line}: the row has no '{column}' field. Give every row a text and a label."
                        )
            if not isinstance(text, str):
                raise DataError(f"{path}:{record.line}: text column '{text_column}' holds {text!r}; expected a string.")
            text = text.strip()
            if not text:
                raise DataError(
                    f"{path}:{record.line}: empty text in column '{text_column}'. Remove the row or fill in the text."
                )
            where = f"{path}:{record.line}"
            if self.multi_label:
                label: Any = parse_multi_label(raw, where, label_column, config.label_separator)
            else:
                label = parse_single_label(raw, where, label_column)
            rows.append(TextRow(text, label, record.line))
        return rows


def _hub_label(value: Any, names: list[str] | None) -> Any:
    if names is None:
        return value
    if isinstance(value, list):
        return [names[v] for v in value]
    return names[value] if isinstance(value, int) and value >= 0 else value


@dataclass
class TextClassificationData:
    """The splits, the label names in id order, and where each split came from."""

    splits: datasets.DatasetDict
    labels: list[str]
    multi_label: bool
    sources: dict[str, str] = field(default_factory=dict)
    augmented: dict[str, int] = field(default_factory=dict)  # data.augment: training rows each augmenter added
    pseudo_labeled: int = 0  # data.pseudo_labeled_file: machine-labelled training rows appended
    label_examples: int = 0  # data.label_examples: training rows written from the label names


def load_text_classification_data(
    config: DataConfig, *, multi_label: bool = False, seed: int = 42, model: str | None = None
) -> TextClassificationData:
    """Read train/validation/test as ``config`` says, check them, and split off validation if needed.

    ``data.augment`` then adds augmented copies of the training rows (``model``: the run's model, whose
    embeddings ``neighbour_tokens`` reads), ``data.label_examples`` rows written from the label names, and
    ``data.pseudo_labeled_file`` its rows, in that order.
    """
    reader = TextRows(config, multi_label)
    loaded = load_splits(config, reader, seed=seed)
    augmented = augment_training_split(loaded, config, seed=seed, model=model)
    named = add_label_examples(loaded, config, make_row=lambda text, label: TextRow(text, label, 0), multi_label=multi_label)
    pseudo_labeled = append_pseudo_labels(loaded, config.pseudo_labeled_file)
    splits = loaded.to_datasets(reader.features)
    return TextClassificationData(splits, loaded.labels, multi_label, loaded.sources, augmented, pseudo_labeled, named)


def append_pseudo_labels(loaded: LoadedSplits, path: str | None) -> int:
    """Append the rows of a pseudo-label file (``data.pseudo_labeled_file``) to the training split; returns how many."""
    if not path:
        return 0
    from nlp_transfer.data.pseudo_labels import read_pseudo_labels

    rows = [TextRow(r["text"], r["label"], r["line"]) for r in read_pseudo_labels(path, loaded.labels)]
    held = {split: loaded.rows[split] for split in ("validation", "test") if split in loaded.rows}
    warn_about_shared_texts({"train": rows, **held}, {**loaded.sources, "train": path})  # labels made elsewhere
    loaded.rows["train"] = loaded.rows["train"] + rows
    loaded.sources["train"] += f" + {len(rows):,} pseudo-labelled ({path})"
    return len(rows)


def read_text_classification_file(path: str, config: DataConfig, *, multi_label: bool = False) -> dict[str, list[Any]]:
    """One file as columns ``text``, ``label`` and ``line``, checked row by row."""
    reader = TextRows(config, multi_label)
    return row_columns(reader.read_file(path), reader.features)
