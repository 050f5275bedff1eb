"""An `evaluate` metric module for single- and multi-label classification that works offline.

Load it with ``evaluate.load(<this folder>, config_name="multiclass" | "multilabel")``.
It is self-contained (scikit-learn only), because `evaluate` copies it into its module cache.
"""

import datasets
import evaluate
import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    hamming_loss,
    precision_recall_fscore_support,
    roc_auc_score,
)

_DESCRIPTION = """Accuracy, micro/macro/weighted F1, precision and recall, a per-class report and a confusion
matrix for single-label classification (ROC-AUC too when the task is binary and scores are given);
micro/macro F1, precision, recall, subset accuracy and Hamming loss for multi-label classification."""

_KWARGS = """
Args:
    predictions: predicted class ids (multiclass) or multi-hot 0/1 rows (multilabel).
    references: gold class ids or multi-hot 0/1 rows.
    label_names: optional names in id order, used as keys of the per-class report.
    prediction_scores: optional probabilities, one row per example; for binary ROC-AUC.
"""


class ClassificationMetrics(evaluate.Metric):
    """Classification metrics computed with scikit-learn."""

    def _info(self):
        if self.config_name == "multilabel":
            features = datasets.Features(
                {"predictions": datasets.Sequence(datasets.Value("int32")), "references": datasets.Sequence(datasets.Value("int32"))}
            )
        else:
            features = datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")})
        return evaluate.MetricInfo(description=_DESCRIPTION, citation="", inputs_description=_KWARGS, features=features)

    def _compute(self, predictions, references, label_names=None, prediction_scores=None):
        y_pred, y_true = np.asarray(predictions), np.asarray(references)
        if self.config_name == "multilabel":
            n_labels = y_true.shape[1]
        else:
            n_labels = len(label_names) if label_names else int(max(y_true.max(), y_pred.max())) + 1
        names = list(label_names) if label_names else [str(i) for i in range(n_labels)]
        ids = list(range(n_labels))
        result = {}
        for average in ("micro", "macro", "weighted"):
            p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=ids, average=average, zero_division=0)
            result[f"precision_{average}"] = float(p)
            result[f"recall_{average}"] = float(r)
            result[f"f1_{average}"] = float(f)
        p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=ids, average=None, zero_division=0)
        result["per_class"] = {
            name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
            for i, name in enumerate(names)
        }
        if self.config_name == "multilabel":
            result["subset_accuracy"] = float(accuracy_score(y_true, y_pred))
            result["hamming_loss"] = float(hamming_loss(y_true, y_pred))
            return result
        result["accuracy"] = float(accuracy_score(y_true, y_pred))
        result["confusion_matrix"] = {"labels": names, "matrix": confusion_matrix(y_true, y_pred, labels=ids).tolist()}
        if prediction_scores is not None and n_labels == 2 and len(set(y_true.tolist())) == 2:
            scores = np.asarray(prediction_scores)
            result["roc_auc"] = float(roc_auc_score(y_true, scores[:, 1]))
        # f1_score with labels= keeps absent classes in the macro average, like the report above
        result["f1_macro"] = float(f1_score(y_true, y_pred, labels=ids, average="macro", zero_division=0))
        return result
