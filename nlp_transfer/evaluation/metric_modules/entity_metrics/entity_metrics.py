"""An `evaluate` metric module for entity-level tagging metrics (seqeval) that works offline.

Load it with ``evaluate.load(<this folder>)``; references are IOB2 tag sequences, predictions the tags as a tagger
predicted them: they are scored as a run scores them (an I-X that does not continue an X entity starts one).
"""

import datasets
import evaluate

from nlp_transfer.evaluation.scores import entity_scores, repaired_iob2

_DESCRIPTION = """Entity-level precision, recall and F1 (micro and macro) with a per-type report, and token
accuracy, computed by seqeval in strict IOB2 mode: an entity counts only when its type and its exact
span match."""

_KWARGS = """
Args:
    predictions: list of sentences, each a list of predicted tags (an I-X after O or another type starts an entity).
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
        return entity_scores([repaired_iob2(tags) for tags in predictions], references, raw=predictions)
