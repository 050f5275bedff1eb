"""One path from a :class:`DataConfig` to checked ``datasets.DatasetDict`` splits, for every task.

:func:`load_splits` reads train/validation/test (files through the per-format readers, or the splits of a
Hub dataset), keeps the first ``max_train_samples`` / ``max_eval_samples`` rows, checks the labels against
the training split, holds validation out of train when no validation file is given, and then keeps a
``per_class`` sample of each class of what train has left (:func:`sample_per_class`). What differs
between tasks is a small row reader: :class:`TextRows` (columns ``text``, ``label``, ``line``; labels stay
strings, the task turns them into ids) and :class:`TaggedRows` (``tokens``, ``tags`` in IOB2, ``line``,
``document``).
"""

from __future__ import annotations

import difflib
import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import datasets
import numpy as np

from nlp_transfer.config import DataConfig
from nlp_transfer.data.augment import augment_training_split
from nlp_transfer.data.conll import (
    TaggedFile,
    TaggedSentence,
    entity_types,
    normalise_file,
    read_conll,
    read_tagged_json,
    tag_names,
)
from nlp_transfer.data.label_examples import add_label_examples
from nlp_transfer.data.labels import (
    check_known_labels,
    choose_label_names,
    map_integer_label_column,
    parse_multi_label,
    parse_single_label,
)
from nlp_transfer.data.readers import Record, infer_format, read_records
from nlp_transfer.errors import DataError

SPLITS = ("train", "validation", "test")


class RowReader(Protocol):
    """The task-specific part of :func:`load_splits`: rows from a file or a Hub split, and their labels."""

    features: datasets.Features

    def read_file(self, path: str) -> list[Any]:
        """The rows of one data file, checked."""

    def read_hub(self, part: datasets.Dataset, where: str) -> list[Any]:
        """The rows of one split of a Hub dataset, checked."""

    def check_labels(self, splits: dict[str, list[Any]], sources: dict[str, str]) -> list[str]:
        """The label names in id order (from train or data.labels); raise on a label other splits add."""

    def hold_out_keys(self, rows: list[Any]) -> tuple[list[Any] | None, list[Any] | None]:
        """What a held-out validation split keeps together: (labels to stratify by, groups never to divide)."""


@dataclass
class LoadedSplits:
    """The rows of each split, where each came from, and the label names in id order."""

    rows: dict[str, list[Any]]
    sources: dict[str, str]
    labels: list[str]

    def to_datasets(self, features: datasets.Features) -> datasets.DatasetDict:
        """The splits as datasets with ``features`` (read from the rows' attributes of the same names)."""
        return datasets.DatasetDict(
            {split: datasets.Dataset.from_dict(_columns(rows, features), features=features) for split, rows in self.rows.items()}
        )


def load_splits(config: DataConfig, reader: RowReader, *, seed: int = 42) -> LoadedSplits:
    """Read, truncate and check train/validation/test as ``config`` says; hold out validation when none is given.

    ``config.per_class`` then samples the training rows that remain, so validation never shrinks.
    """
    if infer_format(config.train_file or "", config.format) == "hub":
        rows, sources = _read_hub(config, reader)
    else:
        paths = {"train": config.train_file, "validation": config.validation_file, "test": config.test_file}
        rows = {split: reader.read_file(path) for split, path in paths.items() if path}
        sources = {split: str(path) for split, path in paths.items() if path}
    limits = {"train": config.max_train_samples, "validation": config.max_eval_samples, "test": config.max_eval_samples}
    rows = {split: items[: limits[split]] for split, items in rows.items()}
    labels = reader.check_labels(rows, sources)
    held_out = "validation" not in rows
    if held_out:
        stratify, groups = reader.hold_out_keys(rows["train"])
        by_document = groups is not None and len(set(groups)) > 1
        rows["train"], rows["validation"] = hold_out(rows["train"], config.validation_split, seed, stratify, groups)
        sources["validation"] = (
            f"{config.validation_split:.0%} of {sources['train']} ({'whole documents, ' if by_document else ''}seed {seed})"
        )
    if config.per_class is not None:
        rows["train"], sources["train"] = _sample_training_rows(rows["train"], labels, config, sources["train"], held_out)
    ordered = {split: rows[split] for split in SPLITS if split in rows}
    return LoadedSplits(ordered, {split: sources[split] for split in ordered}, labels)


