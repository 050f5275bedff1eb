"""Calibration checks (ECE, Brier, temperature scaling) against hand-computed values and planted faults."""

import numpy as np
import pytest
from scipy.special import expit, logit, softmax

from nlp_transfer.check import (
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
from nlp_transfer.errors import UserError


def _rows(probability_row, count):
    return np.tile(np.asarray(probability_row, dtype=float), (count, 1))


def test_ece_is_zero_when_confidence_equals_accuracy_in_every_bin():
    # bin of confidence 0.75: 3 of 4 right; confidence 0.6: 3 of 5 right; confidence 1.0: 2 of 2 right
    probs = np.vstack([_rows([0.75, 0.25, 0.0], 4), _rows([0.3, 0.6, 0.1], 5), _rows([0.0, 0.0, 1.0], 2)])
    labels = np.concatenate([[0, 0, 0, 1], [1, 1, 1, 0, 2], [2, 2]])
    assert expected_calibration_error(probs, labels) == pytest.approx(0.0, abs=1e-12)
    labels[3] = 0  # now 4 of 4 right at confidence 0.75: a gap of 0.25 on 4 of 11 rows
    assert expected_calibration_error(probs, labels) == pytest.approx(4 / 11 * 0.25)


def test_ece_and_reliability_bins_hand_computed():
    # 4 bins: (0, .25], (.25, .5], (.5, .75], (.75, 1]
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.4, 0.6], [0.55, 0.45]])
    labels = np.array([0, 0, 0, 1, 1])  # right, wrong, right, right, wrong
    # top bin: confidences .9 .8, 1 of 2 right -> 2/5 * |0.5 - 0.85| = 0.14
    # middle bin: confidences .7 .6 .55, 2 of 3 right -> 3/5 * |2/3 - 0.6166...| = 0.03
    assert expected_calibration_error(probs, labels, bins=4) == pytest.approx(0.17)
    bins = reliability_bins(probs, labels, bins=4)
    assert [(b["lower"], b["upper"], b["count"]) for b in bins] == [(0.5, 0.75, 3), (0.75, 1.0, 2)]
    assert bins[0]["accuracy"] == pytest.approx(2 / 3)
    assert bins[0]["confidence"] == pytest.approx((0.7 + 0.6 + 0.55) / 3)
    assert bins[1]["accuracy"] == pytest.approx(0.5)
    # a confidence on an edge belongs to the bin it closes: 0.75 goes to (.5, .75]
    edge = reliability_bins(np.array([[0.75, 0.25]]), np.array([0]), bins=4)
    assert (edge[0]["lower"], edge[0]["upper"]) == (0.5, 0.75)


def test_brier_score_hand_computed():
    probs = np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3]])
    labels = np.array([0, 2])
    # row 1: .3^2 + .2^2 + .1^2 = 0.14 ; row 2: .2^2 + .5^2 + .7^2 = 0.78
    assert brier_score(probs, labels) == pytest.approx((0.14 + 0.78) / 2)


def test_softmax_with_temperature_is_stable_and_scales():
    probs = softmax_with_temperature(np.array([[1000.0, 0.0], [np.log(4.0), 0.0]]), 2.0)
    assert probs.dtype == np.float64
    assert probs[0] == pytest.approx([1.0, 0.0])
    assert probs[1] == pytest.approx([2 / 3, 1 / 3])  # softmax([log 2, 0])


def test_calibration_report_hand_computed():
    logits = np.log(np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3]]))
    report = calibration_report(logits, np.array([0, 2]), bins=10)
    assert report["nll"] == pytest.approx(-(np.log(0.7) + np.log(0.3)) / 2)
    assert report["brier"] == pytest.approx(0.46)
    assert report["accuracy"] == pytest.approx(0.5)
    # each row alone in its bin: right at confidence 0.7 (gap 0.3), wrong at 0.5 (gap 0.5), half the rows each
    assert report["ece"] == pytest.approx(0.4)
    assert sum(b["count"] for b in report["bins"]) == 2


def _sampled_multiclass(seed=0, rows=20_000, classes=5):
    """Logits z and labels drawn from softmax(z): the model z is calibrated by construction."""
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=2.0, size=(rows, classes))
    cumulative = np.cumsum(softmax(z, axis=1), axis=1)
    labels = (rng.random((rows, 1)) > cumulative).sum(axis=1)
    return z, np.minimum(labels, classes - 1)


