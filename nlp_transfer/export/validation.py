"""Score a run's validation split with the torch model and the exported one, and compare them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nlp_transfer.errors import UserError


@dataclass
class ValidationSet:
    """The encoded rows of the run's validation split, their gold labels, and the dataset NER metrics read."""

    rows: dict[str, list[Any]]
    labels: np.ndarray
    dataset: Any
    source: str
    #: a windows run: the text index of each row of :attr:`rows` (one row per window); None: one row per text
    documents: list[int] | None = None

    def per_text(self, task: Any, logits: np.ndarray) -> np.ndarray:
        """``logits`` of :attr:`rows` as one row per text (a windows run pools its window rows as predict does)."""
        if self.documents is None:
            return logits
        return task.document_logits(logits, self.documents, len(self.labels))


def validation_set(run_dir: Path, task: Any) -> ValidationSet:
    """The run's validation split as its ``config.yaml`` reads it (a held-out part of train when it names none)."""
    from nlp_transfer.config import load_saved_config

    if not (run_dir / "config.yaml").is_file():
        raise UserError(
            f"{run_dir}: no config.yaml, so no validation split to check the export on. "
            "Give the output_dir of a run trained with nlp-transfer."
        )
    config = load_saved_config(run_dir / "config.yaml")
    if config.task == "ner":
        return tagged_validation(config, task)
    return text_validation(config, task)


def text_validation(config: Any, task: Any) -> ValidationSet:
    """The validation split of a classification run's ``config`` encoded by ``task`` (windows when it has them)."""
    from nlp_transfer.data.text_rows import load_text_classification_data

    data = load_text_classification_data(config.data.without_made_rows(), multi_label=task.multi_label, seed=config.seed)
    from nlp_transfer.data.labels import map_integer_label_column

    split = _split(data.splits)
    encoded, documents = task.encode_texts(split["text"][:], "validation")
    gold = map_integer_label_column(split["label"][:], task.labels)  # a run trained on "1.0" reads "1" as its "1.0"
    if task.multi_label:
        labels = np.asarray([task.multi_hot(names, task.label2id) for names in gold])
    else:
        labels = np.asarray([task.label2id[name] for name in gold])
    source = f"the run's validation split ({len(split)} rows)"
    return ValidationSet(dict(encoded), labels, None, source, documents)


def tagged_validation(config: Any, task: Any) -> ValidationSet:
    """The validation split of a NER run's ``config`` encoded by ``task``, with the dataset its metrics read."""
    from nlp_transfer.data.tagged_rows import load_token_classification_data

    split = _split(load_token_classification_data(config.data, seed=config.seed).splits)
    dataset = task.preprocess(split.select_columns([c for c in ("tokens", "tags", "document") if c in split.column_names]))
    rows = {name: list(dataset[name]) for name in dataset.column_names}
    width = max(len(row) for row in rows["labels"])
    labels = np.asarray([row + [-100] * (width - len(row)) for row in rows["labels"]])
    return ValidationSet(rows, labels, dataset, f"the run's validation split ({len(split)} sentences)")


def _split(splits: Any) -> Any:
    if "validation" not in splits or len(splits["validation"]) == 0:
        raise UserError("the run has no validation rows to check the export on; train it with a validation split.")
    return splits["validation"]


def decisions(task: Any, logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """What the task decides from ``logits``: a label per text, a 0/1 per (text, label), or a tag per scored token."""
    if getattr(task, "multi_label", False):
        return (task.probabilities(logits) >= task.threshold).astype(np.int8)
    chosen = logits.argmax(-1)
    return chosen[labels != -100] if logits.ndim == 3 else chosen


def compare(task: Any, reference: np.ndarray, exported: np.ndarray, data: ValidationSet) -> dict[str, Any]:
    """Label agreement, the largest logit difference, and the task's main metric with each model (points = 100 x)."""
    metric = task.default_metric
    before = float(task.compute_metrics(reference, data.labels, data.dataset)[metric])
    after = float(task.compute_metrics(exported, data.labels, data.dataset)[metric])
    difference = np.abs(reference - exported)
    if reference.ndim == 3:  # NER: the scored tokens only (padding is -100 in both)
        difference = difference[data.labels != -100]
    return {
        "metric": metric,
        "before": before,
        "after": after,
        "drop_points": round(100 * (before - after), 4),
        "label_agreement": float(np.mean(decisions(task, reference, data.labels) == decisions(task, exported, data.labels))),
        "max_logit_difference": float(difference.max()) if difference.size else 0.0,
    }
