"""Transferability estimators (nlp_transfer.rank.estimators) against known answers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from nlp_transfer.errors import UserError
from nlp_transfer.rank import estimators
from nlp_transfer.rank.estimators import ESTIMATORS, hscore, knn_accuracy, linear_probe, logme, score_features


def gaussian_classes(n: int, d: int, n_classes: int, *, separation: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows f = separation * e_y + N(0, I): class y's mean sits on axis y."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, size=n)
    features = rng.normal(size=(n, d))
    features[np.arange(n), labels] += separation
    return features, labels


def multi_label_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three 0/1 labels, each the sign of one feature; two more features are noise."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, 5))
    return features, (features[:, :3] > 0).astype(np.int64)


def direct_evidence(features: np.ndarray, target: np.ndarray, alpha: float, beta: float) -> float:
    """log N(target; 0, I/beta + X X^T/alpha) / n, the marginal likelihood of Bayesian linear regression."""
    n = len(features)
    cov = np.eye(n) / beta + features @ features.T / alpha
    return float(multivariate_normal(mean=np.zeros(n), cov=cov).logpdf(target)) / n


def regression_target(features: np.ndarray, seed: int) -> np.ndarray:
    """A real target with signal and noise: its evidence has an interior maximum in (alpha, beta)."""
    rng = np.random.default_rng(seed)
    return features @ rng.normal(size=features.shape[1]) + rng.normal(size=len(features))


# ---------------------------------------------------------------- LogME


def test_logme_prefers_features_that_separate_the_classes():
    features, labels = gaussian_classes(300, 8, 3, separation=3.0, seed=0)
    shuffled = np.random.default_rng(1).permutation(labels)
    assert logme(features, labels) > logme(features, shuffled) + 0.05


@pytest.mark.parametrize("factor", [1e-3, 7.0, 1e4])
def test_logme_does_not_depend_on_the_feature_scale(factor):
    features, labels = gaussian_classes(200, 6, 3, separation=2.0, seed=2)
    assert logme(factor * features, labels) == pytest.approx(logme(features, labels), rel=1e-6)


@pytest.mark.parametrize(("n", "d"), [(40, 5), (10, 20)])
@pytest.mark.parametrize("kind", ["regression", "binary"])
def test_logme_evidence_is_the_log_marginal_likelihood(n, d, kind):
    rng = np.random.default_rng(n + d)
    features = rng.normal(size=(n, d))
    target = regression_target(features, seed=3) if kind == "regression" else (rng.random(n) < 0.5).astype(float)
    alpha, beta, evidence = estimators._logme_target(features, target)
    assert np.isfinite([alpha, beta, evidence]).all()
    assert evidence == pytest.approx(direct_evidence(features, target, alpha, beta), rel=1e-9, abs=1e-9)


@pytest.mark.parametrize(("n", "d"), [(40, 5), (10, 20)])
def test_logme_alpha_and_beta_maximise_the_evidence(n, d):
    # a target whose squared coordinates in the left singular basis equal their variances under
    # (alpha0, beta0), 1/beta0 + s_i^2/alpha0, has its evidence maximum exactly at (alpha0, beta0)
    alpha0, beta0 = 0.7, 2.5
    rng = np.random.default_rng(n * d)
    features = rng.normal(size=(n, d))
    u, s, _ = np.linalg.svd(features, full_matrices=True)
    variances = 1 / beta0 + np.pad(s, (0, n - len(s))) ** 2 / alpha0
    target = u @ (rng.choice([-1.0, 1.0], size=n) * np.sqrt(variances))
    alpha, beta, _ = estimators._logme_target(features, target)
    assert (alpha, beta) == pytest.approx((alpha0, beta0), rel=1e-3)  # the fixed point is slow when n < d
    best = direct_evidence(features, target, alpha, beta)
    for a, b in [(alpha * 1.5, beta), (alpha / 1.5, beta), (alpha, beta * 1.5), (alpha, beta / 1.5)]:
        assert direct_evidence(features, target, a, b) < best


@pytest.mark.parametrize("kind", ["well_conditioned", "ill_conditioned", "collinear"])
def test_logme_from_the_gram_matrix_equals_logme_from_the_svd(kind, monkeypatch):
    """Many rows per feature take the spectrum from X^T X; it must give what the SVD of X gives, also when the
    columns' scales span six orders of magnitude or one column repeats another (rank below d)."""
    features, labels = gaussian_classes(400, 8, 3, separation=1.5, seed=11)
    if kind == "ill_conditioned":
        features = features * np.logspace(-3, 3, 8)
    elif kind == "collinear":
        features[:, 7] = 2.0 * features[:, 0]
    assert len(features) >= estimators.GRAM_ROWS_PER_COLUMN * features.shape[1]  # the Gram path runs by default
    from_gram = logme(features, labels)
    monkeypatch.setattr(estimators, "GRAM_ROWS_PER_COLUMN", 10**9)  # force the SVD
    assert from_gram == pytest.approx(logme(features, labels), rel=1e-7)


