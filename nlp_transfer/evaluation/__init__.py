"""Metrics (offline `evaluate` modules), reports and plots."""

from nlp_transfer.evaluation.metrics import classification_metrics, entity_metrics, load_metric, scalar_metrics
from nlp_transfer.evaluation.plots import save_confusion_matrix

__all__ = ["classification_metrics", "entity_metrics", "load_metric", "save_confusion_matrix", "scalar_metrics"]