def hold_out(
    rows: list[Any], fraction: float, seed: int, stratify: Sequence[Any] | None = None, groups: Sequence[Any] | None = None
) -> tuple[list[Any], list[Any]]:
    """Split ``rows`` into (train, validation), seeded, both in file order.

    With ``groups`` of two or more values (documents), whole groups go to validation until about ``fraction``
    of the rows do; otherwise ``fraction`` of the rows, stratified by ``stratify`` when given.
    """
    if len(rows) < 2:
        raise DataError("the training data has fewer than 2 rows; nothing can be held out for validation. Add data.")
    if groups is not None and len(set(groups)) > 1:
        held = set(_held_out_groups(list(groups), fraction, seed))
    else:
        from sklearn.model_selection import train_test_split  # imported only when a split is carved

        _, chosen = train_test_split(list(range(len(rows))), test_size=fraction, random_state=seed, stratify=stratify)
        held = set(chosen)
    return [r for i, r in enumerate(rows) if i not in held], [r for i, r in enumerate(rows) if i in held]


def sample_per_class(row_labels: Sequence[Any], classes: Sequence[str], per_class: int, seed: int) -> list[int]:
    """Indices of the rows a few-shot sample keeps, in file order: ``per_class`` rows of each class.

    ``row_labels`` holds each row's label, or its list of labels (multi-label). The classes are visited in sorted
    order; each keeps ``random.Random(seed).sample(candidates, per_class)`` with a fresh generator, where the
    candidates are the rows carrying that class, in file order, that no earlier class kept (all of them when a
    row has one label; with fewer than ``per_class`` candidates left, a multi-label class keeps them all).
    """
    carriers: dict[str, list[int]] = {name: [] for name in classes}
    for index, label in enumerate(row_labels):
        for name in label if isinstance(label, list) else [label]:
            carriers[name].append(index)
    kept: set[int] = set()
    for name in sorted(classes):
        candidates = [i for i in carriers[name] if i not in kept]
        kept.update(random.Random(seed).sample(candidates, min(per_class, len(candidates))))
    return sorted(kept)


def _sample_training_rows(
    rows: list[Any], classes: list[str], config: DataConfig, source: str, held_out: bool
) -> tuple[list[Any], str]:
    """The data.per_class sample of the training rows and its description; raise when a class has too few rows."""
    per_class = int(config.per_class or 0)
    if rows and not hasattr(rows[0], "label"):
        raise DataError("data.per_class samples classes of text classification rows; remove it for tagged (NER) data.")
    row_labels = [r.label for r in rows]
    counts = Counter(name for label in row_labels for name in (label if isinstance(label, list) else [label]))
    remaining = " (once validation is held out)" if held_out else ""
    for name in sorted(classes):
        if counts[name] < 2:
            raise DataError(
                f"{source}: class '{name}' has {counts[name]} training row(s){remaining}; data.per_class needs at "
                f"least 2 of every class to sample from. Add training examples of '{name}'."
            )
        if counts[name] < per_class:
            raise DataError(
                f"{source}: class '{name}' has {counts[name]} training rows{remaining}, fewer than "
                f"data.per_class={per_class}; lower data.per_class or add examples."
            )
    kept = sample_per_class(row_labels, classes, per_class, config.sample_seed)
    multi_label = any(isinstance(label, list) for label in row_labels)
    amount = f"at least {per_class} per label" if multi_label else f"{per_class} per class"
    return [rows[i] for i in kept], f"{amount} (sample seed {config.sample_seed}) of {source}"


def _held_out_groups(groups: list[Any], fraction: float, seed: int) -> list[int]:
    """Indices of the rows of whole groups, taken in seeded random order while that brings them nearest ``fraction``."""
    names = sorted(set(groups))
    order = [names[i] for i in np.random.default_rng(seed).permutation(len(names))]
    sizes = Counter(groups)
    taken = np.cumsum([sizes[name] for name in order])[:-1]  # at least one group stays in train
    count = int(np.argmin(np.abs(taken - fraction * len(groups)))) + 1
    chosen = set(order[:count])
    return [i for i, group in enumerate(groups) if group in chosen]


def _columns(rows: list[Any], features: datasets.Features) -> dict[str, list[Any]]:
    return {name: [getattr(row, name) for row in rows] for name in features}


