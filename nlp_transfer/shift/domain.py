"""The domain classifier: how well a logistic regression on frozen embeddings tells source from target.

Its cross-validated error gives the proxy A-distance of Ben-David et al. (2007),
``PAD = 2 (1 - 2 err)``: about 0 when the two sets cannot be told apart, 2 when they always can.
Chance-level accuracies below 0.5 give slightly negative values; they are reported as measured.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nlp_transfer.errors import DataError

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

    Texts that both sides hold are kept in one fold (:func:`shared_copies`): split apart, the copy in the training
    folds carries the other side's label, every held-out copy is predicted wrong, and identical sets would score far
    below chance (a proxy A-distance near -2 where it should be 0).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features = np.concatenate([source, target]).astype(np.float64)
    is_target = np.concatenate([np.zeros(len(source), dtype=np.int64), np.ones(len(target), dtype=np.int64)])
    probability = np.zeros(len(features))
    accuracies = []
    groups = shared_copies(features, is_target, texts)
    if len(np.unique(groups)) == len(features):  # all distinct: the plain stratified folds, as reports always had
        splits = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(features, is_target)
    else:  # fewer groups than folds (few distinct texts, all on both sides): a fold per group
        count = len(np.unique(groups))
        if count < 2:
            raise DataError("both sides hold one and the same text only: there is nothing to tell apart. Give more texts.")
        splits = StratifiedGroupKFold(n_splits=min(folds, count), shuffle=True, random_state=seed)
        splits = splits.split(features, is_target, groups)
        splits = list(splits)
        if any(len(np.unique(is_target[train])) < 2 for train, _ in splits):  # a shared text took most of one side
            splits = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(features, is_target)
    for train, test in splits:
        classifier = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
        classifier.fit(features[train], is_target[train])
        probability[test] = classifier.predict_proba(features[test])[:, 1]
        accuracies.append(float(np.mean((probability[test] >= 0.5) == is_target[test])))
    accuracy = float(np.mean((probability >= 0.5) == is_target))
    return DomainClassifier(accuracy, accuracies, proxy_a_distance(1.0 - accuracy), probability, is_target)


def shared_copies(features: np.ndarray, is_target: np.ndarray, texts: Sequence[str] | None = None) -> np.ndarray:
    """A group id per row: rows that are one text to the model (the same text, or embeddings equal to 4 decimals, as
    an uncased model reads "GREAT" and "great", or any model two spacings) share one when both sides hold it; every
    other row is a group of its own. Copies within one side need no grouping (they carry one label), and grouping
    them put a side's repeated text in one fold, where a training fold could hold no row of that side."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    keys = [np.unique(np.round(features, 4), axis=0, return_inverse=True)[1].reshape(-1)]
    if texts is not None:
        keys.append(np.unique([text.strip() for text in texts], return_inverse=True)[1].reshape(-1))
    rows, offset, rows_of, nodes = len(features), 0, [], []
    for labels in keys:  # row i -- node (key): rows sharing any key end in one connected component
        rows_of.append(np.arange(rows))
        nodes.append(rows + offset + labels)
        offset += int(labels.max()) + 1
    size = rows + offset
    graph = coo_matrix((np.ones(rows * len(keys)), (np.concatenate(rows_of), np.concatenate(nodes))), shape=(size, size))
    component = connected_components(graph, directed=False)[1][:rows]
    sides = np.zeros((component.max() + 1, 2), dtype=np.int64)
    np.add.at(sides, (component, is_target), 1)
    shared = (sides[component] > 0).all(axis=1)
    return np.where(shared, component, size + np.arange(rows))
