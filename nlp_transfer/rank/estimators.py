"""Transferability estimators: how well a frozen model's features fit a labelled task, without fine-tuning.

Each estimator takes ``features`` (one row per example, float) and ``labels`` and returns one number;
higher means the features suit the task better. Single-label tasks give ``labels`` as one class per row
(shape ``(n,)``, any hashable values); multi-label tasks give a 0/1 matrix of shape ``(n, L)``, and label
columns that hold one value only are left out (they say nothing about the features).

- :func:`logme`: LogME (You et al., ICML 2021), the mean over targets of the maximised log evidence of a
  Bayesian linear regression from the features to each one-hot target, divided by the number of rows.
- :func:`hscore`: H-score (Bao et al., 2019) with the Ledoit-Wolf shrinkage covariance of Ibrahim et al. (2022).
- :func:`knn_accuracy`: leave-one-out k-nearest-neighbour score under cosine similarity.
- :func:`linear_probe`: a logistic regression trained on 80 % of the rows and scored on the other 20 %.

:func:`score_features` runs several of them (:data:`ESTIMATORS`) and times each. Everything is computed
in float64; bad input raises :class:`~nlp_transfer.errors.UserError`.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence

import numpy as np

from nlp_transfer.errors import UserError

METRICS = ("accuracy", "f1_macro", "f1_micro")
FIX_SAMPLE = "give more rows (rank --sample) or check data.label_column"

LOGME_TOL = 1e-8  # relative change of alpha and beta at which the fixed-point iteration stops
LOGME_EVIDENCE_TOL = 1e-13  # ... or relative change of the evidence (where alpha runs off to infinity)
LOGME_MAX_ITER = 1000
#: rows per feature from which LogME takes its spectrum from X^T X (d x d) rather than an SVD of X (n x d)
GRAM_ROWS_PER_COLUMN = 4
_FLOOR, _CEIL = 1e-250, 1e250  # alpha and beta stay in this range (degenerate targets push them to 0 or infinity)
_KNN_CHUNK_CELLS = 4_000_000  # similarities held at once in knn_accuracy: rows per chunk x rows in all


# ---------------------------------------------------------------- input checks


def _check_features(features: np.ndarray) -> np.ndarray:
    """``features`` as a finite 2-D float64 array, or a UserError that says what is wrong."""
    try:
        x = np.asarray(features, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise UserError(f"features must be numbers (a 2-D float array, one row per example): {err}") from None
    if x.ndim != 2:
        raise UserError(
            f"features must be a 2-D array (one row per example), got shape {x.shape}; stack the feature vectors into rows"
        )
    if x.shape[0] == 0:
        raise UserError(f"features have no rows; {FIX_SAMPLE}")
    if x.shape[1] == 0:
        raise UserError("features have no columns; extract at least one feature dimension per example")
    bad_rows = int(np.count_nonzero(~np.isfinite(x).all(axis=1)))
    if bad_rows:
        raise UserError(
            f"features contain NaN or infinite values in {bad_rows} of {x.shape[0]} rows; "
            "check the model's outputs (e.g. half-precision overflow) or drop those rows"
        )
    return x


def _check_single_label(labels: np.ndarray, n: int) -> np.ndarray:
    """Class ids ``0..K-1`` (int array of shape ``(n,)``) for single-label ``labels`` with at least two classes."""
    y = np.asarray(labels)
    if y.ndim != 1:
        raise UserError(
            f"single-label labels must be 1-D (one class per row), got shape {y.shape}; for a 0/1 matrix pass multi_label=True"
        )
    if len(y) != n:
        raise UserError(f"features have {n} rows but labels have {len(y)}; give one label per feature row")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise UserError("labels contain NaN or infinite values; drop the unlabelled rows or check data.label_column")
    classes, codes = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        only = f" ({classes[0]})" if len(classes) else ""
        raise UserError(f"the ranking sample has only one class{only}; {FIX_SAMPLE}")
    return codes.reshape(-1).astype(np.int64)


def _check_multi_label(labels: np.ndarray, n: int) -> np.ndarray:
    """The informative columns of a 0/1 label matrix, as float64 ``(n, L')``; constant columns are dropped."""
    try:
        y = np.asarray(labels, dtype=np.float64)
    except (TypeError, ValueError):
        raise UserError("multi-label labels must be a 0/1 matrix of shape (rows, labels)") from None
    if y.ndim != 2:
        raise UserError(f"multi-label labels must be a 2-D 0/1 matrix (rows x labels), got shape {y.shape}")
    if len(y) != n:
        raise UserError(f"features have {n} rows but labels have {len(y)}; give one label row per feature row")
    if not np.isin(y, (0.0, 1.0)).all():
        raise UserError("multi-label labels must hold only 0 and 1 (one column per label); check data.label_column")
    informative = (y.min(axis=0) != y.max(axis=0)) if n else np.zeros(y.shape[1], dtype=bool)
    if not informative.any():
        raise UserError(f"every label column of the ranking sample holds a single value; {FIX_SAMPLE}")
    return y[:, informative]


def _check(features: np.ndarray, labels: np.ndarray, multi_label: bool) -> tuple[np.ndarray, np.ndarray]:
    """Checked ``(features, labels)``: float64 features and class ids or an informative 0/1 matrix."""
    x = _check_features(features)
    y = _check_multi_label(labels, len(x)) if multi_label else _check_single_label(labels, len(x))
    return x, y


def _check_metric(metric: str) -> None:
    """A UserError unless ``metric`` is one of :data:`METRICS`."""
    if metric not in METRICS:
        raise UserError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")


def _subsample(x: np.ndarray, y: np.ndarray, max_points: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_points`` rows, drawn without replacement with ``seed`` (kept in their original order)."""
    if max_points < 2:
        raise UserError(f"max_points must be at least 2, got {max_points}")
    if len(x) <= max_points:
        return x, y
    keep = np.sort(np.random.default_rng(seed).choice(len(x), size=max_points, replace=False))
    return x[keep], y[keep]


def _targets(y: np.ndarray, multi_label: bool) -> np.ndarray:
    """The regression targets as columns: the label matrix itself, or one-hot class indicators."""
    if multi_label:
        return y
    return (y[:, None] == np.arange(y.max() + 1)[None, :]).astype(np.float64)


# ---------------------------------------------------------------- LogME


def _svd_spectrum(x: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """sigma, z and perp2 of :func:`_logme_fit` from a thin SVD of ``x``: the squared nonzero singular values (to
    numerical rank), the targets in the left singular basis, and each target's squared part outside it."""
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    if s.size == 0 or s[0] == 0.0:
        rank = 0
    else:
        rank = int(np.count_nonzero(s > s[0] * max(x.shape) * np.finfo(np.float64).eps))
    u = u[:, :rank]
    z = u.T @ targets
    return s[:rank] ** 2, z, np.maximum(((targets - u @ z) ** 2).sum(axis=0), 0.0)


def _evidence_terms(
    alpha: np.ndarray, beta: np.ndarray, sigma: np.ndarray, z: np.ndarray, perp2: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """gamma, |m|^2, |y - Xm|^2 and sum(log(alpha + beta*sigma)) for each target (column of ``z``)."""
    denom = alpha + beta * sigma[:, None]  # (r, T): the eigenvalues of A = alpha I + beta X^T X on X's row space
    gamma = (beta * sigma[:, None] / denom).sum(axis=0)
    mean_sq = ((beta * np.sqrt(sigma)[:, None] * z / denom) ** 2).sum(axis=0)
    residual_sq = ((alpha * z / denom) ** 2).sum(axis=0) + perp2
    return gamma, mean_sq, residual_sq, np.log(denom).sum(axis=0)


def _log_evidence(alpha: np.ndarray, beta: np.ndarray, rank: int, n: int, terms: tuple[np.ndarray, ...]) -> np.ndarray:
    """log N(y; 0, I/beta + X X^T/alpha) per target, from :func:`_evidence_terms` at the same (alpha, beta).

    Written on X's rank-r row space: the (d - r) prior directions that X never sees cancel out.
    """
    _, mean_sq, residual_sq, log_det = terms
    return (
        0.5 * rank * np.log(alpha)
        + 0.5 * n * np.log(beta)
        - 0.5 * log_det
        - 0.5 * alpha * mean_sq
        - 0.5 * beta * residual_sq
        - 0.5 * n * np.log(2.0 * np.pi)
    )


def _logme_fit(sigma: np.ndarray, z: np.ndarray, perp2: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Maximise the evidence over (alpha, beta) for every target; returns alpha, beta and evidence / n per target.

    ``sigma`` holds the r nonzero eigenvalues of X^T X, ``z`` (r, T) the targets in the left singular basis and
    ``perp2`` (T,) the squared norm of each target's part outside X's column space. MacKay's fixed point:
    gamma = sum(beta sigma / (alpha + beta sigma)), alpha = gamma / |m|^2, beta = (n - gamma) / |y - Xm|^2.
    A target stops when alpha and beta settle (relative change below LOGME_TOL) or, where the supremum lies
    at alpha -> infinity (features that carry nothing about the target), when the evidence itself settles.
    """
    rank, n_targets = z.shape
    # A start that scales with the features (alpha ~ mean eigenvalue per row) makes the whole iteration
    # equivariant under features -> c * features, so the result does not depend on the feature scale.
    alpha = np.full(n_targets, float(np.clip(sigma.sum() / (n * max(rank, 1)), _FLOOR, _CEIL)) if rank else 1.0)
    beta = np.ones(n_targets)
    evidence = _log_evidence(alpha, beta, rank, n, _evidence_terms(alpha, beta, sigma, z, perp2))
    active = np.arange(n_targets)  # the targets still moving
    for _ in range(LOGME_MAX_ITER):
        z_now, perp2_now = z[:, active], perp2[active]
        gamma, mean_sq, residual_sq, _ = _evidence_terms(alpha[active], beta[active], sigma, z_now, perp2_now)
        new_alpha = np.clip(gamma / np.maximum(mean_sq, _FLOOR), _FLOOR, _CEIL)
        new_beta = np.clip((n - gamma) / np.maximum(residual_sq, _FLOOR), _FLOOR, _CEIL)
        terms = _evidence_terms(new_alpha, new_beta, sigma, z_now, perp2_now)
        new_evidence = _log_evidence(new_alpha, new_beta, rank, n, terms)
        step = np.maximum(np.abs(new_alpha / alpha[active] - 1.0), np.abs(new_beta / beta[active] - 1.0))
        settled = (step < LOGME_TOL) | (np.abs(new_evidence - evidence[active]) <= LOGME_EVIDENCE_TOL * np.abs(new_evidence))
        alpha[active], beta[active], evidence[active] = new_alpha, new_beta, new_evidence
        active = active[~settled]
        if active.size == 0:
            break
    return alpha, beta, evidence / n


def _gram_spectrum(x: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """sigma, z and perp2 of :func:`_logme_fit` from the d x d Gram matrix X^T X, for rows far outnumbering columns.

    X^T X = V diag(sigma) V^T gives the left singular vectors as X V / sqrt(sigma), so z = V^T X^T y / sqrt(sigma)
    and the part of y outside X's column space has |y|^2 - |z|^2. This costs two products with X instead of an
    SVD of it (LogME's reference code does the same when N > D). Eigenvalues below the Gram's own rounding
    (sigma_max * n * eps) count as zero, as :func:`_svd_spectrum` drops singular values at its rounding.
    """
    sigma, v = np.linalg.eigh(x.T @ x)
    sigma, v = sigma[::-1], v[:, ::-1]  # largest first
    if sigma.size == 0 or sigma[0] <= 0.0:
        return np.zeros(0), np.zeros((0, targets.shape[1])), (targets**2).sum(axis=0)
    keep = sigma > sigma[0] * max(x.shape) * np.finfo(np.float64).eps
    sigma, v = sigma[keep], v[:, keep]
    z = (v.T @ (x.T @ targets)) / np.sqrt(sigma)[:, None]
    perp2 = np.maximum((targets**2).sum(axis=0) - (z**2).sum(axis=0), 0.0)
    return sigma, z, perp2


def _logme_targets(x: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """alpha, beta and evidence / n for each column of ``targets`` (n, T), sharing one spectrum of ``x``.

    With at least :data:`GRAM_ROWS_PER_COLUMN` rows per feature the spectrum comes from X^T X
    (:func:`_gram_spectrum`), else from a thin SVD of X.
    """
    spectrum = _gram_spectrum if len(x) >= GRAM_ROWS_PER_COLUMN * x.shape[1] else _svd_spectrum
    return _logme_fit(*spectrum(x, targets), len(x))


def _logme_target(features: np.ndarray, target: np.ndarray) -> tuple[float, float, float]:
    """LogME for one real-valued target vector: the maximising (alpha, beta) and the evidence divided by n."""
    x = _check_features(features)
    y = np.asarray(target, dtype=np.float64).reshape(len(x), 1)
    alpha, beta, evidence = _logme_targets(x, y)
    return float(alpha[0]), float(beta[0]), float(evidence[0])


def logme(features: np.ndarray, labels: np.ndarray, *, multi_label: bool = False) -> float:
    """LogME (You et al., ICML 2021): mean over targets of the maximised log evidence per row; higher is better.

    Each target (a one-hot class column, or a label column when ``multi_label``) is fitted by Bayesian
    linear regression y = Xw + noise, w ~ N(0, I/alpha), noise ~ N(0, 1/beta); alpha and beta are set by
    the fixed-point iteration of the paper on one thin SVD of the features, shared by all targets. The
    value does not change when the features are multiplied by a constant.
    """
    x, y = _check(features, labels, multi_label)
    _, _, evidence = _logme_targets(x, _targets(y, multi_label))
    return float(np.mean(evidence))


# ---------------------------------------------------------------- H-score


def _binary_or_multiclass_hscore(x: np.ndarray, codes: np.ndarray) -> float:
    """Regularised H-score of integer class ids ``codes``: (1 - s) tr(C_s^-1 cov(E[f|y])), C_s Ledoit-Wolf."""
    from sklearn.covariance import LedoitWolf  # scikit-learn is imported by the estimators that use it, not by LogME

    centred = x - x.mean(axis=0)
    estimate = LedoitWolf(assume_centered=True).fit(centred)
    classes, codes = np.unique(codes, return_inverse=True)
    indicator = (codes.reshape(-1, 1) == np.arange(len(classes))).astype(np.float64)  # (n, K) one-hot
    counts = indicator.sum(axis=0)
    means = (indicator.T @ centred) / counts[:, None]  # (K, d) class means of the centred features
    weights = counts / len(codes)
    try:
        solved = np.linalg.solve(estimate.covariance_, means.T)  # C^-1 mu_k for each class, (d, K)
    except np.linalg.LinAlgError:
        solved = np.linalg.lstsq(estimate.covariance_, means.T, rcond=None)[0]  # pseudo-inverse: C singular
    if not np.isfinite(solved).all():
        solved = np.linalg.lstsq(estimate.covariance_, means.T, rcond=None)[0]
    return float((1.0 - estimate.shrinkage_) * np.sum(weights * np.einsum("kd,dk->k", means, solved)))


def hscore(features: np.ndarray, labels: np.ndarray, *, multi_label: bool = False) -> float:
    """H-score (Bao et al., 2019), tr(cov(f)^-1 cov(E[f|y])), with a shrinkage covariance; higher is better.

    cov(f) is the Ledoit-Wolf estimate and the between-class covariance is scaled by (1 - shrinkage), as in
    Ibrahim et al. (2022), so the score stays finite and stable when the feature dimension is large relative
    to the number of rows. Multi-label: the mean over label columns of the binary H-score.
    """
    x, y = _check(features, labels, multi_label)
    if multi_label:
        return float(np.mean([_binary_or_multiclass_hscore(x, column.astype(np.int64)) for column in y.T]))
    return _binary_or_multiclass_hscore(x, y)


# ---------------------------------------------------------------- kNN


def _score(y_true: np.ndarray, y_pred: np.ndarray, metric: str, multi_label: bool) -> float:
    """``metric`` of the predictions; macro F1 averages over the classes present in ``y_true``."""
    from sklearn.metrics import accuracy_score, f1_score

    if metric == "accuracy":
        return float(accuracy_score(y_true, y_pred))  # multi-label: exact match of the whole label row
    if metric == "f1_micro":
        return float(f1_score(y_true, y_pred, average="micro", zero_division=0))
    labels = None if multi_label else np.unique(y_true)
    return float(f1_score(y_true, y_pred, average="macro", labels=labels, zero_division=0))


def _vote(neighbour_labels: np.ndarray, multi_label: bool) -> np.ndarray:
    """Majority vote over neighbours sorted nearest first (axis 1); a tie goes to the nearest tied choice."""
    if multi_label:  # (rows, k, L): a vote per label column
        share = neighbour_labels.mean(axis=1)
        return np.where(share == 0.5, neighbour_labels[:, 0, :], share > 0.5).astype(neighbour_labels.dtype)
    # count of each neighbour's class among all k; argmax picks the first (nearest) position of the top count
    counts = (neighbour_labels[:, :, None] == neighbour_labels[:, None, :]).sum(axis=2)
    best = np.argmax(counts, axis=1)
    return neighbour_labels[np.arange(len(neighbour_labels)), best]


def _loo_neighbours(unit: np.ndarray, k: int, start: int, stop: int) -> np.ndarray:
    """Indices of the k most cosine-similar other rows for rows ``start:stop``, most similar first."""
    sims = unit[start:stop] @ unit.T
    rows = np.arange(stop - start)
    sims[rows, start + rows] = -np.inf  # leave one out: a row never votes for itself
    top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    order = np.argsort(-sims[rows[:, None], top], axis=1, kind="stable")
    return top[rows[:, None], order]


def knn_accuracy(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    multi_label: bool = False,
    k: int = 5,
    metric: str = "accuracy",
    max_points: int = 10000,
    seed: int = 0,
) -> float:
    """Leave-one-out k-nearest-neighbour score under cosine similarity; higher is better.

    Each row is predicted by the majority vote of its ``k`` most similar other rows (a tie goes to the
    nearest of the tied classes; multi-label: a vote per label). At most ``max_points`` rows are used
    (drawn with ``seed``), and similarities are computed a block of rows at a time to bound memory.
    ``metric``: "accuracy", "f1_macro" or "f1_micro".
    """
    _check_metric(metric)
    if k < 1:
        raise UserError(f"k must be at least 1, got {k}")
    x, y = _subsample(*_check(features, labels, multi_label), max_points, seed)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    unit = x / np.where(norms > 0, norms, 1.0)  # an all-zero row is equally (0) similar to every row
    k = min(k, len(x) - 1)
    chunk = max(1, _KNN_CHUNK_CELLS // len(x))
    predicted = np.empty_like(y)
    for start in range(0, len(x), chunk):
        stop = min(start + chunk, len(x))
        predicted[start:stop] = _vote(y[_loo_neighbours(unit, k, start, stop)], multi_label)
    return _score(y, predicted, metric, multi_label)


# ---------------------------------------------------------------- linear probe


def _split(y: np.ndarray, multi_label: bool, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and test row indices: 80 / 20, stratified by class where every class has two rows or more.

    A class with a single row goes to training (held out, it could never be predicted, and the training split
    could be left with one class); the other rows are split as above.
    """
    from sklearn.model_selection import train_test_split

    n = len(y)
    if multi_label:
        return train_test_split(np.arange(n), test_size=0.2, random_state=seed)
    counts = np.bincount(y)
    lone = counts[y] == 1
    rest = np.flatnonzero(~lone)
    if len(rest) < 2:
        raise UserError(
            f"the linear probe has no rows to hold out: {int(lone.sum())} of the {n} rows are the only row of their class; "
            "it needs two rows of a class at least (add labelled rows of the rare classes)"
        )
    rest_counts = counts[counts > 1]
    n_test = int(np.ceil(0.2 * len(rest)))
    stratify = None
    if n_test >= len(rest_counts) and len(rest) - n_test >= len(rest_counts):
        stratify = y[rest]
    train, test = train_test_split(rest, test_size=0.2, random_state=seed, stratify=stratify)
    return np.concatenate([train, np.flatnonzero(lone)]) if lone.any() else train, test


def linear_probe(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    multi_label: bool = False,
    metric: str = "accuracy",
    max_points: int = 10000,
    seed: int = 0,
) -> float:
    """Held-out score of a logistic regression on the standardised features; higher is better.

    Trained on a seeded 80 % of the rows (stratified by class, a class of one row always trained on; a plain
    random split for multi-label, with one-vs-rest classifiers) and scored on the other 20 %. At most ``max_points`` rows are used (drawn with
    ``seed``). ``metric``: "accuracy", "f1_macro" or "f1_micro".
    """
    _check_metric(metric)
    x, y = _subsample(*_check(features, labels, multi_label), max_points, seed)
    train, test = _split(y, multi_label, seed)
    if not multi_label and len(np.unique(y[train])) < 2:
        raise UserError(
            f"the linear probe's training split ({len(train)} of {len(y)} rows) holds one class only: the other classes "
            "are too rare to split 80 / 20; add labelled rows of the rare classes"
        )
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    classifier = LogisticRegression(max_iter=1000)
    model = make_pipeline(StandardScaler(), OneVsRestClassifier(classifier) if multi_label else classifier)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Label not .* is present in all training examples")
        model.fit(x[train], y[train])
        predicted = model.predict(x[test])
    return _score(y[test], predicted, metric, multi_label)


# ---------------------------------------------------------------- all of them


def error_line(err: Exception) -> str:
    """One line that says why ``err`` happened: a UserError's own message, else its type and first line."""
    if isinstance(err, UserError):
        return str(err)
    first = (str(err).splitlines() or [""])[0][:200]
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


ESTIMATORS: dict[str, Callable[..., float]] = {
    "logme": logme,
    "hscore": hscore,
    "knn": knn_accuracy,
    "linear_probe": linear_probe,
}
_TAKE_METRIC_AND_SEED = {"knn", "linear_probe"}


def score_features(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    multi_label: bool = False,
    metric: str = "accuracy",
    seed: int = 0,
    estimators: Sequence[str] | None = None,
    failures: dict[str, str] | None = None,
) -> dict[str, float]:
    """Run the named estimators (default: all of :data:`ESTIMATORS`) on the same features and labels.

    Returns ``{name: score}`` plus ``{name + "_seconds": wall time}`` for each (a name given twice runs once).
    ``metric`` and ``seed`` go to the estimators that take them (knn, linear_probe). Bad features or labels
    raise before any estimator runs. With ``failures`` (a dict to fill), an estimator that fails on its own
    scores NaN and its one-line reason is put in ``failures[name]``, and the others still run; without it the
    failure is raised.
    """
    names = list(dict.fromkeys(ESTIMATORS if estimators is None else estimators))
    unknown = [name for name in names if name not in ESTIMATORS]
    if unknown:
        raise UserError(f"unknown estimator(s) {', '.join(map(repr, unknown))}; choose from {', '.join(ESTIMATORS)}")
    _check_metric(metric)
    _check(features, labels, multi_label)  # fail once, before any estimator runs
    results: dict[str, float] = {}
    for name in names:
        options = {"metric": metric, "seed": seed} if name in _TAKE_METRIC_AND_SEED else {}
        started = time.perf_counter()
        try:
            results[name] = ESTIMATORS[name](features, labels, multi_label=multi_label, **options)
        except Exception as err:  # one estimator's trouble (a class too rare to hold out) need not sink the others
            if failures is None:
                raise
            failures[name] = error_line(err)
            results[name] = float("nan")
        results[f"{name}_seconds"] = time.perf_counter() - started
    return results
