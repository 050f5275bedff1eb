"""The domain classifier: how well a logistic regression on frozen embeddings tells source from target.

Its cross-validated error gives the proxy A-distance of Ben-David et al. (2007),
``PAD = 2 (1 - 2 err)``: about 0 when the two sets cannot be told apart, 2 when they always can.
Chance-level accuracies below 0.5 give slightly negative values; they are reported as measured.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: texts each side needs at the least: every one of the folds then holds a few of each
MIN_TEXTS_PER_SIDE = 20
FOLDS = 5


@dataclass
class DomainClassifier:
    """Held-out accuracy of the source-vs-target classifier and every text's held-out target probability."""

    accuracy: float
    fold_accuracies: list[float]
    proxy_a_distance: float
    target_probability: np.ndarray  # per text, from the fold that held it out; source rows first
    is_target: np.ndarray


def proxy_a_distance(error: float) -> float:
    """``2 (1 - 2 error)`` for a domain classifier's held-out error."""
    return 2.0 * (1.0 - 2.0 * error)


def domain_classifier(
    source: np.ndarray, target: np.ndarray, *, folds: int = FOLDS, seed: int = 0, texts: Sequence[str] | None = None
) -> DomainClassifier:
    """Cross-validated (stratified ``folds``) logistic regression on standardised features, source = 0, target = 1.

    Texts that both sides hold are kept in one fold: split apart, the copy in the training folds carries the other
    side's label, every held-out copy is predicted wrong, and identical sets would score far below chance (a proxy
    A-distance near -2 where it should be 0). ``texts`` (source's, then target's) tells the copies apart; without
    them, embeddings equal to 5 decimals do (a text padded in another batch differs in the 7th).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features = np.concatenate([source, target]).astype(np.float64)
    is_target = np.concatenate([np.zeros(len(source), dtype=np.int64), np.ones(len(target), dtype=np.int64)])
    probability = np.zeros(len(features))
    accuracies = []
    if texts is not None:
        groups = np.unique([text.strip() for text in texts], return_inverse=True)[1].reshape(-1)
    else:
        groups = np.unique(np.round(features, 5), axis=0, return_inverse=True)[1].reshape(-1)
    if len(np.unique(groups)) == len(features):  # all distinct: the plain stratified folds, as reports always had
        splits = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(features, is_target)
    else:
        splits = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed).split(features, is_target, groups)
    for train, test in splits:
        classifier = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
        classifier.fit(features[train], is_target[train])
        probability[test] = classifier.predict_proba(features[test])[:, 1]
        accuracies.append(float(np.mean((probability[test] >= 0.5) == is_target[test])))
    accuracy = float(np.mean((probability >= 0.5) == is_target))
    return DomainClassifier(accuracy, accuracies, proxy_a_distance(1.0 - accuracy), probability, is_target)
