"""An `evaluate` metric module for single- and multi-label classification that works offline.

Load it with ``evaluate.load(<this folder>, config_name="multiclass" | "multilabel")``.
`evaluate` copies it into its module cache, so it imports the arithmetic from the installed package
(``nlp_transfer.evaluation.scores``), which runs call directly without importing `evaluate`.
"""

import datasets
import evaluate

from nlp_transfer.evaluation.scores import classification_scores

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
        return classification_scores(
            predictions,
            references,
            multi_label=self.config_name == "multilabel",
            label_names=label_names,
            prediction_scores=prediction_scores,
        )
