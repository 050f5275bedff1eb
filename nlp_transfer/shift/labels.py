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


def as_distribution(shares: dict[str, float]) -> dict[str, float]:
    """Label shares scaled to sum to 1: a multi-label table counts a text once per label, so its shares may sum past 1
    (or to 0: then all the mass is on "no label")."""
    total = sum(shares.values())
    return {name: share / total for name, share in shares.items()} if total else {"(no label)": 1.0}


def label_shift(source_predicted: Sequence[Any], target_predicted: Sequence[Any], labels: Sequence[str]) -> dict[str, Any]:
    """Predicted-label shares on each side, their total variation distance, and the label that moved most.

    The distance compares the shares as distributions (:func:`as_distribution`), so it stays in [0, 1] for
    multi-label runs too.
    """
    source, target = label_shares(source_predicted, labels), label_shares(target_predicted, labels)
    moved = max(labels, key=lambda name: abs(target[name] - source[name])) if labels else None
    return {
        "source_shares": source,
        "target_shares": target,
        "total_variation": total_variation(as_distribution(source), as_distribution(target)),
        "most_moved_label": moved,
    }
