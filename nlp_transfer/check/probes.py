"""Behavioural tests, bias and slices of a saved run: the seams built from the run, and the report sections.

:func:`run_classifier` and :func:`run_tagger` wrap a loaded model in the ``texts -> probabilities`` and
``texts -> entities`` seams of :mod:`nlp_transfer.check.behaviour`; everything after them sees only the seam.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nlp_transfer.check.behaviour import Classifier, Tagger
from nlp_transfer.check.suite import Suite, load_suite
from nlp_transfer.config import DataConfig
from nlp_transfer.errors import UserError

#: shipped suites run on every check of a classification run / a NER run
DEFAULT_SUITES = {"classification": ("any", "sentiment"), "ner": ("ner",)}


def run_classifier(model: Any, task: Any, *, temperature: float = 1.0, batch_size: int = 64) -> Classifier:
    """The run as ``texts -> probabilities``: softmax of logits / temperature (sigmoid for multi-label runs).

    A multi-label run's classifier carries its threshold, so the tests judge the label set ``predict`` gives.
    """
    from nlp_transfer.inference import text_logits

    def probabilities(texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, len(task.labels)))
        logits = text_logits(model, task, texts, batch_size=batch_size).astype(np.float64)
        if task.multi_label:
            return 1.0 / (1.0 + np.exp(-logits))
        z = logits / temperature
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    return Classifier(list(task.labels), probabilities, float(task.threshold) if task.multi_label else None)


def run_tagger(model: Any, task: Any, *, batch_size: int = 64) -> Tagger:
    """The NER run as ``texts -> entities``."""
    from nlp_transfer.inference import predict_texts

    def entities(texts: list[str]) -> list[list[dict[str, Any]]]:
        return [row["entities"] for row in predict_texts(model, task, texts, batch_size=batch_size)]

    return Tagger(entities)


def load_suites(kind: str, extra: Sequence[str] = ()) -> list[Suite]:
    """The shipped suites for a ``classification`` or ``ner`` run, then the user's (``--suite NAME|FILE``)."""
    names = list(DEFAULT_SUITES[kind]) + [s for s in extra if s not in DEFAULT_SUITES[kind]]
    suites = [load_suite(name) for name in names]
    seen: dict[str, str] = {}
    for suite in suites:
        for test in suite.tests:
            if test.name in seen:
                raise UserError(f"{suite.source}: test '{test.name}' is also in {seen[test.name]}; rename one of them.")
            seen[test.name] = suite.source
    return suites


def slice_column_values(path: str, data: DataConfig, column: str, lines: Sequence[int]) -> list[str]:
    """The ``column`` of a data file for the rows starting on ``lines`` (how the scored rows are numbered)."""
    from nlp_transfer.data.readers import infer_format, read_records

    records = read_records(
        path, format=infer_format(path, data.format), delimiter=data.delimiter, header=data.header, encoding=data.encoding
    )
    if column not in records[0].fields:
        raise UserError(
            f"--slice-column {column}: {path} has no such column; its columns are {', '.join(map(str, records[0].fields))}."
        )
    by_line = {r.line: r.fields.get(column) for r in records}
    return [str(by_line.get(line, "")) for line in lines]


def slice_source(run_dir: Path, data_path: str | None, data: DataConfig | None, column: str) -> tuple[str, DataConfig]:
    """The file the scored rows come from (``--data``, else the run's test file), its column checked before scoring."""
    if data_path:
        path, options = data_path, data or DataConfig()
    else:
        from nlp_transfer.check.run_calibration import load_run_config

        config = load_run_config(run_dir)
        if not config.data.test_file:
            raise UserError(f"--slice-column {column}: the run has no test file to read the column from; pass --data FILE.")
        path, options = str(config.data.test_file), config.data
    slice_column_values(path, options, column, [])
    return path, options


def row_slices(texts: Sequence[str], label_names: Sequence[str], column: tuple[str, list[str]] | None) -> dict[str, list[str]]:
    """Per slicing, the slice of each row: its length bucket, its gold label, and the user's column."""
    from nlp_transfer.check.slices import length_buckets

    slicings = {"length": length_buckets(texts), "label": list(label_names)}
    if column is not None:
        slicings[f"column:{column[0]}"] = column[1]
    return slicings