def _fetch_hub_dataset(name: str, hub_config: str | None) -> datasets.DatasetDict:
    """All splits of a Hub dataset, or one DataError saying why it cannot be had."""
    try:
        return datasets.load_dataset(name, hub_config)
    except Exception as err:
        raise DataError(
            f"Hub dataset '{name}' cannot be reached ({type(err).__name__}: {str(err).splitlines()[0][:160]}). "
            "Check the name and your network (HF_HUB_OFFLINE must be unset), or download it and point "
            "data.train_file at local files."
        ) from None


def _read_hub(config: DataConfig, reader: RowReader) -> tuple[dict[str, list[Any]], dict[str, str]]:
    name = config.train_file or ""
    loaded = _fetch_hub_dataset(name, config.hub_config)
    rows, sources = {}, {}
    for split, hub_split in config.hub_splits.items():
        if split in SPLITS and hub_split in loaded:
            sources[split] = f"{name} [{hub_split}]"
            rows[split] = reader.read_hub(loaded[hub_split], sources[split])
    if "train" not in rows:
        raise DataError(f"Hub dataset '{name}' has no split '{config.hub_splits.get('train')}'. Set data.hub_splits.train.")
    return rows, sources


def _require_columns(where: str, available: list[str], wanted: dict[str, str], header: bool | list[str] = True) -> None:
    """Raise when a column a config key names (``wanted``: key -> column) is not ``available``."""
    for key, column in wanted.items():
        if column not in available:
            close = difflib.get_close_matches(column, available, n=1)
            hint = f" Did you mean {key}={close[0]}?" if close else f" Set {key} to one of them."
            header_hint = " (data.header=false numbers the columns 0, 1, ...)" if header is False else ""
            raise DataError(f"{where}: no column '{column}' for {key}; the columns are {available}{header_hint}.{hint}")


def _class_names(feature: Any) -> list[str] | None:
    """The names of a Hub ``ClassLabel`` feature, or of a sequence of them; None for plain values."""
    return getattr(feature, "names", None) or getattr(getattr(feature, "feature", None), "names", None)


# ----------------------------------------------------------------------------- text classification


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
        _require_columns(path, list(records[0].fields), wanted, config.header)
        return self._rows(records, path)

    def read_hub(self, part: datasets.Dataset, where: str) -> list[TextRow]:
        """The checked rows of a Hub split; ClassLabel ids become their names."""
        text, label = self.config.text_column, self.config.label_column
        _require_columns(where, part.column_names, {"data.text_column": text, "data.label_column": label})
        names = _class_names(part.features[label])
        records = [Record(i + 1, {text: row[text], label: _hub_label(row[label], names)}) for i, row in enumerate(part)]
        return self._rows(records, where)

    def check_labels(self, splits: dict[str, list[TextRow]], sources: dict[str, str]) -> list[str]:
        """Label names from data.labels (integer labels index them) or the training split; other splits must fit."""
        if self.config.labels:
            for rows in splits.values():
                for row, label in zip(rows, map_integer_label_column([r.label for r in rows], self.config.labels), strict=True):
                    row.label = label
        names = choose_label_names([r.label for r in splits["train"]], self.config.labels)
        for split, rows in splits.items():
            check_known_labels(
                [r.label for r in rows], [r.line for r in rows], names, sources[split], listed=bool(self.config.labels)
            )
        return names

    def hold_out_keys(self, rows: list[TextRow]) -> tuple[list[Any] | None, None]:
        """Stratify single-label data by label when every class can appear on both sides."""
        if self.multi_label:
            return None, None
        labels = [r.label for r in rows]
        counts = Counter(labels)
        held = math.ceil(self.config.validation_split * len(labels))
        fits = min(counts.values()) >= 2 and min(held, len(labels) - held) >= len(counts)
        return (labels if fits else None), None

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
    loaded.rows["train"] = loaded.rows["train"] + rows
    loaded.sources["train"] += f" + {len(rows):,} pseudo-labelled ({path})"
    return len(rows)


def read_text_classification_file(path: str, config: DataConfig, *, multi_label: bool = False) -> dict[str, list[Any]]:
    """One file as columns ``text``, ``label`` and ``line``, checked row by row."""
    reader = TextRows(config, multi_label)
    return _columns(reader.read_file(path), reader.features)


# ----------------------------------------------------------------------------- token classification

TAGGED_FEATURES = datasets.Features(
    {
        "tokens": datasets.Sequence(datasets.Value("string")),
        "tags": datasets.Sequence(datasets.Value("string")),
        "line": datasets.Value("int64"),
        "document": datasets.Value("int64"),
    }
)


