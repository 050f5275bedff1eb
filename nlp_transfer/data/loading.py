"""One path from a :class:`DataConfig` to checked ``datasets.DatasetDict`` splits, for every task.

:func:`load_splits` reads train/validation/test (files through the per-format readers, or the splits of a
Hub dataset), keeps the first ``max_train_samples`` / ``max_eval_samples`` rows, checks the labels against
the training split, holds validation out of train when no validation file is given (``max_eval_samples`` caps that
held-out split too, the training rows staying as they were), and then keeps the first
``train_size`` rows or a ``per_class`` sample of each class of what train has left (:func:`sample_per_class`). What differs
between tasks is a small row reader (:class:`RowReader`): :class:`~nlp_transfer.data.text_rows.TextRows` for text
classification and :class:`~nlp_transfer.data.tagged_rows.TaggedRows` for NER, each in its own module.
"""

from __future__ import annotations

import difflib
import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import datasets
import numpy as np

from nlp_transfer.config import DataConfig
from nlp_transfer.data.hygiene import warn_about_case_only_labels, warn_about_shared_texts
from nlp_transfer.data.readers import infer_format
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
            {
                split: datasets.Dataset.from_dict(row_columns(rows, features), features=features)
                for split, rows in self.rows.items()
            }
        )


def load_splits(config: DataConfig, reader: RowReader, *, seed: int = 42) -> LoadedSplits:
    """Read, truncate and check train/validation/test as ``config`` says; hold out validation when none is given.

    ``config.train_size`` then keeps the first training rows that remain, or ``config.per_class`` samples them, so
    validation never shrinks.
    """
    if not config.train_file:  # a DataConfig built in Python skips the config file's checks
        raise DataError("data.train_file is required: give DataConfig(train_file=...) a csv/tsv/json/jsonl/conll file.")
    if not 0.0 < config.validation_split < 1.0:
        raise DataError(f"data.validation_split must lie between 0 and 1 (exclusive), got {config.validation_split}.")
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
        if config.max_eval_samples is not None and len(rows["validation"]) > config.max_eval_samples:
            # the rows past the cap are dropped, not given back: training is the same with or without the cap
            rows["validation"] = rows["validation"][: config.max_eval_samples]
            sources["validation"] += f" (first {config.max_eval_samples:,} rows)"
    if config.train_size is not None:
        rows["train"], sources["train"] = _first_training_rows(rows["train"], config.train_size, sources["train"])
        _check_classes_left(rows["train"], config.train_size, sources["train"])
    if config.per_class is not None:
        rows["train"], sources["train"] = _sample_training_rows(rows["train"], labels, config, sources["train"], held_out)
    warn_about_case_only_labels(labels, sources["train"])
    warn_about_shared_texts(rows, sources)
    ordered = {split: rows[split] for split in SPLITS if split in rows}
    return LoadedSplits(ordered, {split: sources[split] for split in ordered}, labels)


def _first_training_rows(rows: list[Any], size: int, source: str) -> tuple[list[Any], str]:
    """The first ``size`` training rows (data.train_size) and their description; a DataError when fewer are left."""
    if size > len(rows):
        raise DataError(
            f"data.train_size={size}: {source} has {len(rows):,} training rows once validation is held out. "
            f"Give a size up to {len(rows):,}, or null for all of them."
        )
    return rows[:size], f"{source} (first {size:,} training rows)"


def _check_classes_left(rows: list[Any], size: int, source: str) -> None:
    """Refuse first training rows (data.train_size) of one class: a file sorted by label kept only its first class."""
    if not rows or not hasattr(rows[0], "label"):
        return  # tagged sentences: every sentence holds several tags
    classes = {name for row in rows for name in (row.label if isinstance(row.label, list) else [row.label])}
    if len(classes) < 2:
        raise DataError(
            f"data.train_size={size}: the first {size:,} training rows of {source} hold {len(classes)} class(es) "
            f"{sorted(classes)}; a classifier needs two. Shuffle the file (it may be sorted by label), or give a larger size."
        )


