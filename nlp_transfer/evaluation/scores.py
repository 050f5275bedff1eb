"""The metric arithmetic itself: scikit-learn for classification, seqeval for entities.

Training, ``evaluate`` and ``predict`` call these functions directly, so a run never imports the
``evaluate`` library (whose import also loads ``transformers.pipelines``: seconds per process). The
packaged ``evaluate`` modules in ``metric_modules/`` wrap the same functions for users who want
``evaluate.load(...)``; a test keeps the two in agreement.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def _per_average(y_true: np.ndarray, y_pred: np.ndarray, ids: list[int]) -> dict[str, float]:
    from sklearn.metrics import precision_recall_fscore_support

    result = {}
    for average in ("micro", "macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=ids, average=average, zero_division=0)
        result.update({f"precision_{average}": float(p), f"recall_{average}": float(r), f"f1_{average}": float(f)})
    return result


def _per_class(y_true: np.ndarray, y_pred: np.ndarray, ids: list[int], names: list[str]) -> dict[str, dict[str, Any]]:
    from sklearn.metrics import precision_recall_fscore_support

    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=ids, average=None, zero_division=0)
    return {
        name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
        for i, name in enumerate(names)
    }


def classification_scores(
    predictions: Any,
    references: Any,
    *,
    multi_label: bool = False,
    label_names: Sequence[str] | None = None,
    prediction_scores: Any = None,
) -> dict[str, Any]:
    """Accuracy (or subset accuracy and Hamming loss), micro/macro/weighted P/R/F1, a per-class report.

    ``predictions``/``references``: class ids, or multi-hot 0/1 rows when ``multi_label``. Single-label results
    add a confusion matrix and, for two classes with ``prediction_scores`` (one probability row per example)
    and both classes present, ROC-AUC. Classes absent from both sides still count in the macro averages.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, hamming_loss, roc_auc_score

    y_pred, y_true = np.asarray(predictions), np.asarray(references)
    if multi_label:
        n_labels = y_true.shape[1]
    else:
        n_labels = len(label_names) if label_names else int(max(y_true.max(), y_pred.max())) + 1
    names = list(label_names) if label_names else [str(i) for i in range(n_labels)]
    ids = list(range(n_labels))
    result: dict[str, Any] = _per_average(y_true, y_pred, ids)
    result["per_class"] = _per_class(y_true, y_pred, ids, names)
    if multi_label:
        result["subset_accuracy"] = float(accuracy_score(y_true, y_pred))
        result["hamming_loss"] = float(hamming_loss(y_true, y_pred))
        return result
    result["accuracy"] = float(accuracy_score(y_true, y_pred))
    result["confusion_matrix"] = {"labels": names, "matrix": confusion_matrix(y_true, y_pred, labels=ids).tolist()}
    if prediction_scores is not None and n_labels == 2 and len(set(y_true.tolist())) == 2:
        result["roc_auc"] = float(roc_auc_score(y_true, np.asarray(prediction_scores)[:, 1]))
    return result


def repaired_iob2(tags: Sequence[str]) -> list[str]:
    """Predicted tags made valid IOB2, as a run scores them: an I-X that does not continue an X entity starts one."""
    fixed, previous = [], "O"
    for tag in tags:
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            tag = "B-" + tag[2:]
        fixed.append(tag)
        previous = tag
    return fixed


def entity_scores(
    predictions: Sequence[Sequence[str]], references: Sequence[Sequence[str]], raw: Sequence[Sequence[str]] | None = None
) -> dict[str, Any]:
    """seqeval's strict IOB2 entity scores: micro P/R/F1, macro P/R/F1, token accuracy and a per-type report.

    An entity counts only when its type and its exact span match. ``raw``: the tags as predicted, before an I- that
    begins an entity was read as B- (``predictions``); token accuracy counts the words whose raw tag is right, as
    conlleval does (default: ``predictions``).
    """
    from seqeval.metrics import accuracy_score, classification_report
    from seqeval.scheme import IOB2

    predictions, references = [list(p) for p in predictions], [list(r) for r in references]
    report = classification_report(references, predictions, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
    micro, macro = report.pop("micro avg"), report.pop("macro avg")
    report.pop("weighted avg", None)
    return {
        "precision": float(micro["precision"]),
        "recall": float(micro["recall"]),
        "f1": float(micro["f1-score"]),
        "f1_macro": float(macro["f1-score"]),
        "precision_macro": float(macro["precision"]),
        "recall_macro": float(macro["recall"]),
        "accuracy": float(accuracy_score(references, [list(p) for p in raw] if raw is not None else predictions)),
        "per_type": {
            kind: {
                "precision": float(v["precision"]),
                "recall": float(v["recall"]),
                "f1": float(v["f1-score"]),
                "support": int(v["support"]),
            }
            for kind, v in sorted(report.items())
        },
    }
