"""Warnings about data that loads but probably does not train or score as meant.

Neither is an error, since both can be intended: a text that validation or test shares with training (its score then
says how well the model remembers, not how it does on new text), and labels that differ only in case or spacing
(``Positive`` and ``positive`` train as two classes).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

logger = logging.getLogger(__name__)

#: warnings already given in this process: data read again (each self-training round, check after train) says it once
_GIVEN: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _GIVEN:
        _GIVEN.add(message)
        logger.warning("%s", message)


def warn_about_shared_texts(rows: dict[str, list[Any]], sources: dict[str, str]) -> dict[str, int]:
    """Warn once per split whose texts the training split also holds; returns ``{split: shared rows}``.

    Rows without a ``text`` (tagged sentences) are not compared: short sentences recur across NER splits by nature.
    """
    if not rows.get("train") or not hasattr(rows["train"][0], "text"):
        return {}
    training = {row.text for row in rows["train"]}
    shared = {}
    for split in ("validation", "test"):
        count = sum(row.text in training for row in rows.get(split, []))
        if count:
            shared[split] = count
            _warn_once(
                f"{sources.get(split, split)}: {count} of its {len(rows[split])} texts ({100 * count / len(rows[split]):.1f}%) "
                f"are also training texts ({sources['train']}); its scores on them measure memory, not new text. Remove "
                "them from one side if that is not meant."
            )
    return shared


def warn_about_case_only_labels(labels: list[str], source: str) -> list[list[str]]:
    """Warn about label names that are one name in another case or spacing; returns those groups."""
    groups: dict[str, list[str]] = defaultdict(list)
    for name in labels:
        groups[" ".join(name.split()).casefold()].append(name)
    alike = [names for names in groups.values() if len(names) > 1]
    for names in alike:
        _warn_once(
            f"{source}: the labels {', '.join(repr(name) for name in names)} differ only in case or spacing and train as "
            f"{len(names)} separate classes. Write them one way if they are one class."
        )
    return alike