def test_logme_is_the_mean_over_one_hot_targets():
    features, labels = gaussian_classes(60, 4, 3, separation=1.0, seed=5)
    per_class = [estimators._logme_target(features, (labels == c).astype(float))[2] for c in range(3)]
    assert logme(features, labels) == pytest.approx(np.mean(per_class), rel=1e-9)
    features, labels = multi_label_data(60, seed=6)
    per_label = [estimators._logme_target(features, column)[2] for column in labels.T.astype(float)]
    assert logme(features, labels, multi_label=True) == pytest.approx(np.mean(per_label), rel=1e-9)


# ---------------------------------------------------------------- H-score


def test_hscore_matches_the_analytic_value_on_gaussian_classes():
    rng = np.random.default_rng(7)
    means = np.array([[2.0, 0.0, 0.0, 1.0], [0.0, 1.5, 0.0, 0.0], [0.0, 0.0, -1.0, 0.5]])
    sigma = 0.8
    labels = rng.choice(3, size=40000, p=[0.5, 0.3, 0.2])
    features = means[labels] + sigma * rng.normal(size=(len(labels), 4))
    frequencies = np.bincount(labels) / len(labels)
    centred = means - frequencies @ means
    between = centred.T @ (frequencies[:, None] * centred)
    expected = np.trace(np.linalg.solve(between + sigma**2 * np.eye(4), between))
    assert hscore(features, labels) == pytest.approx(expected, rel=0.03)


def test_hscore_prefers_features_that_separate_the_classes():
    features, labels = gaussian_classes(300, 8, 3, separation=3.0, seed=8)
    shuffled = np.random.default_rng(9).permutation(labels)
    assert hscore(features, labels) > 5 * hscore(features, shuffled)


def test_hscore_stays_finite_when_dimensions_outnumber_rows():
    features, labels = gaussian_classes(20, 200, 2, separation=3.0, seed=10)
    score = hscore(features, labels)
    assert np.isfinite(score) and score > 0


def test_hscore_multi_label_is_the_mean_of_binary_scores():
    features, labels = multi_label_data(200, seed=11)
    binary = [hscore(features, column) for column in labels.T]
    assert hscore(features, labels, multi_label=True) == pytest.approx(np.mean(binary), rel=1e-12)


# ---------------------------------------------------------------- kNN


def test_knn_is_perfect_on_well_separated_clusters():
    features, labels = gaussian_classes(150, 6, 3, separation=20.0, seed=12)
    assert knn_accuracy(features, labels) == 1.0
    assert knn_accuracy(features, labels, metric="f1_macro") == 1.0


def test_knn_is_near_chance_on_shuffled_labels():
    features, labels = gaussian_classes(400, 6, 2, separation=20.0, seed=13)
    shuffled = np.random.default_rng(14).permutation(labels)
    assert abs(knn_accuracy(features, shuffled) - 0.5) < 0.1


def test_knn_leaves_the_point_itself_out():
    # pairs of near-identical points with opposite labels: with k=1 a point's nearest *other* point is its
    # partner, of the other class (score 0.0); a point that voted for itself would score 1.0
    rng = np.random.default_rng(15)
    base = rng.normal(size=(50, 10))
    features = np.concatenate([base, base + 1e-6 * rng.normal(size=base.shape)])
    labels = np.repeat([0, 1], 50)
    assert knn_accuracy(features, labels, k=1) == 0.0


