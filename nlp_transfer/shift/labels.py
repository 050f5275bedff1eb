"""How a trained run's predicted-label distribution moves from the source texts to the target texts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def label_shares(predicted: Sequence[Any], labels: Sequence[str]) -> dict[str, float]:
    """The share of texts predicted as each label; a multi-label prediction (a list) counts for each of its labels."""
    counts = dict.fromkeys(labels, 0)
    for label in predicted:
        for name in label if isinstance(label, list) else [label]:
            counts[name] = counts.get(name, 0) + 1
    total = len(predicted)
    return {name: count / total if total else 0.0 for name, count in counts.items()}


def total_variation(p: dict[str, float], q: dict[str, float]) -> float:
    """Half the summed absolute difference of two label-share tables (0: the same, 1: no label in common)."""
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in set(p) | set(q))


#: where a multi-label text with no label puts its weight in :func:`text_distribution`
NO_LABEL = "(no label)"


def text_distribution(predicted: Sequence[Any]) -> dict[str, float]:
    """Each text's one unit of weight spread evenly over its labels (a text of no label puts it on "(no label)"): a
    distribution over labels that sums to 1 for multi-label predictions too, and sees texts that lose their labels."""
    weights: dict[str, float] = {}
    for label in predicted:
        names = (label or [NO_LABEL]) if isinstance(label, list) else [label]
        for name in names:
            weights[name] = weights.get(name, 0.0) + 1.0 / len(names)
    return {name: weight / len(predicted) for name, weight in weights.items()} if predicted else {}


def label_shift(source_predicted: Sequence[Any], target_predicted: Sequence[Any], labels: Sequence[str]) -> dict[str, Any]:
    """Predicted-label shares on each side, their total variation distance, and the label that moved most.

    The distance compares each side's :func:`text_distribution`, so it stays in [0, 1] for multi-label runs too and
    counts texts that lose every label; ``most_moved_label`` is None when no share moved.
    """
    source, target = label_shares(source_predicted, labels), label_shares(target_predicted, labels)
    moved = max(labels, key=lambda name: abs(target[name] - source[name])) if labels else None
    distance = total_variation(text_distribution(source_predicted), text_distribution(target_predicted))
    return {
        "source_shares": source,
        "target_shares": target,
        "total_variation": distance,
        "most_moved_label": moved if moved is not None and target[moved] != source[moved] else None,  # none moved
    }