def test_fit_temperature_recovers_overconfidence_and_lowers_ece():
    z, labels = _sampled_multiclass()
    overconfident = 3.0 * z
    temperature = fit_temperature(overconfident, labels)
    assert temperature == pytest.approx(3.0, rel=0.10)
    before = expected_calibration_error(softmax_with_temperature(overconfident, 1.0), labels)
    after = expected_calibration_error(softmax_with_temperature(overconfident, temperature), labels)
    assert after < before / 2
    assert calibration_report(overconfident, labels, temperature=temperature)["ece"] == pytest.approx(after)


def test_fit_temperature_leaves_a_calibrated_model_alone():
    z, labels = _sampled_multiclass(seed=1)
    assert fit_temperature(z, labels) == pytest.approx(1.0, rel=0.05)


def _sampled_multilabel(seed=0, rows=4_000, labels=5):
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=2.0, size=(rows, labels))
    return z, (rng.random(z.shape) < expit(z)).astype(int)


def test_multilabel_ece_hand_computed():
    # p = 0.75 predicts 1 with confidence .75 (3 of 4 are 1); p = 0.25 predicts 0 with confidence .75 (3 of 4 are 0)
    probs = np.array([[0.75, 0.25], [0.75, 0.25], [0.75, 0.25], [0.75, 0.25]])
    labels = np.array([[1, 0], [1, 0], [1, 1], [0, 0]])
    assert expected_calibration_error_multilabel(probs, labels) == pytest.approx(0.0, abs=1e-12)
    labels = np.array([[1, 0], [1, 0], [1, 0], [1, 0]])  # all 8 decisions right at confidence .75
    assert expected_calibration_error_multilabel(probs, labels) == pytest.approx(0.25)


def test_fit_temperature_multilabel_recovers_overconfidence():
    z, labels = _sampled_multilabel()
    temperature = fit_temperature_multilabel(3.0 * z, labels)
    assert temperature == pytest.approx(3.0, rel=0.10)
    before = expected_calibration_error_multilabel(expit(3.0 * z), labels)
    after = expected_calibration_error_multilabel(expit(3.0 * z / temperature), labels)
    assert after < before / 2
    z, labels = _sampled_multilabel(seed=1)
    assert fit_temperature_multilabel(z, labels) == pytest.approx(1.0, rel=0.10)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: expected_calibration_error(np.full((3, 2), 0.5), np.array([0, 1])), "must match"),
        (lambda: expected_calibration_error(np.zeros((0, 2)), np.zeros(0, dtype=int)), "empty"),
        (lambda: expected_calibration_error(np.array([0.5, 0.5]), np.array([0])), "2-D"),
        (lambda: brier_score(np.full((2, 2), 0.5), np.array([0, 2])), "0..1"),
        (lambda: brier_score(np.full((2, 2), 0.5), np.array([0, -1])), "0..1"),
        (lambda: brier_score(np.array([[2.0, -1.0]]), np.array([0])), "summing to 1"),
        (lambda: expected_calibration_error(np.full((2, 2), 0.5), np.array([0, 1]), bins=0), "bins"),
        (lambda: fit_temperature(np.zeros((2, 3)), np.array([0.5, 1.0])), "integer"),
        (lambda: fit_temperature(np.array([[np.nan, 0.0]]), np.array([0])), "NaN"),
        (lambda: softmax_with_temperature(np.zeros((1, 2)), 0.0), "temperature"),
        (lambda: fit_temperature_multilabel(np.zeros((2, 3)), np.zeros((2, 2))), "must match"),
        (lambda: expected_calibration_error_multilabel(np.full((1, 2), 0.5), np.array([[0, 2]])), "0/1"),
    ],
)
def test_bad_input_raises_user_error(call, message):
    with pytest.raises(UserError, match=message):
        call()


def test_plot_reliability_writes_a_png(tmp_path):
    z, labels = _sampled_multiclass(rows=2_000)
    before = reliability_bins(softmax_with_temperature(3.0 * z, 1.0), labels)
    after = reliability_bins(softmax_with_temperature(3.0 * z, 3.0), labels)
    path = tmp_path / "plots" / "reliability.png"
    plot_reliability(before, after, path, title="over-confident model")
    assert path.read_bytes().startswith(b"\x89PNG")
    plot_reliability(before, None, tmp_path / "before_only.png")
    assert (tmp_path / "before_only.png").stat().st_size > 0