def test_knn_vote_ties_go_to_the_nearest():
    neighbours = np.array([[2, 1, 1, 2], [0, 1, 1, 1], [3, 4, 5, 6]])  # nearest first
    assert estimators._vote(neighbours, multi_label=False).tolist() == [2, 1, 3]
    per_label = np.array([[[1, 0], [0, 0], [1, 1], [0, 1]]])  # one row, k=4, two labels: 2-2 ties
    assert estimators._vote(per_label, multi_label=True).tolist() == [[1, 0]]


def test_knn_does_not_depend_on_the_chunk_size(monkeypatch):
    features, labels = gaussian_classes(120, 5, 3, separation=1.5, seed=16)
    whole = knn_accuracy(features, labels, metric="f1_macro")
    monkeypatch.setattr(estimators, "_KNN_CHUNK_CELLS", 7 * 120)  # blocks of 7 rows
    assert knn_accuracy(features, labels, metric="f1_macro") == whole


def test_knn_subsamples_with_the_seed():
    features, labels = gaussian_classes(300, 5, 3, separation=1.5, seed=17)
    first = knn_accuracy(features, labels, max_points=100, seed=3)
    assert knn_accuracy(features, labels, max_points=100, seed=3) == first
    assert 0.0 <= first <= 1.0


def test_knn_multi_label_votes_per_label():
    features, labels = multi_label_data(300, seed=18)
    assert knn_accuracy(features, labels, multi_label=True, metric="f1_micro") > 0.75
    shuffled = np.random.default_rng(19).permutation(labels)
    assert knn_accuracy(features, shuffled, multi_label=True, metric="f1_micro") < 0.65


# ---------------------------------------------------------------- linear probe


def test_linear_probe_is_high_on_separable_data():
    features, labels = gaussian_classes(400, 10, 4, separation=6.0, seed=20)
    assert linear_probe(features, labels) > 0.95
    assert linear_probe(features, labels, metric="f1_macro") > 0.95


def test_linear_probe_is_near_chance_on_random_labels():
    features, _ = gaussian_classes(500, 10, 2, separation=0.0, seed=21)
    labels = np.random.default_rng(22).integers(0, 2, size=500)
    assert abs(linear_probe(features, labels) - 0.5) < 0.15


def test_linear_probe_multi_label_beats_chance():
    features, labels = multi_label_data(400, seed=23)
    assert linear_probe(features, labels, multi_label=True, metric="f1_micro") > 0.85
    assert linear_probe(features, labels, multi_label=True, metric="f1_macro") > 0.85


def test_linear_probe_split_is_stratified():
    labels = np.repeat([0, 1, 2], [50, 30, 20])
    train, test = estimators._split(labels, multi_label=False, seed=0)
    assert np.bincount(labels[test]).tolist() == [10, 6, 4]
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(100))


# ---------------------------------------------------------------- score_features


def test_score_features_runs_every_estimator_and_times_it():
    features, labels = gaussian_classes(120, 6, 3, separation=3.0, seed=24)
    scores = score_features(features, labels)
    assert set(scores) == {name for name in ESTIMATORS} | {f"{name}_seconds" for name in ESTIMATORS}
    assert scores["logme"] == pytest.approx(logme(features, labels))
    assert scores["knn"] == knn_accuracy(features, labels)
    assert all(np.isfinite(value) for value in scores.values())
    assert all(scores[f"{name}_seconds"] >= 0 for name in ESTIMATORS)
    chosen = score_features(features, labels, estimators=["hscore"])
    assert set(chosen) == {"hscore", "hscore_seconds"}


def test_score_features_rejects_an_unknown_estimator():
    features, labels = gaussian_classes(30, 3, 2, separation=3.0, seed=25)
    with pytest.raises(UserError, match=r"unknown estimator.*'leep'"):
        score_features(features, labels, estimators=["leep"])


# ---------------------------------------------------------------- bad input

