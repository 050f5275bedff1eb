"""Checks of a trained model before shipping it: calibration, selective prediction, ...

:mod:`~nlp_transfer.check.calibration` measures whether the model's probabilities can be taken at face
value (expected calibration error, Brier score, reliability diagram) and fits temperature scaling to
repair them; :mod:`~nlp_transfer.check.selective` measures what abstaining on low-confidence rows buys
(the accuracy-coverage curve and the score threshold that reaches a target accuracy).
"""

from nlp_transfer.check.calibration import (
    brier_score,
    calibration_report,
    expected_calibration_error,
    expected_calibration_error_multilabel,
    fit_temperature,
    fit_temperature_multilabel,
    plot_reliability,
    reliability_bins,
    softmax_with_temperature,
)
from nlp_transfer.check.selective import (
    accuracy_at_coverage,
    accuracy_coverage_curve,
    plot_accuracy_coverage,
    selective_report,
    threshold_for_accuracy,
)

__all__ = [
    "accuracy_at_coverage",
    "accuracy_coverage_curve",
    "brier_score",
    "calibration_report",
    "expected_calibration_error",
    "expected_calibration_error_multilabel",
    "fit_temperature",
    "fit_temperature_multilabel",
    "plot_accuracy_coverage",
    "plot_reliability",
    "reliability_bins",
    "selective_report",
    "softmax_with_temperature",
    "threshold_for_accuracy",
]
