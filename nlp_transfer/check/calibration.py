"""Calibration of a classifier's probabilities, and temperature scaling to repair it.

A model is *calibrated* when, among the predictions it makes with confidence ``p``, a fraction ``p`` is right.
This module measures how far a model is from that and fits the usual one-parameter fix:

- :func:`expected_calibration_error`: top-label ECE with equal-width confidence bins (Naeini et al., AAAI 2015;
  Guo et al., "On Calibration of Modern Neural Networks", ICML 2017). Each row's confidence is its largest
  probability; the rows are put in ``bins`` bins of width ``1 / bins`` on ``[0, 1]`` (bin ``i`` holds the
  confidences in ``(i / bins, (i + 1) / bins]``, the first bin also holds 0), and
  ``ECE = sum over bins of (bin size / n) * |accuracy in bin - mean confidence in bin|``.
- :func:`brier_score`: the multi-class Brier score (Brier, 1950), the mean over rows of
  ``sum_k (p_k - onehot_k) ** 2`` (0 is perfect, 2 the worst).
- :func:`reliability_bins` and :func:`plot_reliability`: the per-bin numbers behind the ECE and the
  reliability diagram that draws them (accuracy against confidence; a calibrated model lies on the diagonal).
- :func:`fit_temperature`: temperature scaling (Guo et al., 2017): the one ``T > 0`` that minimises the
  negative log-likelihood of ``softmax(logits / T)`` on held-out rows. ``T > 1`` softens an over-confident
  model; the predicted class never changes, so accuracy is untouched.
- :func:`fit_top_label_map`: a monotone map from the top-label confidence (after temperature) to the rate at
  which such predictions are right, fitted by isotonic regression on held-out rows (Zadrozny & Elkan, KDD 2002;
  "top-label calibration", Gupta & Ramdas, ICLR 2022). It repairs what one temperature cannot: a model
  over-confident in the middle of its range and under-confident at the top. It recalibrates the *chosen* label's
  score only; :func:`apply_top_label_map` applies it (linear between the fitted points, flat beyond them).
- :func:`cross_fitted_confidences`: each validation row's calibrated confidence from a calibrator fitted on the
  other folds, so a calibrator's validation ECE is measured out of sample (a fitted map's in-sample ECE is
  near 0 by construction and says nothing).
- :func:`ece_noise_floor`: the ECE that a *perfectly* calibrated model with the same confidences would show on
  this many rows (its correctness drawn as Bernoulli(confidence), simulated): ECE is biased upward on finite
  samples, so a measured ECE is read against this floor before it is called a miscalibration.
- Multi-label models (one sigmoid per label): :func:`expected_calibration_error_multilabel` treats every
  (row, label) decision as a binary prediction with confidence ``max(p, 1 - p)``, and
  :func:`fit_temperature_multilabel` fits ``T`` for ``sigmoid(logits / T)``.

Everything is computed in float64; bad input raises :class:`~nlp_transfer.errors.UserError`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, logsumexp

from nlp_transfer.errors import UserError
from nlp_transfer.evaluation.plots import new_figure, save_figure

_LOG_T_BOUNDS = (float(np.log(0.05)), float(np.log(20.0)))


# ----------------------------------------------------------------------------------------------- validation
def _as_matrix(values: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2:
        raise UserError(f"{name} must be a 2-D array of shape (rows, classes); got shape {array.shape}.")
    if array.shape[0] == 0:
        raise UserError(f"{name} is empty: calibration needs at least one row.")
    if array.shape[1] < 2:
        raise UserError(
            f"{name} needs at least 2 columns (one per class); got {array.shape[1]}. Give both columns of a binary model."
        )
    if not np.all(np.isfinite(array)):
        raise UserError(f"{name} contains NaN or infinite values.")
    return array


def _as_class_ids(labels: np.ndarray, rows: int, classes: int) -> np.ndarray:
    array = np.asarray(labels)
    if array.ndim != 1:
        raise UserError(f"labels must be a 1-D array of class ids; got shape {array.shape}.")
    if array.shape[0] != rows:
        raise UserError(f"labels has {array.shape[0]} rows but the scores have {rows}; they must match.")
    if array.dtype.kind not in "iub" and not (array.dtype.kind == "f" and np.all(array == np.round(array))):
        raise UserError(f"labels must be integer class ids; got dtype {array.dtype}.")
    ids = array.astype(np.int64)
    if ids.min() < 0 or ids.max() >= classes:
        raise UserError(f"labels must lie in 0..{classes - 1} (one per column); found {ids.min()}..{ids.max()}.")
    return ids


def _as_probabilities(probabilities: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    probs = _as_matrix(probabilities, "probabilities")
    if probs.min() < 0 or probs.max() > 1 or not np.allclose(probs.sum(axis=1), 1.0, atol=1e-3):
        raise UserError("probabilities must lie in [0, 1] with every row summing to 1; pass softmax outputs, not logits.")
    return probs, _as_class_ids(labels, probs.shape[0], probs.shape[1])


def _check_bins(bins: int) -> None:
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise UserError(f"bins must be a positive integer; got {bins!r}.")


def _as_multilabel(scores: np.ndarray, labels: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    array = np.asarray(scores, dtype=np.float64)
    if array.ndim != 2 or array.size == 0:
        raise UserError(f"{name} must be a non-empty 2-D array of shape (rows, labels); got shape {array.shape}.")
    if not np.all(np.isfinite(array)):
        raise UserError(f"{name} contains NaN or infinite values.")
    gold = np.asarray(labels)
    if gold.shape != array.shape:
        raise UserError(f"labels has shape {gold.shape} but {name} has shape {array.shape}; they must match.")
    if not np.all((gold == 0) | (gold == 1)):
        raise UserError("multi-label labels must be a 0/1 matrix.")
    return array, gold.astype(np.float64)


# ------------------------------------------------------------------------------------------------- binning
def _bin_index(confidence: np.ndarray, bins: int) -> np.ndarray:
    """Bin ``i`` holds ``(i / bins, (i + 1) / bins]``; confidence 0 goes to bin 0."""
    inner_edges = np.arange(1, bins) / bins
    return np.searchsorted(inner_edges, confidence, side="left")


def _bins_from_decisions(confidence: np.ndarray, correct: np.ndarray, bins: int) -> list[dict[str, Any]]:
    index = _bin_index(confidence, bins)
    rows = []
    for i in np.unique(index):
        members = index == i
        rows.append(
            {
                "lower": float(i / bins),
                "upper": float((i + 1) / bins),
                "count": int(members.sum()),
                "accuracy": float(correct[members].mean()),
                "confidence": float(confidence[members].mean()),
            }
        )
    return rows


def _ece_from_bins(rows: list[dict[str, Any]]) -> float:
    total = sum(row["count"] for row in rows)
    return float(sum(row["count"] / total * abs(row["accuracy"] - row["confidence"]) for row in rows))


# ------------------------------------------------------------------------------------------- single-label
def reliability_bins(probabilities: np.ndarray, labels: np.ndarray, *, bins: int = 15) -> list[dict[str, Any]]:
    """Per non-empty equal-width confidence bin: ``lower``, ``upper``, ``count``, ``accuracy``, ``confidence``.

    ``probabilities`` is ``(n, K)`` with rows summing to 1 and ``labels`` is ``(n,)`` class ids. A row's
    confidence is its largest probability and it is correct when that column is its label.
    """
    _check_bins(bins)
    probs, gold = _as_probabilities(probabilities, labels)
    correct = (probs.argmax(axis=1) == gold).astype(np.float64)
    return _bins_from_decisions(probs.max(axis=1), correct, bins)


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, *, bins: int = 15) -> float:
    """Top-label expected calibration error (Guo et al., 2017) with ``bins`` equal-width bins, in ``[0, 1]``."""
    return _ece_from_bins(reliability_bins(probabilities, labels, bins=bins))


def ece_noise_floor(confidences: np.ndarray, *, bins: int = 15, samples: int = 2000, seed: int = 0) -> dict[str, float]:
    """The ECE of a perfectly calibrated model with these top-label ``confidences``: median and 95th percentile.

    Each simulation draws every row's correctness as Bernoulli(confidence) (seeded) and bins the rows as
    :func:`expected_calibration_error` does. A measured ECE near the median is what sampling alone gives on
    this many rows; one above the 95th percentile is a miscalibration the rows can show.
    """
    _check_bins(bins)
    confidence = np.asarray(confidences, dtype=np.float64).reshape(-1)
    if confidence.size == 0 or not np.all((confidence >= 0) & (confidence <= 1)):
        raise UserError("ece_noise_floor needs confidences in [0, 1], at least one.")
    index = _bin_index(confidence, bins)
    confidence_per_bin = np.bincount(index, weights=confidence, minlength=bins)
    draws = np.random.default_rng(seed).random((samples, confidence.size)) < confidence
    correct_per_bin = np.stack([np.bincount(index, weights=row.astype(np.float64), minlength=bins) for row in draws])
    values = np.abs(correct_per_bin - confidence_per_bin).sum(axis=1) / confidence.size  # sum_b |hits_b - conf_b| / n
    return {"median": float(np.median(values)), "p95": float(np.percentile(values, 95))}


def brier_score(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Multi-class Brier score: the mean over rows of ``sum_k (p_k - onehot_k) ** 2``."""
    probs, gold = _as_probabilities(probabilities, labels)
    onehot = np.zeros_like(probs)
    onehot[np.arange(len(gold)), gold] = 1.0
    return float(np.mean(np.sum((probs - onehot) ** 2, axis=1)))