def test_ece_noise_floor_matches_the_known_case_and_separates_a_planted_miscalibration():
    """All confidences 0.5 in one bin: ECE is |mean of n fair coins - 0.5|, about |N(0, sqrt(0.25 / n))|."""
    n = 10_000
    floor = ece_noise_floor(np.full(n, 0.5), samples=400)
    assert floor["median"] == pytest.approx(0.6745 * np.sqrt(0.25 / n), rel=0.1)  # the median of |N(0, s)| is 0.6745 s
    assert ece_noise_floor(np.ones(50))["p95"] == 0.0  # always right and sure of it: no sampling error at all
    rng = np.random.default_rng(3)
    confidence = rng.uniform(0.5, 1.0, size=2_000)
    calibrated = rng.random(confidence.size) < confidence  # right as often as it says
    overconfident = rng.random(confidence.size) < confidence - 0.08  # the planted fault: 8 points too sure

    def two_class(right):
        return np.stack([np.where(right, 1 - confidence, confidence), np.where(right, confidence, 1 - confidence)], 1)

    labels = np.ones(confidence.size, dtype=int)
    floor = ece_noise_floor(confidence)
    assert expected_calibration_error(two_class(calibrated), labels) <= floor["p95"]
    assert expected_calibration_error(two_class(overconfident), labels) > 2 * floor["p95"]
    with pytest.raises(UserError, match="confidences in"):
        ece_noise_floor(np.array([1.2]))


def _bent_confidence_logits(n, classes, seed):
    """Logits whose top-label confidence c is right with probability sigmoid(2.5 logit(c) - 1.2), not c.

    Over-confident in the middle of the range and under-confident near 1: the pattern one temperature cannot repair
    (it moves every confidence the same way). Returns logits and gold class ids.
    """
    rng = np.random.default_rng(seed)
    confidence = rng.uniform(0.3, 0.995, n)
    logits = np.zeros((n, classes))
    top = rng.integers(0, classes, n)
    logits[np.arange(n), top] = np.log(confidence * (classes - 1) / (1 - confidence))  # softmax gives c at `top`
    right = rng.random(n) < expit(2.5 * logit(confidence) - 1.2)
    other = (top + rng.integers(1, classes, n)) % classes
    return logits, np.where(right, top, other)


def test_top_label_map_repairs_what_one_temperature_cannot():
    logits, gold = _bent_confidence_logits(8000, 6, seed=0)
    fit, held = slice(0, 4000), slice(4000, 8000)
    temperature = fit_temperature(logits[fit], gold[fit])
    own = softmax_with_temperature(logits[fit], temperature)
    points = fit_top_label_map(own.max(1), own.argmax(1) == gold[fit])
    assert np.all(np.diff(points["confidence"]) >= 0) and np.all(np.diff(points["calibrated"]) >= 0)
    probs = softmax_with_temperature(logits[held], temperature)
    correct = probs.argmax(1) == gold[held]
    after_temperature = top_label_ece(probs.max(1), correct)
    mapped = apply_top_label_map(points, probs.max(1))
    after_map = top_label_ece(mapped, correct)
    floor = ece_noise_floor(mapped)["p95"]
    assert after_temperature > 3 * floor  # the planted bend survives the temperature on held-out rows
    assert after_map < 1.5 * floor and after_map < after_temperature / 3
    assert top_label_ece(probs.max(1), correct) == pytest.approx(expected_calibration_error(probs, gold[held]))


def test_top_label_map_learns_a_known_step_and_cross_fitting_is_out_of_sample():
    confidence = np.linspace(0.2, 0.99, 200)
    points = fit_top_label_map(confidence, confidence > 0.6)  # right exactly above 0.6: the map is that step
    assert apply_top_label_map(points, np.array([0.25, 0.55])) == pytest.approx([0.0, 0.0])
    assert apply_top_label_map(points, np.array([0.65, 0.98])) == pytest.approx([1.0, 1.0])
    logits, gold = _bent_confidence_logits(3000, 4, seed=1)
    correct = logits.argmax(1) == gold
    temperature = fit_temperature(logits, gold)
    in_sample = softmax_with_temperature(logits, temperature)
    fitted = fit_top_label_map(in_sample.max(1), correct)
    crossed = {m: top_label_ece(cross_fitted_confidences(logits, gold, method=m), correct) for m in ("temperature", "isotonic")}
    assert top_label_ece(apply_top_label_map(fitted, in_sample.max(1)), correct) < 0.005  # in-sample: near 0, meaningless
    assert crossed["isotonic"] > 0.005 and crossed["isotonic"] < crossed["temperature"] / 2
    with pytest.raises(UserError, match="unknown"):
        cross_fitted_confidences(logits, gold, method="platt")
