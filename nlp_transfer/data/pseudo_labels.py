"""Pseudo-labels: choosing a teacher's confident, class-balanced predictions, and the jsonl file that carries them.

Self-training (:mod:`nlp_transfer.self_training`) writes one file per round; ``data.pseudo_labeled_file`` appends
its rows to the training split after the validation hold-out, so validation and test only ever hold human labels.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nlp_transfer.errors import DataError
from nlp_transfer.files import write_text_atomic


@dataclass
class PseudoLabel:
    """One unlabelled text with the label its teacher gave it and the teacher's probability of that label."""

    text: str
    label: str
    score: float


def select_pseudo_labels(
    texts: Sequence[str],
    probabilities: np.ndarray,
    labels: Sequence[str],
    *,
    threshold: float,
    class_shares: dict[str, float] | None = None,
    max_per_class: int | None = None,
) -> list[PseudoLabel]:
    """The predictions whose top probability reaches ``threshold``, most confident first within each class.

    ``class_shares`` (label -> share of the labelled training rows) keeps those shares among the chosen ones: each
    class gets ``floor(share * n)`` where ``n`` is the largest total every class can fill from its confident
    predictions, so a class the teacher rarely predicts confidently limits the others instead of being drowned.
    ``None`` keeps every confident prediction. ``max_per_class`` caps each class before the shares are kept (capped
    afterwards, 34/102 at shares 25/75 became 20/20). The result is in text order.
    """
    if len(texts) != len(probabilities):
        raise ValueError(f"{len(texts)} texts but {len(probabilities)} rows of probabilities")
    best, score = probabilities.argmax(axis=1), probabilities.max(axis=1)
    confident = {name: [] for name in labels}
    for index in np.flatnonzero(score >= threshold):
        confident[labels[best[index]]].append(int(index))
    cap = len(texts) if max_per_class is None else max_per_class  # a cap shrinks every class alike, shares kept
    quota = _quotas({name: min(len(found), cap) for name, found in confident.items()}, class_shares)
    chosen: list[int] = []
    for name, found in confident.items():
        chosen += sorted(found, key=lambda i: -score[i])[: quota[name]]
    return [PseudoLabel(texts[i], labels[best[i]], float(score[i])) for i in sorted(chosen)]


def _quotas(available: dict[str, int], class_shares: dict[str, float] | None) -> dict[str, int]:
    """Per class, how many confident predictions to keep (all of them without ``class_shares``)."""
    if class_shares is None:
        return dict(available)
    shares = {name: class_shares.get(name, 0.0) for name in available}
    wanted = [name for name, share in shares.items() if share > 0]
    if not wanted:
        return dict.fromkeys(available, 0)
    total = min(available[name] / shares[name] for name in wanted)  # the most every class can fill at its share
    return {name: math.floor(shares[name] * total + 1e-9) for name in available}


def class_shares(labels: Sequence[str]) -> dict[str, float]:
    """Each label's share of ``labels``."""
    counts: dict[str, int] = {}
    for name in labels:
        counts[name] = counts.get(name, 0) + 1
    return {name: count / len(labels) for name, count in counts.items()}


def write_pseudo_labels(path: Path, rows: Sequence[PseudoLabel]) -> None:
    """Write ``rows`` as jsonl (text, label, score), atomically: a half-written file never replaces a good one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = (json.dumps({"text": row.text, "label": row.label, "score": round(row.score, 6)}, ensure_ascii=False) for row in rows)
    write_text_atomic(path, "".join(line + "\n" for line in lines))


def read_pseudo_labels(path: str, labels: Sequence[str]) -> list[dict[str, Any]]:
    """The rows of a pseudo-label file as ``{"text", "label", "line"}``, checked against the run's ``labels``."""
    if not Path(path).is_file():
        raise DataError(f"data.pseudo_labeled_file={path}: no such file. Fix the path, or set data.pseudo_labeled_file=null.")
    rows = []
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                text, label = record["text"], record["label"]
            except (ValueError, KeyError, TypeError):
                raise DataError(
                    f'{path}:{number}: expected a JSON object with "text" and "label" (a label name). Fix or remove the line.'
                ) from None
            label = _label_name(label, labels, f"{path}:{number}")
            if not isinstance(text, str) or not text.strip():
                raise DataError(f"{path}:{number}: empty or non-string text. Remove the line.")
            rows.append({"text": text.strip(), "label": label, "line": number})
    return rows


def _label_name(label: Any, labels: Sequence[str], where: str) -> str:
    """``label`` as one of ``labels``: a name, or a JSON number whose digits are a name (``1`` for the label "1")."""
    whole = isinstance(label, int) or (isinstance(label, float) and label.is_integer())  # float() of a huge int overflows
    if whole and not isinstance(label, bool):
        if str(int(label)) in labels:
            return str(int(label))
        raise DataError(
            f"{where}: label {label} is a number, and pseudo-label files name labels; write one of {list(labels)} "
            "(as a JSON string)."
        )
    if not isinstance(label, str) or label not in labels:
        raise DataError(f"{where}: label {label!r} is not one of the run's labels {list(labels)}.")
    return label
