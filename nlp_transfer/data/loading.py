"""Load the splits of a text-classification run into a ``datasets.DatasetDict``.

Output columns: ``text`` (str), ``label`` (str, or list[str] for multi-label) and ``line``
(the source line, for messages). Labels stay strings here; the task turns them into ids.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

import datasets
from sklearn.model_selection import train_test_split

from nlp_transfer.config import DataConfig
from nlp_transfer.data.conll import (
    TaggedFile,
    TaggedSentence,
    entity_types,
    normalise_file,
    read_conll,
    read_tagged_json,
    tag_names,
)
from nlp_transfer.data.labels import (
    check_known_labels,
    choose_label_names,
    map_integer_label_column,
    parse_multi_label,
    parse_single_label,
)
from nlp_transfer.data.readers import Record, infer_format, read_records
from nlp_transfer.errors import DataError


@dataclass
class TextClassificationData:
    """The splits, the label names in id order, and where each split came from."""

    splits: datasets.DatasetDict
    labels: list[str]
    multi_label: bool
    sources: dict[str, str] = field(default_factory=dict)


def load_text_classification_data(config: DataConfig, *, multi_label: bool = False, seed: int = 42) -> TextClassificationData:
    """Read train/validation/test as ``config`` says, check them, and split off validation if needed."""
    fmt = infer_format(config.train_file or "", config.format)
    if fmt == "hub":
        columns = _load_hub(config, multi_label)
    elif fmt == "conll":
        raise DataError(
            f"{config.train_file}: CoNLL files hold token tags, not text labels. Use task=ner, or csv/tsv/json/jsonl."
        )
    else:
        columns = {}
        for split, path in (("train", config.train_file), ("validation", config.validation_file), ("test", config.test_file)):
            if path:
                columns[split] = _load_file(path, config, multi_label)

    if config.labels:
        for split_columns in columns.values():
            split_columns["label"] = map_integer_label_column(split_columns["label"], config.labels)
    train = columns["train"]
    if config.max_train_samples:
        train = {k: v[: config.max_train_samples] for k, v in train.items()}
    names = choose_label_names(train["label"], config.labels)
    sources = {split: _source(config, split) for split in columns}
    columns["train"] = train
    for split, split_columns in columns.items():
        check_known_labels(split_columns["label"], split_columns["line"], names, sources[split])
    if config.max_eval_samples:
        for split in ("validation", "test"):
            if split in columns:
                columns[split] = {k: v[: config.max_eval_samples] for k, v in columns[split].items()}

    if "validation" not in columns:
        train, columns["validation"] = _hold_out(train, config.validation_split, seed, multi_label)
        sources["validation"] = f"{config.validation_split:.0%} of {sources['train']} (seed {seed})"
    columns["train"] = train
    features = datasets.Features(
        {
            "text": datasets.Value("string"),
            "label": datasets.Sequence(datasets.Value("string")) if multi_label else datasets.Value("string"),
            "line": datasets.Value("int64"),
        }
    )
    splits = datasets.DatasetDict(
        {
            split: datasets.Dataset.from_dict(columns[split], features=features)
            for split in ("train", "validation", "test")
            if split in columns
        }
    )
    return TextClassificationData(splits=splits, labels=names, multi_label=multi_label, sources=sources)


def read_text_classification_file(path: str, config: DataConfig, *, multi_label: bool = False) -> dict[str, list[Any]]:
    """One file as columns ``text``, ``label`` and ``line``, checked row by row."""
    return _load_file(path, config, multi_label)


def _source(config: DataConfig, split: str) -> str:
    path = {"train": config.train_file, "validation": config.validation_file, "test": config.test_file}[split]
    if infer_format(config.train_file or "", config.format) == "hub":
        return f"{config.train_file} [{config.hub_splits.get(split, split)}]"
    return str(path)


def _load_file(path: str, config: DataConfig, multi_label: bool) -> dict[str, list[Any]]:
    fmt = infer_format(path, config.format)
    records = read_records(path, format=fmt, delimiter=config.delimiter, header=config.header, encoding=config.encoding)
    _check_columns(path, records, config)
    return _columns_from_records(records, path, config, multi_label)


def _check_columns(path: str, records: list[Record], config: DataConfig) -> None:
    available = list(records[0].fields)
    for key, column in (("data.text_column", config.text_column), ("data.label_column", config.label_column)):
        if column not in available:
            close = difflib.get_close_matches(column, available, n=1)
            hint = f" Did you mean {key}={close[0]}?" if close else f" Set {key} to one of them."
            header_hint = " (data.header=false numbers the columns 0, 1, ...)" if config.header is False else ""
            raise DataError(f"{path}: no column '{column}' for {key}; the columns are {available}{header_hint}.{hint}")


def _columns_from_records(records: list[Record], path: str, config: DataConfig, multi_label: bool) -> dict[str, list[Any]]:
    texts, labels, lines = [], [], []
    for record in records:
        where = f"{path}:{record.line}"
        if config.text_column not in record.fields or config.label_column not in record.fields:
            missing = config.text_column if config.text_column not in record.fields else config.label_column
            raise DataError(f"{where}: the row has no '{missing}' field. Give every row a text and a label.")
        text = record.fields[config.text_column]
        if not isinstance(text, str):
            raise DataError(f"{where}: text column '{config.text_column}' holds {text!r}; expected a string.")
        text = text.strip()
        if not text:
            raise DataError(f"{where}: empty text in column '{config.text_column}'. Remove the row or fill in the text.")
        raw = record.fields[config.label_column]
        if multi_label:
            label: Any = parse_multi_label(raw, where, config.label_column, config.label_separator)
        else:
            label = parse_single_label(raw, where, config.label_column)
        texts.append(text)
        labels.append(label)
        lines.append(record.line)
    return {"text": texts, "label": labels, "line": lines}


def _hold_out(train: dict[str, list[Any]], fraction: float, seed: int, multi_label: bool) -> tuple[dict, dict]:
    indices = list(range(len(train["label"])))
    labels = train["label"]
    stratify = None
    if not multi_label:
        counts: dict[str, int] = {}
        for label in labels:
            counts[label] = counts.get(label, 0) + 1
        n_val = max(1, round(fraction * len(indices)))
        if min(counts.values()) >= 2 and n_val >= len(counts):
            stratify = labels
    if len(indices) < 2:
        raise DataError("the training data has fewer than 2 rows; nothing can be held out for validation. Add data.")
    keep, held = train_test_split(indices, test_size=fraction, random_state=seed, stratify=stratify)
    keep, held = sorted(keep), sorted(held)
    pick = lambda idx: {k: [v[i] for i in idx] for k, v in train.items()}  # noqa: E731
    return pick(keep), pick(held)


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


def _load_hub(config: DataConfig, multi_label: bool) -> dict[str, dict[str, list[Any]]]:
    name = config.train_file or ""
    loaded = _fetch_hub_dataset(name, config.hub_config)
    columns: dict[str, dict[str, list[Any]]] = {}
    for split, hub_split in config.hub_splits.items():
        if hub_split not in loaded:
            continue
        part = loaded[hub_split]
        for key, column in (("data.text_column", config.text_column), ("data.label_column", config.label_column)):
            if column not in part.column_names:
                raise DataError(f"{name} [{hub_split}]: no column '{column}' for {key}; the columns are {part.column_names}.")
        feature = part.features[config.label_column]
        names = getattr(feature, "names", None) or getattr(getattr(feature, "feature", None), "names", None)
        records = [
            Record(
                i + 1,
                {config.text_column: row[config.text_column], config.label_column: _hub_label(row[config.label_column], names)},
            )
            for i, row in enumerate(part)
        ]
        columns[split] = _columns_from_records(records, f"{name} [{hub_split}]", config, multi_label)
    if "train" not in columns:
        raise DataError(f"Hub dataset '{name}' has no split '{config.hub_splits.get('train')}'. Set data.hub_splits.train.")
    return columns


def _hub_label(value: Any, names: list[str] | None) -> Any:
    if names is None:
        return value
    if isinstance(value, list):
        return [names[v] for v in value]
    return names[value] if isinstance(value, int) and value >= 0 else value


@dataclass
class TokenClassificationData:
    """NER splits (columns ``tokens``, ``tags`` in IOB2, ``line``), the tag names in id order, sources."""

    splits: datasets.DatasetDict
    labels: list[str]
    scheme: str = "iob2"
    sources: dict[str, str] = field(default_factory=dict)


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
    """Read train/validation/test token-tagged files; hold out validation from train when none is given."""
    fmt = infer_format(config.train_file or "", config.format)
    sentences: dict[str, list[TaggedSentence]] = {}
    sources: dict[str, str] = {}
    scheme = "iob2"
    if fmt == "hub":
        sentences = _load_hub_tagged(config)
        sources = {split: _source(config, split) for split in sentences}
    else:
        for split, path in (("train", config.train_file), ("validation", config.validation_file), ("test", config.test_file)):
            if path:
                tagged = read_tagged_file(path, config)
                sentences[split], sources[split] = tagged.sentences, str(path)
                scheme = tagged.scheme if split == "train" else scheme
    if config.max_train_samples:
        sentences["train"] = sentences["train"][: config.max_train_samples]
    if config.max_eval_samples:
        for split in ("validation", "test"):
            if split in sentences:
                sentences[split] = sentences[split][: config.max_eval_samples]
    types = entity_types(sentences["train"])
    names = config.labels or tag_names(types)
    known = set(names)
    for split, items in sentences.items():
        for sentence in items:
            for tag in sentence.tags:
                if tag not in known:
                    raise DataError(
                        f"{sources[split]}:{sentence.line}: tag '{tag}' was not seen in the training data "
                        f"(types: {', '.join(types)}). Fix the tag, or list every tag in data.labels."
                    )
    if "validation" not in sentences:
        columns = {"index": list(range(len(sentences["train"]))), "label": ["x"] * len(sentences["train"])}
        keep, held = _hold_out(columns, config.validation_split, seed, multi_label=True)
        train = sentences["train"]
        sentences["train"] = [train[i] for i in keep["index"]]
        sentences["validation"] = [train[i] for i in held["index"]]
        sources["validation"] = f"{config.validation_split:.0%} of {sources['train']} (seed {seed})"
    features = datasets.Features(
        {
            "tokens": datasets.Sequence(datasets.Value("string")),
            "tags": datasets.Sequence(datasets.Value("string")),
            "line": datasets.Value("int64"),
            "document": datasets.Value("int64"),
        }
    )
    splits = datasets.DatasetDict(
        {
            split: datasets.Dataset.from_dict(
                {
                    "tokens": [s.tokens for s in sentences[split]],
                    "tags": [s.tags for s in sentences[split]],
                    "line": [s.line for s in sentences[split]],
                    "document": [s.document for s in sentences[split]],
                },
                features=features,
            )
            for split in ("train", "validation", "test")
            if split in sentences
        }
    )
    return TokenClassificationData(splits=splits, labels=list(names), scheme=scheme, sources=sources)


def _load_hub_tagged(config: DataConfig) -> dict[str, list[TaggedSentence]]:
    name = config.train_file or ""
    loaded = _fetch_hub_dataset(name, config.hub_config)
    tokens_field = "tokens" if config.text_column == "text" else config.text_column
    tags_field = "ner_tags" if config.label_column == "label" else config.label_column
    result = {}
    for split, hub_split in config.hub_splits.items():
        if hub_split not in loaded:
            continue
        part = loaded[hub_split]
        feature = part.features[tags_field]
        names = getattr(getattr(feature, "feature", None), "names", None)
        items = []
        for i, row in enumerate(part):
            tags = [names[t] for t in row[tags_field]] if names else list(row[tags_field])
            items.append(TaggedSentence(list(row[tokens_field]), tags, i + 1, document=i))  # no document marks: each alone
        result[split] = normalise_file(TaggedFile(items), f"{name} [{hub_split}]", config.tag_scheme).sentences
    if "train" not in result:
        raise DataError(f"Hub dataset '{name}' has no split '{config.hub_splits.get('train')}'. Set data.hub_splits.train.")
    return result
