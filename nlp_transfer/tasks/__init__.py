"""Task builders: label schema, preprocessing, collator, model head, loss, metrics, post-processing."""

from nlp_transfer.tasks.classification import (
    SequenceClassificationTask,
    balanced_class_weights,
    build_classification_task,
)

__all__ = ["SequenceClassificationTask", "balanced_class_weights", "build_classification_task"]
