"""Selective prediction (accuracy-coverage curve, thresholds) against hand-built cases."""

import numpy as np
import pytest

from nlp_transfer.check import (
    accuracy_at_coverage,
    accuracy_coverage_curve,
    plot_accuracy_coverage,
    selective_report,
    threshold_for_accuracy,
)
from nlp_transfer.errors import UserError

# given out of order on purpose; by score: .9 right, .8 right, .7 wrong, .6 right
SCORES = np.array([0.7, 0.9, 0.6, 0.8])
CORRECT = np.array([0, 1, 1, 1])

# a tie: by score .9 right, then .8 wrong and .8 right (kept or dropped together), then .5 wrong
TIED_SCORES = np.array([0.8, 0.9, 0.5, 0.8])
TIED_CORRECT = np.array([0, 1, 0, 1])


def test_curve_points_hand_computed():
    coverage, accuracy, threshold = accuracy_coverage_curve(SCORES, CORRECT)
    assert coverage == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert accuracy == pytest.approx([1.0, 1.0, 2 / 3, 0.75])
    assert threshold == pytest.approx([0.9, 0.8, 0.7, 0.6])


def test_curve_keeps_tied_scores_together():
    coverage, accuracy, threshold = accuracy_coverage_curve(TIED_SCORES, TIED_CORRECT.astype(bool))
    assert coverage == pytest.approx([0.25, 0.75, 1.0])
    assert accuracy == pytest.approx([1.0, 2 / 3, 0.5])
    assert threshold == pytest.approx([0.9, 0.8, 0.5])
    # the order of the tied rows does not matter
    swapped = accuracy_coverage_curve(TIED_SCORES[::-1], TIED_CORRECT[::-1])
    assert swapped[1] == pytest.approx(accuracy)


def test_accuracy_at_coverage():
    scores = np.linspace(1.0, 0.1, 10)
    correct = np.array([1, 1, 1, 1, 1, 0, 1, 0, 1, 0])
    assert accuracy_at_coverage(scores, correct, 0.5) == 1.0  # the top half is all right
    assert accuracy_at_coverage(scores, correct, 0.55) == pytest.approx(5 / 6)  # ceil(5.5) = 6 rows
    assert accuracy_at_coverage(scores, correct, 0.05) == 1.0  # at least one row
    assert accuracy_at_coverage(scores, correct, 1.0) == pytest.approx(0.7)
    fifty_five_right = np.array([1] * 55 + [0] * 45)
    # 55 rows, though 0.55 * 100 is 55.00000000000001 in floating point
    assert accuracy_at_coverage(np.linspace(1.0, 0.0, 100), fifty_five_right, 0.55) == 1.0


def test_accuracy_at_coverage_cutting_a_tie_uses_its_mean():
    # 2 rows: the .9 (right) plus one of the two .8 rows (one right, one wrong) -> (1 + 0.5) / 2
    assert accuracy_at_coverage(TIED_SCORES, TIED_CORRECT, 0.5) == pytest.approx(0.75)
    assert accuracy_at_coverage(TIED_SCORES[::-1], TIED_CORRECT[::-1], 0.5) == pytest.approx(0.75)


def test_threshold_for_accuracy():
    assert threshold_for_accuracy(SCORES, CORRECT, 0.9) == pytest.approx(
        {"threshold": 0.8, "coverage": 0.5, "accuracy": 1.0, "rows": 2}
    )
    # accuracy dips to 2/3 at .7 and climbs back to .75 at .6: the lowest threshold that reaches .75 is .6
    assert threshold_for_accuracy(SCORES, CORRECT, 0.75) == pytest.approx(
        {"threshold": 0.6, "coverage": 1.0, "accuracy": 0.75, "rows": 4}
    )
    assert threshold_for_accuracy(SCORES, CORRECT, 0.7) == pytest.approx(
        {"threshold": 0.6, "coverage": 1.0, "accuracy": 0.75, "rows": 4}
    )
    # with the tie, .8 cannot be a threshold that keeps just one of the .8 rows
    assert threshold_for_accuracy(TIED_SCORES, TIED_CORRECT, 0.7) == pytest.approx(
        {"threshold": 0.9, "coverage": 0.25, "accuracy": 1.0, "rows": 1}
    )
    assert threshold_for_accuracy(np.array([0.9, 0.2, 0.4]), np.array([0, 0, 0]), 0.5) is None


