"""Sequence classification, single-label (sentiment, topics) and multi-label."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import datasets
import numpy as np
import torch
from sklearn.utils.class_weight import compute_class_weight
from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding, PreTrainedTokenizerBase

from nlp_transfer.config import RunConfig
from nlp_transfer.data.loading import TextClassificationData, load_text_classification_data
from nlp_transfer.errors import DataError
from nlp_transfer.evaluation.metrics import classification_metrics
from nlp_transfer.models import resolve_with_tokenizer
from nlp_transfer.tasks.base import Task, softmax


@dataclass
class SequenceClassificationTask(Task):
    """Everything task-specific about fine-tuning a sequence classifier.

    Build one with :func:`build_classification_task`.
    """

    multi_label: bool = False
    threshold: float = 0.5
    #: single-label runs: scores are softmax(logits / temperature); ``nlp-transfer check`` fits it on validation
    temperature: float = 1.0

    name = "text-classification"
    auto_class = AutoModelForSequenceClassification

    @property
    def default_metric(self) -> str:
        """The validation metric that picks the best model unless the config names another."""
        return "f1_micro" if self.multi_label else "accuracy"

    # ------------------------------------------------------------------ data

    def preprocess(self, dataset: datasets.Dataset, split: str = "") -> datasets.Dataset:
        """Tokenize ``text`` and encode ``label``; keeps ``length`` for length-grouped batching.

        Texts longer than ``max_length`` tokens are truncated and counted in ``self.truncated``.
        """
        label2id = self.label2id
        texts = list(dataset["text"])
        encoded = self.tokenizer(texts, truncation=True, max_length=self.max_length)
        self.truncated[split or "data"] = count_truncated(encoded, texts, self.tokenizer, self.max_length)
        columns: dict[str, Any] = dict(encoded)
        columns["length"] = [len(ids) for ids in encoded["input_ids"]]
        if "label" in dataset.column_names:
            if self.multi_label:
                columns["labels"] = [self.multi_hot(labels, label2id) for labels in dataset["label"]]
            else:
                columns["labels"] = [label2id[label] for label in dataset["label"]]
        return datasets.Dataset.from_dict(columns)

    @staticmethod
    def multi_hot(labels: Sequence[str], label2id: dict[str, int]) -> list[float]:
        """A 0/1 row with a 1 at each label's id."""
        row = [0.0] * len(label2id)
        for label in labels:
            row[label2id[label]] = 1.0
        return row

    def collator(self) -> DataCollatorWithPadding:
        """Pads each batch to its longest member (dynamic padding)."""
        return DataCollatorWithPadding(self.tokenizer)

    # ------------------------------------------------------------------ model

    def model_config(self) -> dict[str, Any]:
        """Labels and the problem type (single- or multi-label), which ``pipeline`` reads to pick softmax or sigmoid."""
        problem = "multi_label_classification" if self.multi_label else "single_label_classification"
        return {**super().model_config(), "problem_type": problem}

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy (single-label) or binary cross-entropy (multi-label), class-weighted if set."""
        if self.multi_label:
            weight = None if self.class_weights is None else self.class_weights.to(logits.device)
            return torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), labels.float(), pos_weight=weight)
        return self.weighted_cross_entropy(logits, labels)

    # ------------------------------------------------------------------ outputs

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Softmax (of logits / temperature) for single-label, sigmoid for multi-label (``pipeline`` applies no temperature)."""
        if self.multi_label:
            return 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
        return softmax(logits.astype(np.float64) / self.temperature)

    def compute_metrics(self, logits: np.ndarray, labels: np.ndarray, dataset: datasets.Dataset | None = None) -> dict[str, Any]:
        """Metrics of one split from its logits and gold labels."""
        probs = self.probabilities(logits)
        if self.multi_label:
            predictions = (probs >= self.threshold).astype(np.int32)
            return classification_metrics(predictions, labels.astype(np.int32), label_names=self.labels, multi_label=True)
        return classification_metrics(probs.argmax(-1), labels, label_names=self.labels, prediction_scores=probs)

    def postprocess(self, logits: np.ndarray, texts: Sequence[str]) -> list[dict[str, Any]]:
        """One prediction per text: ``text``, ``label``, ``score`` and every label's score.

        Multi-label: ``label`` is the list of labels at or above the threshold, best first.
        """
        probs = self.probabilities(logits)
        results = []
        for text, row in zip(texts, probs, strict=True):
            scores = {name: float(p) for name, p in zip(self.labels, row, strict=True)}
            if self.multi_label:
                chosen = [self.labels[i] for i in np.argsort(-row) if row[i] >= self.threshold]
                results.append({"text": text, "label": chosen, "score": float(row.max()), "scores": scores})
            else:
                best = int(row.argmax())
                results.append({"text": text, "label": self.labels[best], "score": float(row[best]), "scores": scores})
        return results