def hold_out(
    rows: list[Any], fraction: float, seed: int, stratify: Sequence[Any] | None = None, groups: Sequence[Any] | None = None
) -> tuple[list[Any], list[Any]]:
    """Split ``rows`` into (train, validation), seeded, both in file order.

    With ``groups`` of two or more values (documents), whole groups go to validation until about ``fraction``
    of the rows do; otherwise ``fraction`` of the rows, stratified by the class labels ``stratify`` when every class
    fits on both sides (not when a row's label is a list: multi-label). A class that would lose every training row
    keeps its first one (a class of one row went to validation, and the classifier trained without it).
    """
    if len(rows) < 2:
        raise DataError("the training data has fewer than 2 rows; nothing can be held out for validation. Add data.")
    if groups is not None and len(set(groups)) > 1:
        held = set(_held_out_groups(list(groups), fraction, seed))
    else:
        from sklearn.model_selection import train_test_split  # imported only when a split is carved

        multi_label = stratify is not None and any(isinstance(key, list) for key in stratify)
        by = list(stratify) if stratify is not None and not multi_label and _stratifiable(stratify, fraction) else None
        try:
            _, chosen = train_test_split(list(range(len(rows))), test_size=fraction, random_state=seed, stratify=by)
        except ValueError as err:  # a side left empty: scikit-learn says which
            raise DataError(_split_refused(fraction, len(rows), str(err).splitlines()[0])) from None
        held = set(chosen) if stratify is None else _every_class_trains(set(chosen), stratify)
        if chosen and not held:  # every row drawn carries a label no other row has: each went back to training
            raise DataError(_split_refused(fraction, len(rows), "each row it would hold out carries a label no other row has"))
    train, validation = [r for i, r in enumerate(rows) if i not in held], [r for i, r in enumerate(rows) if i in held]
    if not train or not validation:
        raise DataError(_split_refused(fraction, len(rows), "one side would be empty"))
    return train, validation


def _stratifiable(labels: Sequence[Any], fraction: float) -> bool:
    """Whether a split of ``fraction`` can put every class on both sides: two rows of each, and room on each side."""
    counts = Counter(labels)
    held = math.ceil(fraction * len(labels))
    return min(counts.values()) >= 2 and min(held, len(labels) - held) >= len(counts)


def _every_class_trains(held: set[int], labels: Sequence[Any]) -> set[int]:
    """``held`` without the first held row of each class that has no row left to train on. A row's label may be a
    list (multi-label): the row goes back to training when one of its labels has no training row."""
    names = [set(label) if isinstance(label, list) else {label} for label in labels]
    training = set().union(*(names[i] for i in range(len(names)) if i not in held))
    for index in sorted(held):
        if not names[index] <= training:
            training |= names[index]
            held.discard(index)
    return held


def _split_refused(fraction: float, rows: int, reason: str) -> str:
    return (
        f"data.validation_split={fraction} cannot hold out validation from the {rows:,} training rows ({reason}). "
        "Give data.validation_file, or a data.validation_split that leaves rows on both sides"
        + (" (e.g. 0.1)." if fraction != 0.1 else ", or more rows.")
    )


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


def row_columns(rows: list[Any], features: datasets.Features) -> dict[str, list[Any]]:
    """The rows as columns: each name of ``features`` read from the rows' attributes of that name."""
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


def require_columns(where: str, available: list[str], wanted: dict[str, str], header: bool | list[str] = True) -> None:
    """Raise when a column a config key names (``wanted``: key -> column) is not ``available``."""
    for key, column in wanted.items():
        if column not in available:
            close = difflib.get_close_matches(column, available, n=1)
            hint = f" Did you mean {key}={close[0]}?" if close else f" Set {key} to one of them."
            header_hint = " (data.header=false numbers the columns 0, 1, ...)" if header is False else ""
            raise DataError(f"{where}: no column '{column}' for {key}; the columns are {available}{header_hint}.{hint}")


def class_names(feature: Any) -> list[str] | None:
    """The names of a Hub ``ClassLabel`` feature, or of a sequence of them; None for plain values."""
    return getattr(feature, "names", None) or getattr(getattr(feature, "feature", None), "names", None)
