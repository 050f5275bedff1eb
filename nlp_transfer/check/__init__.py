"""Checks of a trained model before shipping it: calibration, selective prediction, behaviour, bias, slices.

:mod:`~nlp_transfer.check.calibration` measures whether the model's probabilities can be taken at face
value (expected calibration error, Brier score, reliability diagram) and fits temperature scaling to
repair them; :mod:`~nlp_transfer.check.selective` measures what abstaining on low-confidence rows buys
(the accuracy-coverage curve and the score threshold that reaches a target accuracy);
:mod:`~nlp_transfer.check.behaviour` runs templated test suites (:mod:`~nlp_transfer.check.suite`) against any
``texts -> probabilities`` function, :mod:`~nlp_transfer.check.bias` measures counterfactual name, pronoun and
group-term swaps with bootstrap intervals, and :mod:`~nlp_transfer.check.slices` reports accuracy per slice.
"""

from nlp_transfer.check.behaviour import Classifier, Tagger, run_suites
from nlp_transfer.check.bias import bias_report, bootstrap_interval, load_bias_suite
from nlp_transfer.check.calibration import (
    CALIBRATORS,
    apply_top_label_map,
    brier_score,
    calibration_report,
    cross_fitted_confidences,
    ece_noise_floor,
    expected_calibration_error,
    expected_calibration_error_multilabel,
    fit_temperature,
    fit_temperature_multilabel,
    fit_top_label_map,
    plot_reliability,
    reliability_bins,
    softmax_with_temperature,
    top_label_ece,
)
from nlp_transfer.check.selective import (
    accuracy_at_coverage,
    accuracy_coverage_curve,
    plot_accuracy_coverage,
    selective_report,
    threshold_for_accuracy,
)
from nlp_transfer.check.slices import slice_report
from nlp_transfer.check.suite import load_suite

__all__ = [
    "CALIBRATORS",
    "Classifier",
    "Tagger",
    "accuracy_at_coverage",
    "accuracy_coverage_curve",
    "apply_top_label_map",
    "bias_report",
    "bootstrap_interval",
    "brier_score",
    "calibration_report",
    "cross_fitted_confidences",
    "ece_noise_floor",
    "expected_calibration_error",
    "expected_calibration_error_multilabel",
    "fit_temperature",
    "fit_temperature_multilabel",
    "fit_top_label_map",
    "load_bias_suite",
    "load_suite",
    "plot_accuracy_coverage",
    "plot_reliability",
    "reliability_bins",
    "run_suites",
    "selective_report",
    "slice_report",
    "softmax_with_temperature",
    "threshold_for_accuracy",
    "top_label_ece",
]