def build_classification_task(
    *,
    model: str,
    labels: Sequence[str],
    multi_label: bool = False,
    max_length: int = 256,
    threshold: float = 0.5,
    class_weights: Sequence[float] | None = None,
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
) -> SequenceClassificationTask:
    """A sequence-classification task for ``model`` (Hub id or folder) and ``labels`` in id order."""
    resolved, tokenizer = resolve_with_tokenizer(model, trust_remote_code=trust_remote_code)
    return SequenceClassificationTask(
        model_path=resolved.path,
        labels=list(labels),
        tokenizer=tokenizer,
        multi_label=multi_label,
        max_length=max_length,
        threshold=threshold,
        class_weights=None if class_weights is None else torch.tensor(list(class_weights), dtype=torch.float32),
        trust_remote_code=trust_remote_code,
        allow_pickle=allow_pickle,
        model_name=resolved.name,
        model_source=resolved.source,
    )


def balanced_class_weights(labels: Sequence[str | list[str]], names: Sequence[str], multi_label: bool = False) -> list[float]:
    """Single-label: scikit-learn's balanced weights ``n / (k * count)``; multi-label: BCE ``pos_weight = negatives / positives``."""
    if multi_label:
        n = len(labels)
        counts = dict.fromkeys(names, 0)
        for row in labels:
            for item in row:
                counts[item] += 1
        return [(n - counts[name]) / max(counts[name], 1) for name in names]
    missing = sorted(set(names) - set(labels))
    if missing:
        raise DataError(
            f"training.class_weights=balanced: no training example has the label(s) {missing}; "
            "remove them from data.labels or set training.class_weights=none."
        )
    return compute_class_weight("balanced", classes=np.asarray(list(names)), y=np.asarray(list(labels))).tolist()


def count_truncated(encoded: Any, texts: Sequence[str], tokenizer: PreTrainedTokenizerBase, max_length: int) -> int:
    """How many texts lost tokens to ``max_length`` (from the fast tokenizer's overflow, else re-tokenized)."""
    encodings = getattr(encoded, "encodings", None)
    if encodings:
        return sum(bool(e.overflowing) for e in encodings)
    full = tokenizer(list(texts), truncation=False)["input_ids"]
    return sum(len(ids) > max_length for ids in full)


def classification_from_config(config: RunConfig) -> tuple[SequenceClassificationTask, TextClassificationData]:
    """Read the run's text data and build its (multi-label when ``task: multilabel``) classification task."""
    multi_label = config.task == "multilabel"
    data = load_text_classification_data(config.data, multi_label=multi_label, seed=config.seed, model=config.model)
    weights = None
    if config.training.class_weights == "balanced":
        weights = balanced_class_weights(list(data.splits["train"]["label"]), data.labels, multi_label=multi_label)
    task = build_classification_task(
        model=config.model,
        labels=data.labels,
        multi_label=multi_label,
        max_length=config.training.max_length,
        threshold=config.training.threshold,
        class_weights=weights,
        trust_remote_code=config.trust_remote_code,
        allow_pickle=config.allow_pickle,
    )
    return task, data
