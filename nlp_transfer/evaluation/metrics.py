"""Metrics through `evaluate`'s interface, from metric modules shipped inside this package.

`evaluate.load("accuracy")` fetches its script from the Hub; these modules load from a local path
and work offline.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import evaluate
import numpy as np

MODULES_DIR = Path(__file__).parent / "metric_modules"


@functools.cache
def load_metric(name: str, config_name: str | None = None) -> evaluate.EvaluationModule:
    """Load one of the packaged metric modules (``classification_metrics``, ``entity_metrics``)."""
    return evaluate.load(str(MODULES_DIR / name), config_name=config_name)


def classification_metrics(
    predictions: np.ndarray,
    references: np.ndarray,
    *,
    label_names: Sequence[str],
    multi_label: bool = False,
    prediction_scores: np.ndarray | None = None,
) -> dict[str, Any]:
    """Accuracy, F1, precision, recall, per-class report, confusion matrix (and ROC-AUC for binary)."""
    metric = load_metric("classification_metrics", "multilabel" if multi_label else "multiclass")
    kwargs: dict[str, Any] = {"label_names": list(label_names)}
    if prediction_scores is not None:
        kwargs["prediction_scores"] = np.asarray(prediction_scores).tolist()
    return metric.compute(predictions=np.asarray(predictions).tolist(), references=np.asarray(references).tolist(), **kwargs)


def entity_metrics(predictions: Sequence[Sequence[str]], references: Sequence[Sequence[str]]) -> dict[str, Any]:
    """Entity-level precision, recall, F1 (micro and macro), a per-type report and token accuracy (seqeval)."""
    metric = load_metric("entity_metrics")
    return metric.compute(predictions=[list(p) for p in predictions], references=[list(r) for r in references])


def scalar_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """Only the numbers of a metrics dict (for logs and progress lines)."""
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