GOOD_FEATURES, GOOD_LABELS = gaussian_classes(30, 3, 2, separation=3.0, seed=26)
NAN_FEATURES = GOOD_FEATURES.copy()
NAN_FEATURES[4, 1] = np.nan
INF_FEATURES = GOOD_FEATURES.copy()
INF_FEATURES[7, 0] = np.inf
BAD_INPUTS = {
    "features not 2-D": (GOOD_FEATURES[:, 0], GOOD_LABELS, False, "must be a 2-D array"),
    "lengths differ": (GOOD_FEATURES, GOOD_LABELS[:-1], False, "30 rows but labels have 29"),
    "one class": (GOOD_FEATURES, np.full(30, "positive"), False, r"only one class \(positive\).*rank --sample"),
    "one value per label": (GOOD_FEATURES, np.tile([1, 0], (30, 1)), True, "every label column.*single value"),
    "NaN features": (NAN_FEATURES, GOOD_LABELS, False, "NaN or infinite values in 1 of 30 rows"),
    "infinite features": (INF_FEATURES, GOOD_LABELS, False, "NaN or infinite"),
}


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_a_user_error(name, case):
    features, labels, multi_label, message = BAD_INPUTS[case]
    with pytest.raises(UserError, match=message):
        ESTIMATORS[name](features, labels, multi_label=multi_label)
    with pytest.raises(UserError, match=message):
        score_features(features, labels, multi_label=multi_label, estimators=[name])


def test_string_class_labels_are_accepted():
    features, labels = gaussian_classes(60, 4, 2, separation=4.0, seed=27)
    names = np.where(labels == 1, "positive", "negative")
    assert logme(features, names) == pytest.approx(logme(features, labels))
    assert knn_accuracy(features, names) == knn_accuracy(features, labels)


# ---------------------------------------------------------------- a class too rare to hold out, one estimator failing


def test_a_class_of_one_row_is_trained_on_and_the_probe_still_scores():
    """Planted fault: 60 rows of one class and 1 of another. A plain random split held the lone row out for some
    seeds, left the training split with one class and raised, which sank the whole ranking; it now always trains."""
    features, _ = gaussian_classes(61, 4, 2, separation=0.0, seed=28)
    labels = np.array([0] * 30 + [1] + [0] * 30)
    for seed in range(10):
        train, test = estimators._split(labels, multi_label=False, seed=seed)
        assert 30 in train and 30 not in test, seed
        assert sorted(np.concatenate([train, test]).tolist()) == list(range(61))
        assert 0.0 <= linear_probe(features, labels, seed=seed) <= 1.0


def test_the_split_without_lone_classes_is_unchanged():
    """Rows of classes with two rows or more are split exactly as train_test_split splits them."""
    from sklearn.model_selection import train_test_split

    labels = np.repeat([0, 1, 2], [50, 30, 20])
    expected = train_test_split(np.arange(100), test_size=0.2, random_state=3, stratify=labels)
    for got, want in zip(estimators._split(labels, multi_label=False, seed=3), expected, strict=True):
        np.testing.assert_array_equal(got, want)


def test_the_probe_refuses_classes_that_are_all_single_rows():
    with pytest.raises(UserError, match="no rows to hold out: 3 of the 3 rows are the only row of their class"):
        linear_probe(np.eye(3), np.array([0, 1, 2]))


def test_one_failing_estimator_leaves_the_others_scored_when_failures_are_collected(monkeypatch):
    def broken(*args, **kwargs):
        raise UserError("the probe cannot split these rows")

    monkeypatch.setitem(ESTIMATORS, "linear_probe", broken)
    features, labels = gaussian_classes(60, 4, 2, separation=3.0, seed=29)
    failures: dict[str, str] = {}
    scores = score_features(features, labels, estimators=["logme", "linear_probe", "knn"], failures=failures)
    assert failures == {"linear_probe": "the probe cannot split these rows"}
    assert np.isnan(scores["linear_probe"]) and np.isfinite(scores["logme"]) and np.isfinite(scores["knn"])
    with pytest.raises(UserError, match="cannot split"):  # without a failures dict it is raised, as before
        score_features(features, labels, estimators=["linear_probe"])
    with pytest.raises(UserError, match="NaN or infinite"):  # bad features still fail the whole call
        score_features(NAN_FEATURES, GOOD_LABELS, failures={})


def test_an_estimator_named_twice_runs_once(monkeypatch):
    calls = []
    monkeypatch.setitem(ESTIMATORS, "knn", lambda *a, **k: calls.append(1) or 0.5)
    features, labels = gaussian_classes(30, 3, 2, separation=3.0, seed=30)
    assert set(score_features(features, labels, estimators=["knn", "knn"])) == {"knn", "knn_seconds"}
    assert len(calls) == 1
