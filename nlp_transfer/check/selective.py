"""Selective prediction: answer only when confident, and know what that buys.

A model that may abstain keeps the rows whose confidence score is at or above a threshold. Lowering the
threshold raises the *coverage* (the fraction of rows answered) and usually lowers the accuracy on the
rows kept (the *selective risk* is one minus it). This module computes that trade-off, the
accuracy-coverage (risk-coverage) curve of El-Yaniv & Wiener (JMLR 2010) and Geifman & El-Yaniv
("Selective Classification for Deep Neural Networks", NeurIPS 2017):

- :func:`accuracy_coverage_curve`: rows sorted by score, highest first; a point for every distinct score
  ``s``: the coverage and accuracy of the rows with score ``>= s``. Rows with equal scores are kept or
  dropped together, so a point is only placed at the end of each run of equal scores.
- :func:`accuracy_at_coverage`: the accuracy of the ``ceil(coverage * n)`` most confident rows. When that
  cut falls inside a run of equal scores, the rows of the run count with their mean correctness (the
  expected accuracy under a random tie-break), so the answer never depends on the input order.
- :func:`threshold_for_accuracy`: the lowest threshold (largest coverage) whose kept rows reach a target.
- :func:`selective_report` gathers these; its ``auc`` is the area under the accuracy-coverage curve, the
  mean over ``k = 1..n`` of the accuracy of the ``k`` most confident rows (ties as above); one minus it is
  the AURC of Geifman et al. (ICLR 2019).

Scores are any "higher means more confident" number (the top softmax probability, a margin, ...); correct
is 0/1 per row. Bad input raises :class:`~nlp_transfer.errors.UserError`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nlp_transfer.errors import UserError
from nlp_transfer.evaluation.plots import new_figure, save_figure


def _validate(scores: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64)
    c = np.asarray(correct)
    if s.ndim != 1 or c.ndim != 1:
        raise UserError(f"scores and correct must be 1-D arrays (one value per row); got shapes {s.shape} and {c.shape}.")
    if s.shape[0] != c.shape[0]:
        raise UserError(f"scores has {s.shape[0]} rows but correct has {c.shape[0]}; they must match.")
    if s.shape[0] == 0:
        raise UserError("scores is empty: selective prediction needs at least one row.")
    if not np.all(np.isfinite(s)):
        raise UserError("scores contains NaN or infinite values.")
    if not np.all((c == 0) | (c == 1)):
        raise UserError("correct must hold 0/1 (or True/False) per row.")
    return s, c.astype(np.float64)


def _sorted(scores: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Scores and correctness sorted by score, highest first, and for each row where its run of equal scores
    starts and stops (``stop`` exclusive)."""
    s, c = _validate(scores, correct)
    order = np.argsort(-s, kind="stable")
    s, c = s[order], c[order]
    is_start = np.append(True, s[1:] != s[:-1])
    run_of_row = np.cumsum(is_start) - 1
    starts = np.flatnonzero(is_start)
    stops = np.append(starts[1:], len(s))
    return s, c, starts[run_of_row], stops[run_of_row]


def _accuracy_at_each_k(correct_sorted: np.ndarray, run_start: np.ndarray, run_stop: np.ndarray) -> np.ndarray:
    """Accuracy of the ``k`` most confident rows for ``k = 1..n``; a partly kept tie run counts at its mean."""
    cum = np.concatenate(([0.0], np.cumsum(correct_sorted)))
    k = np.arange(1, len(correct_sorted) + 1)
    run_mean = (cum[run_stop] - cum[run_start]) / (run_stop - run_start)
    return (cum[run_start] + (k - run_start) * run_mean) / k


