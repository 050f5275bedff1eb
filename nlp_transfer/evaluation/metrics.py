"""The metrics of a run: classification and entity scores, and the packaged `evaluate` modules.

Runs call the arithmetic of :mod:`nlp_transfer.evaluation.scores` directly. :func:`load_metric` gives the same
scores through `evaluate`'s interface (``evaluate.load("accuracy")`` fetches its script from the Hub; these
modules load from a local path and work offline); `evaluate` is imported only there.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nlp_transfer.evaluation.scores import classification_scores, entity_scores

MODULES_DIR = Path(__file__).parent / "metric_modules"


@functools.cache
def load_metric(name: str, config_name: str | None = None) -> Any:
    """Load one of the packaged `evaluate` modules (``classification_metrics``, ``entity_metrics``)."""
    import evaluate

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
    return classification_scores(
        np.asarray(predictions),
        np.asarray(references),
        multi_label=multi_label,
        label_names=list(label_names),
        prediction_scores=prediction_scores,
    )


def entity_metrics(
    predictions: Sequence[Sequence[str]], references: Sequence[Sequence[str]], raw: Sequence[Sequence[str]] | None = None
) -> dict[str, Any]:
    """Entity-level precision, recall, F1 (micro and macro), a per-type report and token accuracy (seqeval); ``raw``:
    the predicted tags before repair, which token accuracy counts (see :func:`entity_scores`)."""
    return entity_scores(predictions, references, raw)


#: a metric whose name is one of these, or ends in ``_`` and one of these, goes down as a model improves
LOWER_IS_BETTER = ("loss", "error", "mse", "mae", "rmse", "ece", "brier", "perplexity")


def lower_is_better(metric_name: str) -> bool:
    """Whether a lower ``metric_name`` is better: ``loss``, ``hamming_loss``, ``mse``, ``mean_absolute_error``, ...
    (:data:`LOWER_IS_BETTER`); every other metric is better higher."""
    return any(metric_name == end or metric_name.endswith(f"_{end}") for end in LOWER_IS_BETTER)


def scalar_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """Only the numbers of a metrics dict (for logs and progress lines)."""
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