class TaggedRows:
    """Rows of token classification: sentences with a tag per token, normalised to IOB2."""

    features = TAGGED_FEATURES

    def __init__(self, config: DataConfig) -> None:
        self.config = config
        self.schemes: dict[str, str] = {}  # source -> the scheme its tags were written in

    def read_file(self, path: str) -> list[TaggedSentence]:
        """The sentences of a conll/json/jsonl file."""
        tagged = read_tagged_file(path, self.config)
        self.schemes[str(path)] = tagged.scheme
        return tagged.sentences

    def read_hub(self, part: datasets.Dataset, where: str) -> list[TaggedSentence]:
        """The sentences of a Hub split; each is its own document (Hub datasets carry no document marks)."""
        tokens_field = "tokens" if self.config.text_column == "text" else self.config.text_column
        tags_field = "ner_tags" if self.config.label_column == "label" else self.config.label_column
        _require_columns(where, part.column_names, {"data.text_column": tokens_field, "data.label_column": tags_field})
        names = _class_names(part.features[tags_field])
        items = [
            TaggedSentence(
                list(row[tokens_field]), [names[t] for t in row[tags_field]] if names else list(row[tags_field]), i + 1, i
            )
            for i, row in enumerate(part)
        ]
        tagged = normalise_file(TaggedFile(items), where, self.config.tag_scheme)
        self.schemes[where] = tagged.scheme
        return tagged.sentences

    def check_labels(self, splits: dict[str, list[TaggedSentence]], sources: dict[str, str]) -> list[str]:
        """Tag names from data.labels or the training split's entity types; other splits must fit."""
        types = entity_types(splits["train"])
        names = self.config.labels or tag_names(types)
        known = set(names)
        for split, sentences in splits.items():
            for sentence in sentences:
                unknown = [tag for tag in sentence.tags if tag not in known]
                if unknown:
                    raise DataError(
                        f"{sources[split]}:{sentence.line}: tag '{unknown[0]}' was not seen in the training data "
                        f"(types: {', '.join(types)}). Fix the tag, or list every tag in data.labels."
                    )
        return list(names)

    def hold_out_keys(self, rows: list[TaggedSentence]) -> tuple[None, list[int]]:
        """Documents stay whole: validation never shares an article with training."""
        return None, [s.document for s in rows]


@dataclass
class TokenClassificationData:
    """NER splits (columns ``tokens``, ``tags`` in IOB2, ``line``, ``document``), the tag names in id order, sources.

    ``repaired_tags`` counts, per split, the gold I- tags that began an entity and were read as B-.
    """

    splits: datasets.DatasetDict
    labels: list[str]
    scheme: str = "iob2"
    sources: dict[str, str] = field(default_factory=dict)
    repaired_tags: dict[str, int] = field(default_factory=dict)


def read_tagged_file(path: str, config: DataConfig) -> TaggedFile:
    """One token-tagged file (conll, json or jsonl) with tags normalised to IOB2."""
    fmt = infer_format(path, config.format)
    if fmt == "conll":
        return read_conll(
            path,
            token_column=config.token_column,
            tag_column=config.tag_column,
            encoding=config.encoding,
            scheme=config.tag_scheme,
        )
    if fmt in ("json", "jsonl"):
        tokens_field = "tokens" if config.text_column == "text" else config.text_column
        tags_field = "tags" if config.label_column == "label" else config.label_column
        return read_tagged_json(
            path, fmt=fmt, tokens_field=tokens_field, tags_field=tags_field, encoding=config.encoding, scheme=config.tag_scheme
        )
    raise DataError(f"{path}: NER reads conll, json or jsonl files (or format=hub), not {fmt}. Set data.format.")


def load_token_classification_data(config: DataConfig, *, seed: int = 42) -> TokenClassificationData:
    """Read train/validation/test token-tagged data; hold out whole documents for validation when none is given."""
    reader = TaggedRows(config)
    loaded = load_splits(config, reader, seed=seed)
    repaired = {split: sum(s.repaired for s in sentences) for split, sentences in loaded.rows.items()}
    scheme = reader.schemes.get(loaded.sources["train"], "iob2")
    return TokenClassificationData(loaded.to_datasets(reader.features), loaded.labels, scheme, loaded.sources, repaired)