def accuracy_coverage_curve(scores: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(coverage, accuracy, threshold)``: one point per distinct score, from the highest score down.

    At threshold ``t`` every row with score ``>= t`` is kept; ``coverage`` is their fraction and ``accuracy``
    their fraction correct. Coverage rises to 1 at the lowest score.
    """
    s, c, _, run_stop = _sorted(scores, correct)
    kept = np.unique(run_stop)  # rows kept at each distinct score
    return kept / len(s), np.cumsum(c)[kept - 1] / kept, s[kept - 1]


def _check_fraction(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not 0 < value <= 1:
        raise UserError(f"{name} must be a number in (0, 1]; got {value!r}.")
    return float(value)


def accuracy_at_coverage(scores: np.ndarray, correct: np.ndarray, coverage: float) -> float:
    """Accuracy of the ``ceil(coverage * n)`` most confident rows; ``coverage`` in ``(0, 1]``.

    A tie run cut by that count contributes its mean correctness per row kept, so the result does not
    depend on the order of rows with equal scores.
    """
    coverage = _check_fraction(coverage, "coverage")
    _, c, run_start, run_stop = _sorted(scores, correct)
    k = max(1, math.ceil(round(coverage * len(c), 9)))  # round: 0.55 * 100 is 55.00000000000001 in floating point
    return float(_accuracy_at_each_k(c, run_start, run_stop)[k - 1])


def threshold_for_accuracy(scores: np.ndarray, correct: np.ndarray, target: float) -> dict[str, float] | None:
    """The lowest threshold whose kept rows (score ``>= threshold``) are at least ``target`` accurate.

    Returns ``{"threshold", "coverage", "accuracy", "rows"}`` (``rows``: how many rows it keeps) for the largest
    coverage that reaches the target
    (accuracy need not fall monotonically, so this is not the first point that dips below), or ``None``
    when no threshold reaches it.
    """
    target = _check_fraction(target, "target")
    coverage, accuracy, threshold = accuracy_coverage_curve(scores, correct)
    reaching = np.flatnonzero(accuracy >= target - 1e-12)
    if reaching.size == 0:
        return None
    best = reaching[-1]
    kept = round(float(coverage[best]) * len(scores))
    return {
        "threshold": float(threshold[best]),
        "coverage": float(coverage[best]),
        "accuracy": float(accuracy[best]),
        "rows": kept,
    }


def selective_report(
    scores: np.ndarray,
    correct: np.ndarray,
    *,
    coverages: Sequence[float] = (0.8, 0.9),
    targets: Sequence[float] = (0.9, 0.95, 0.99),
) -> dict[str, Any]:
    """``{"accuracy_at_80", "accuracy_at_90", "thresholds": {"0.9": {...} or None, ...}, "auc"}``.

    One ``accuracy_at_<percent>`` key per coverage (percent rounded to an integer), one ``thresholds`` entry
    per target (keyed by the target written with ``:g``), and ``auc``, the area under the accuracy-coverage
    curve (mean accuracy of the ``k`` most confident rows over ``k = 1..n``).
    """
    _, c, run_start, run_stop = _sorted(scores, correct)
    report: dict[str, Any] = {}
    for coverage in coverages:
        percent = round(_check_fraction(coverage, "coverage") * 100)
        report[f"accuracy_at_{percent}"] = accuracy_at_coverage(scores, correct, coverage)
    report["thresholds"] = {f"{target:g}": threshold_for_accuracy(scores, correct, target) for target in targets}
    report["auc"] = float(np.mean(_accuracy_at_each_k(c, run_start, run_stop)))
    return report


def plot_accuracy_coverage(
    scores: np.ndarray, correct: np.ndarray, path: str | Path, title: str = "Accuracy against coverage"
) -> None:
    """Draw the accuracy-coverage curve of :func:`accuracy_coverage_curve` as a PNG at ``path``."""
    coverage, accuracy, _ = accuracy_coverage_curve(scores, correct)
    fig, ax = new_figure(figsize=(5.5, 4.0))
    ax.plot(coverage, accuracy, marker="." if len(coverage) <= 50 else None, color="tab:blue", label="kept rows")
    ax.axhline(accuracy[-1], linestyle="--", color="grey", label=f"no abstention ({accuracy[-1]:.3f})")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(min(0.0, float(accuracy.min())), 1.02)
    ax.set_xlabel("coverage (fraction of rows answered)")
    ax.set_ylabel("accuracy on answered rows")
    ax.set_title(title)
    ax.legend(loc="lower left")
    save_figure(fig, path)
