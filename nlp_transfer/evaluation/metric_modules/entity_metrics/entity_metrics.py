"""An `evaluate` metric module for entity-level tagging metrics (seqeval) that works offline.

Load it with ``evaluate.load(<this folder>)``; predictions and references are IOB2 tag sequences.
"""

import datasets
import evaluate
from seqeval.metrics import accuracy_score, classification_report
from seqeval.scheme import IOB2

_DESCRIPTION = """Entity-level precision, recall and F1 (micro and macro) with a per-type report, and token
accuracy, computed by seqeval in strict IOB2 mode: an entity counts only when its type and its exact
span match."""

_KWARGS = """
Args:
    predictions: list of sentences, each a list of IOB2 tags.
    references: list of sentences, each a list of IOB2 tags.
"""


class EntityMetrics(evaluate.Metric):
    """seqeval's strict entity-level metrics."""

    def _info(self):
        features = datasets.Features(
            {"predictions": datasets.Sequence(datasets.Value("string")), "references": datasets.Sequence(datasets.Value("string"))}
        )
        return evaluate.MetricInfo(description=_DESCRIPTION, citation="", inputs_description=_KWARGS, features=features)

    def _compute(self, predictions, references):
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
            "accuracy": float(accuracy_score(references, predictions)),
            "per_type": {
                kind: {"precision": float(v["precision"]), "recall": float(v["recall"]), "f1": float(v["f1-score"]), "support": int(v["support"])}
                for kind, v in sorted(report.items())
            },
        }
