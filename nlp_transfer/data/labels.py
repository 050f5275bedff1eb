"""Label values: parsing raw cells, choosing the label set, and checking other splits against it."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Sequence
from typing import Any

from nlp_transfer.errors import DataError

_WHOLE_DECIMAL = re.compile(r"-?\d+\.0+")


def parse_single_label(value: Any, where: str, column: str) -> str:
    """A single label cell (string or integer) as a string."""
    if isinstance(value, bool) or value is None or (isinstance(value, (list, dict, float)) and not _is_whole(value)):
        raise DataError(f"{where}: label column '{column}' holds {value!r}; expected one label (a string or an integer).")
    text = str(int(value)) if isinstance(value, float) else whole_number_text(str(value).strip())
    if not text:
        raise DataError(f"{where}: empty label in column '{column}'. Give every row a label, or remove the row.")
    return text


def whole_number_text(label: str) -> str:
    """``label`` with a whole number written as a decimal ("1.0", as pandas writes an integer column that has a gap)
    read as the integer ("1"), as a JSON 1.0 is: the same labels from a csv and a JSON file then match."""
    if not _WHOLE_DECIMAL.fullmatch(label):
        return label
    whole = label.split(".", 1)[0]  # the digits as written: a float would round past 2**53 and merge labels
    return "0" if whole.lstrip("-").strip("0") == "" else whole


def parse_multi_label(value: Any, where: str, column: str, separator: str) -> list[str]:
    """A multi-label cell: a list, or a string split on ``separator``. An empty cell means no label.

    A csv cell that holds a JSON list (``["billing", "returns"]``) or a Python list of strings (``['billing', 'returns']``,
    as pandas writes a list column) is read as that list.
    """
    if isinstance(value, str) and value.strip().startswith("[") and value.strip().endswith("]"):
        value = _json_list(value)
    if isinstance(value, list):
        items = [_list_item(v, value, where, column) for v in value]
    elif (isinstance(value, (str, int)) and not isinstance(value, bool)) or (isinstance(value, float) and _is_whole(value)):
        text = str(int(value)) if isinstance(value, float) else str(value).strip()  # 1.0 is the label 1, as elsewhere
        items = [whole_number_text(part.strip()) for part in text.split(separator)] if text else []
    elif value is None:
        items = []
    else:
        raise DataError(f"{where}: label column '{column}' holds {value!r}; expected a list or a '{separator}'-separated string.")
    if any(not item for item in items):
        stray = f"Remove the stray '{separator}'" if isinstance(value, str) else "Remove the blank item from the list"
        raise DataError(f"{where}: an empty label inside {value!r}. {stray}.")
    return sorted(set(items))


def _json_list(text: str) -> Any:
    """``text`` as a list when it is a JSON list, or a Python list of strings (``['good', 'bad']``, as pandas
    writes a list column to csv); else ``text`` unchanged (a label may itself be written in brackets)."""
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = _python_string_list(text)
    return parsed if isinstance(parsed, list) else text


def _python_string_list(text: str) -> list[str] | None:
    """``text`` read as a Python list literal whose items are all strings, else None (no other literal is taken)."""
    try:
        parsed = ast.literal_eval(text.strip())
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    if isinstance(parsed, list) and all(isinstance(item, str) for item in parsed):
        return parsed
    return None


def _list_item(item: Any, items: list[Any], where: str, column: str) -> str:
    """One label of a label list: a string or a whole number; null, true/false, fractions and nested lists refused."""
    if isinstance(item, bool) or item is None or (isinstance(item, (list, dict, float)) and not _is_whole(item)):
        raise DataError(
            f"{where}: label column '{column}' holds the list {items!r}, whose item {item!r} is not a label "
            "(a string or a whole number). Remove it or write the label's name."
        )
    return str(int(item)) if isinstance(item, float) else whole_number_text(str(item).strip())


def _is_whole(value: Any) -> bool:
    return isinstance(value, float) and value.is_integer()


def choose_label_names(train_labels: Sequence[str | list[str]], given: list[str] | None, source: str = "") -> list[str]:
    """The label names in id order: ``given``, else the sorted labels seen in training (read from ``source``).

    Either way the training rows must hold at least two distinct labels (data.labels=[pos] trained a one-output
    softmax, and data.labels=[neg, pos] over rows of pos alone a classifier that never saw neg).
    """
    if given and len(set(given)) != len(given):
        raise DataError(f"data.labels has duplicates: {given}. List each label once.")
    seen: set[str] = set()
    for label in train_labels:
        seen.update(label if isinstance(label, list) else [label])
    names = sorted(seen, key=lambda s: (0, int(s)) if s.lstrip("-").isdigit() else (1, s))
    if len(names) < 2:
        raise DataError(
            f"{source or 'the training data'}: {len(names)} distinct label(s) {names} in the training rows; a classifier "
            "needs at least two. Add rows of another class, or point data.train_file at the full training file."
        )
    return list(given) if given else names


def map_integer_labels(label: str, names: list[str]) -> str:
    """An integer label indexes ``names`` when it is not itself a name (data.labels given)."""
    if label in names or not label.lstrip("-").isdigit():
        return label
    index = int(label)
    return names[index] if 0 <= index < len(names) else label


def map_integer_label_column(labels: Sequence[str | list[str]], names: list[str]) -> list[str | list[str]]:
    """:func:`map_integer_labels` over a label column (single labels, or lists for multi-label).

    Label names that are integers themselves (star ratings 1-5, or "1", "2", "10") leave every label a name: a "0"
    is then an unknown label, not the id of the first one. A run whose names are "0.0" and "1.0" (trained before such
    labels were read as "0" and "1") has a "1" read as its "1.0".
    """
    older = {whole_number_text(name): name for name in names if whole_number_text(name) != name}
    if older:  # a run trained before "1.0" read as "1" keeps its label names
        labels = [[older.get(x, x) for x in label] if isinstance(label, list) else older.get(label, label) for label in labels]
    if any(name.lstrip("-").isdigit() for name in names):
        return list(labels)
    return [
        [map_integer_labels(x, names) for x in label] if isinstance(label, list) else map_integer_labels(label, names)
        for label in labels
    ]


#: where the known label names come from -> what the message says of them, and its fix
KNOWN_FROM = {
    "training": ("was not seen in the training data", "Fix the label, or list every label in data.labels."),
    "data.labels": ("is not in data.labels", "Add it to data.labels, or fix the row."),
    "run": ("is not one of the labels the run was trained on", "Fix the label, or score with a run trained on it."),
}


def check_known_labels(
    labels: Sequence[str | list[str]], lines: Sequence[int], names: list[str], path: str, *, known_from: str = "training"
) -> None:
    """Raise on the first label not in ``names``, naming ``path:line``; ``known_from`` is a key of :data:`KNOWN_FROM`."""
    known = set(names)
    problem, fix = KNOWN_FROM[known_from]
    for label, line in zip(labels, lines, strict=True):
        for item in label if isinstance(label, list) else [label]:
            if item not in known:
                preview = ", ".join(names[:12]) + (" ..." if len(names) > 12 else "")
                raise DataError(f"{path}:{line}: label '{item}' {problem} ({preview}). {fix}")
