"""Metrics per slice of the scored rows: by length, by gold label, by a column of the user's data.

Overall accuracy can hide a slice where the model fails: long texts, a rare label, one source or dialect. Each
slicing splits the rows into named slices and reports the count and accuracy of each; the worst slice is the one
with the lowest accuracy among slices of at least ``min_rows`` rows (smaller ones are listed, not ranked).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

#: slices smaller than this are reported but never named the worst
MIN_ROWS = 10


def length_buckets(texts: Sequence[str], quantiles: Sequence[float] = (25, 50, 75)) -> list[str]:
    """Each text's length bucket in words (``1-7 words``), cut at the quantiles of the texts' word counts."""
    counts = np.asarray([len(t.split()) for t in texts])
    if len(counts) == 0:
        return []
    edges = sorted({int(e) for e in np.percentile(counts, list(quantiles))} | {int(counts.max())})
    lows = [int(counts.min())] + [e + 1 for e in edges[:-1]]
    names = [f"{low}-{high} words" if low < high else f"{low} words" for low, high in zip(lows, edges, strict=True)]
    return [names[int(np.searchsorted(edges, c))] for c in counts]


def slice_table(correct: np.ndarray, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Count and accuracy of each slice named in ``keys`` (one key per row); numbered slices in numeric order."""
    correct = np.asarray(correct, dtype=bool)
    table: dict[str, dict[str, Any]] = {}
    for key in sorted(set(keys), key=_natural):
        mask = np.asarray([k == key for k in keys])
        table[str(key)] = {"count": int(mask.sum()), "accuracy": float(correct[mask].mean())}
    return table


def _natural(key: str) -> tuple[int, str]:
    """Sort ``9 words`` before ``10-12 words``; other names alphabetically."""
    match = re.match(r"\d+", key)
    return (int(match.group()) if match else -1, key)


def slice_report(
    correct: np.ndarray,
    slicings: dict[str, Sequence[str]],
    *,
    min_rows: int = MIN_ROWS,
    pairs: dict[str, tuple[Sequence[str], np.ndarray]] | None = None,
) -> dict[str, Any]:
    """Tables per slicing (``length``, ``label``, a column name) and the worst slice of them all.

    ``slicings`` give each row's slice, scored by ``correct``. ``pairs`` are slicings with their own
    ``(keys, correct)`` items, where one row may count in several slices (a multi-label row under each of its gold
    labels, found or not: the label's recall); one named like a slicing takes its place. The overall accuracy is
    that of ``correct``.
    """
    correct = np.asarray(correct, dtype=bool)
    pairs = {name: ([str(k) for k in keys], np.asarray(found, dtype=bool)) for name, (keys, found) in (pairs or {}).items()}
    rows = {name: ([str(k) for k in keys], correct) for name, keys in slicings.items()}
    by = {name: slice_table(found, keys) for name, (keys, found) in {**rows, **pairs}.items()}
    ranked = [
        (row["accuracy"], slicing, name, row["count"])
        for slicing, table in by.items()
        for name, row in table.items()
        if row["count"] >= min_rows
    ]
    overall = float(correct.mean()) if len(correct) else None
    worst = None
    if ranked:
        accuracy, slicing, name, count = min(ranked, key=lambda r: (r[0], -r[3]))
        worst = {"slicing": slicing, "slice": name, "accuracy": accuracy, "count": count, "gap": accuracy - (overall or 0.0)}
    return {"accuracy": overall, "rows": len(correct), "min_rows": min_rows, "by": by, "worst": worst}