def test_selective_report():
    report = selective_report(SCORES, CORRECT)
    assert set(report) == {"accuracy_at_80", "accuracy_at_90", "thresholds", "auc"}
    assert report["accuracy_at_80"] == pytest.approx(0.75)  # ceil(3.2) = 4 rows
    assert report["accuracy_at_90"] == pytest.approx(0.75)
    assert set(report["thresholds"]) == {"0.9", "0.95", "0.99"}
    assert report["thresholds"]["0.99"] == pytest.approx({"threshold": 0.8, "coverage": 0.5, "accuracy": 1.0, "rows": 2})
    assert report["auc"] == pytest.approx((1 + 1 + 2 / 3 + 0.75) / 4)
    # the tie: k = 1..4 keep accuracies 1, (1 + .5) / 2, 2/3, 1/2
    tied = selective_report(TIED_SCORES, TIED_CORRECT, coverages=(0.5,), targets=(1.0,))
    assert tied["accuracy_at_50"] == pytest.approx(0.75)
    assert tied["thresholds"] == {"1": pytest.approx({"threshold": 0.9, "coverage": 0.25, "accuracy": 1.0, "rows": 1})}
    assert tied["auc"] == pytest.approx((1 + 0.75 + 2 / 3 + 0.5) / 4)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: accuracy_coverage_curve(np.array([0.9, 0.8]), np.array([1])), "must match"),
        (lambda: accuracy_coverage_curve(np.array([]), np.array([])), "empty"),
        (lambda: accuracy_coverage_curve(np.zeros((2, 2)), np.zeros((2, 2))), "1-D"),
        (lambda: accuracy_coverage_curve(np.array([0.9, np.nan]), np.array([1, 0])), "NaN"),
        (lambda: accuracy_coverage_curve(np.array([0.9, 0.8]), np.array([1, 2])), "0/1"),
        (lambda: accuracy_at_coverage(SCORES, CORRECT, 0.0), r"\(0, 1\]"),
        (lambda: accuracy_at_coverage(SCORES, CORRECT, 1.5), r"\(0, 1\]"),
        (lambda: threshold_for_accuracy(SCORES, CORRECT, -0.1), r"target must be a number in \(0, 1\]"),
        (lambda: selective_report(SCORES, CORRECT, coverages=(80,)), r"coverage must be a number in \(0, 1\]"),
    ],
)
def test_bad_input_raises_user_error(call, message):
    with pytest.raises(UserError, match=message):
        call()


def test_plot_accuracy_coverage_writes_a_png(tmp_path):
    rng = np.random.default_rng(0)
    scores = rng.random(500)
    correct = rng.random(500) < scores
    path = tmp_path / "plots" / "accuracy_coverage.png"
    plot_accuracy_coverage(scores, correct, path)
    assert path.read_bytes().startswith(b"\x89PNG")


def test_a_printed_threshold_keeps_the_rows_it_claims_and_says_when_they_are_few():
    """0.870363 printed as 0.8704 kept none of the rows it claimed when passed to predict --min-score."""
    from nlp_transfer.check.report_md import threshold_text

    text = threshold_text({"threshold": 0.8703630417, "coverage": 0.01, "accuracy": 1.0, "rows": 2})
    assert text.startswith("score >= 0.870363 keeps 1.0% (2 rows): too few rows to rely on")
    assert (
        threshold_text({"threshold": 0.5, "coverage": 0.9, "accuracy": 0.95, "rows": 900})
        == "score >= 0.500000 keeps 90.0% (900 rows)"
    )
    assert threshold_text(None) == "not reached at any coverage"


def test_the_report_reads_the_measured_ece_against_its_noise_floor_and_flags_a_temperature_that_hurts():
    from nlp_transfer.check.report_md import calibration_markdown

    def report(ece, after, p95):
        calibration = {"ece": ece, "ece_after_temperature": after, "temperature": 0.5, "accuracy": 0.8}
        calibration["ece_noise_floor"] = {"median": p95 / 2, "p95": p95}
        selective = {"accuracy_at_80": 0.9, "accuracy_at_90": 0.85, "thresholds": {}}
        return {"calibration": calibration, "selective": selective, "fitted_on": "v", "scored_on": "t", "same_rows": False}

    inside = "\n".join(calibration_markdown(report(0.05, 0.03, 0.04)))
    assert "0.0300, is inside it: sampling alone can explain it" in inside and "made the scores worse" not in inside
    above = "\n".join(calibration_markdown(report(0.07, 0.28, 0.10)))  # the planted fault: T raised ECE past the floor
    assert "0.2800, is above it: a miscalibration these rows can show" in above
    assert "**The temperature made the scores worse here** (ECE 0.0700 -> 0.2800)" in above


def test_a_multi_label_runs_thresholds_count_label_decisions_and_say_predict_reads_another_score():
    """'keeps 20.0% (36 rows)' of 60 texts: the 36 were label decisions, and --min-score kept 4 texts at 0.67 accuracy."""
    from nlp_transfer.check.report_md import calibration_markdown
    from nlp_transfer.check.run_calibration import Scored, multi_label_figures

    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (60, 3))
    labels = (rng.random((60, 3)) < 1 / (1 + np.exp(-logits))).astype(np.int64)
    calibration, selective, _ = multi_label_figures(Scored(logits, labels, "v"), Scored(logits, labels, "t"), bins=10)
    assert selective["unit"] == "label decision"
    report = {"calibration": calibration, "selective": selective, "fitted_on": "v", "scored_on": "t", "same_rows": False}
    text = "\n".join(calibration_markdown(report))
    assert "Accuracy per label decision" in text and "do not carry over to it" in text
    assert " rows)" not in text and "label decisions)" in text