def softmax_with_temperature(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """``softmax(logits / temperature)`` over the last axis, in float64 (the max is subtracted first)."""
    _check_temperature(temperature)
    scaled = np.asarray(logits, dtype=np.float64) / float(temperature)
    if scaled.size == 0 or not np.all(np.isfinite(scaled)):
        raise UserError("logits must be a non-empty array of finite values.")
    return np.exp(log_softmax(scaled, axis=-1))


def _check_temperature(temperature: float) -> None:
    if not np.isfinite(temperature) or temperature <= 0:
        raise UserError(f"temperature must be a positive finite number; got {temperature!r}.")


def _nll(logits: np.ndarray, gold: np.ndarray) -> float:
    """Mean negative log-likelihood of the gold classes under ``softmax(logits)``."""
    return float(np.mean(logsumexp(logits, axis=1) - logits[np.arange(len(gold)), gold]))


def _minimise_over_log_temperature(nll_at: Callable[[float], float]) -> float:
    result = minimize_scalar(lambda log_t: nll_at(np.exp(log_t)), bounds=_LOG_T_BOUNDS, method="bounded", options={"xatol": 1e-6})
    return float(np.exp(result.x))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature ``T`` in ``[0.05, 20]`` minimising the NLL of ``softmax(logits / T)`` on these rows.

    Fit it on validation rows (not the test rows it will be judged on). Searched on ``log T`` with
    bounded Brent minimisation; the NLL is unimodal in ``log T`` because it is convex in ``1 / T``.
    """
    z = _as_matrix(logits, "logits")
    gold = _as_class_ids(labels, z.shape[0], z.shape[1])
    return _minimise_over_log_temperature(lambda t: _nll(z / t, gold))


def calibration_report(logits: np.ndarray, labels: np.ndarray, *, bins: int = 15, temperature: float = 1.0) -> dict[str, Any]:
    """Calibration of ``softmax(logits / temperature)`` against ``labels``; fits nothing.

    Returns ``{"ece", "brier", "nll", "accuracy", "bins"}`` where ``bins`` is :func:`reliability_bins`.
    Pass the temperature from :func:`fit_temperature` (fitted on other rows) to report after scaling.
    """
    _check_bins(bins)
    _check_temperature(temperature)
    z = _as_matrix(logits, "logits") / float(temperature)
    gold = _as_class_ids(labels, z.shape[0], z.shape[1])
    probs = np.exp(log_softmax(z, axis=1))
    rows = reliability_bins(probs, gold, bins=bins)
    return {
        "ece": _ece_from_bins(rows),
        "brier": brier_score(probs, gold),
        "nll": _nll(z, gold),
        "accuracy": float(np.mean(probs.argmax(axis=1) == gold)),
        "bins": rows,
    }


def top_label_ece(confidence: np.ndarray, correct: np.ndarray, *, bins: int = 15) -> float:
    """ECE of top-label decisions given as their ``confidence`` and whether each was ``correct`` (0/1)."""
    _check_bins(bins)
    conf = np.asarray(confidence, dtype=np.float64).reshape(-1)
    hits = np.asarray(correct, dtype=np.float64).reshape(-1)
    if conf.size == 0 or conf.size != hits.size:
        raise UserError(f"top_label_ece needs as many confidences as correctness flags (got {conf.size} and {hits.size}).")
    return _ece_from_bins(_bins_from_decisions(conf, hits, bins))


def fit_top_label_map(confidence: np.ndarray, correct: np.ndarray) -> dict[str, list[float]]:
    """Isotonic regression of correctness on top-label confidence: ``{"confidence": [...], "calibrated": [...]}``.

    The points are non-decreasing in both lists; :func:`apply_top_label_map` interpolates between them. Fit it
    on validation rows, after the temperature (pass ``softmax(logits / T).max(1)`` and ``argmax == label``).
    """
    from sklearn.isotonic import IsotonicRegression

    conf = np.asarray(confidence, dtype=np.float64).reshape(-1)
    hits = np.asarray(correct, dtype=np.float64).reshape(-1)
    if conf.size < 2 or conf.size != hits.size or not np.all((conf >= 0) & (conf <= 1)):
        raise UserError("fit_top_label_map needs at least 2 confidences in [0, 1], each with a 0/1 correctness flag.")
    fitted = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip").fit(conf, hits)
    return {"confidence": fitted.X_thresholds_.tolist(), "calibrated": fitted.y_thresholds_.tolist()}


def apply_top_label_map(points: dict[str, list[float]], confidence: np.ndarray) -> np.ndarray:
    """The calibrated confidence of each top-label ``confidence`` under a map from :func:`fit_top_label_map`."""
    return np.interp(np.asarray(confidence, dtype=np.float64), points["confidence"], points["calibrated"])


def cross_fitted_confidences(logits: np.ndarray, labels: np.ndarray, *, method: str, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Each row's top-label confidence from a calibrator fitted on the other ``folds - 1`` folds (seeded split).

    ``method`` is ``temperature`` (a temperature per fold) or ``isotonic`` (a temperature, then a top-label map,
    per fold). Pass the result, with ``argmax == label``, to :func:`top_label_ece`.
    """
    z = _as_matrix(logits, "logits")
    gold = _as_class_ids(labels, z.shape[0], z.shape[1])
    if method not in CALIBRATORS:
        raise UserError(f"calibrator {method!r} is unknown; choose one of {', '.join(CALIBRATORS)}.")
    fold_of = np.random.default_rng(seed).permutation(len(gold)) % max(2, min(folds, len(gold)))
    out = np.empty(len(gold))
    for fold in np.unique(fold_of):
        train, held = fold_of != fold, fold_of == fold
        temperature = fit_temperature(z[train], gold[train])
        confidence = softmax_with_temperature(z[held], temperature).max(axis=1)
        if method == "isotonic":
            own = softmax_with_temperature(z[train], temperature)
            points = fit_top_label_map(own.max(axis=1), own.argmax(axis=1) == gold[train])
            confidence = apply_top_label_map(points, confidence)
        out[held] = confidence
    return out


#: what ``nlp-transfer check --calibrator`` can apply to single-label scores
CALIBRATORS = ("temperature", "isotonic")


# --------------------------------------------------------------------------------------------- multi-label
def expected_calibration_error_multilabel(probabilities: np.ndarray, labels: np.ndarray, *, bins: int = 15) -> float:
    """ECE over every (row, label) decision of a multi-label model, each a binary prediction.

    ``probabilities`` is ``(n, L)`` sigmoid scores and ``labels`` the ``(n, L)`` 0/1 gold matrix. A decision
    predicts 1 when ``p >= 0.5``; its confidence is ``max(p, 1 - p)``.
    """
    _check_bins(bins)
    probs, gold = _as_multilabel(probabilities, labels, "probabilities")
    if probs.min() < 0 or probs.max() > 1:
        raise UserError("multi-label probabilities must lie in [0, 1]; pass sigmoid outputs, not logits.")
    p, y = probs.ravel(), gold.ravel()
    correct = ((p >= 0.5) == (y == 1)).astype(np.float64)
    return _ece_from_bins(_bins_from_decisions(np.maximum(p, 1 - p), correct, bins))


def fit_temperature_multilabel(logits: np.ndarray, labels: np.ndarray) -> float:
    """The ``T`` in ``[0.05, 20]`` minimising the mean binary cross-entropy of ``sigmoid(logits / T)``."""
    z, y = _as_multilabel(logits, labels, "logits")
    # -log sigmoid(x) = logaddexp(0, -x), so the cross-entropy is logaddexp(0, x) - y * x (stable).
    return _minimise_over_log_temperature(lambda t: float(np.mean(np.logaddexp(0.0, z / t) - y * z / t)))


# ------------------------------------------------------------------------------------------------- drawing
def plot_reliability(
    before: list[dict[str, Any]],
    after: list[dict[str, Any]] | None,
    path: str | Path,
    title: str = "Reliability diagram",
) -> None:
    """Draw accuracy against mean confidence per bin (from :func:`reliability_bins`) as a PNG at ``path``.

    ``before`` is the model as trained, ``after`` (optional) the same rows after temperature scaling; the
    dashed diagonal is perfect calibration. Marker area grows with the number of rows in the bin.
    """
    fig, ax = new_figure(figsize=(5.0, 5.0))
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    series = [("before scaling", before, "tab:red", "o")]
    if after is not None:
        series.append(("after temperature scaling", after, "tab:blue", "s"))
    for label, rows, color, marker in series:
        if not rows:
            continue
        total = sum(row["count"] for row in rows)
        x = [row["confidence"] for row in rows]
        y = [row["accuracy"] for row in rows]
        sizes = [20 + 300 * row["count"] / total for row in rows]
        ax.plot(x, y, color=color, alpha=0.6)
        ax.scatter(x, y, s=sizes, color=color, marker=marker, label=label, zorder=3)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.legend(loc="upper left")
    save_figure(fig, path)
