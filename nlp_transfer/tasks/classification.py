"""Sequence classification, single-label (sentiment, topics) and multi-label.

A task bundles what a training run needs to know about the problem: the label schema, how to
tokenize, how to batch, which model head to build, the loss, the metrics, and how to turn logits
into predictions. The training loop and the recipes only talk to this interface.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import datasets
import numpy as np
import torch
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    DataCollatorWithPadding,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from nlp_transfer.evaluation.metrics import classification_metrics
from nlp_transfer.models import load_pretrained, resolve_with_tokenizer


@dataclass
class SequenceClassificationTask:
    """Everything task-specific about fine-tuning a sequence classifier.

    Build one with :func:`build_classification_task`.
    """

    model_path: str
    labels: list[str]
    tokenizer: PreTrainedTokenizerBase
    multi_label: bool = False
    max_length: int = 256
    threshold: float = 0.5
    class_weights: torch.Tensor | None = None
    trust_remote_code: bool = False
    allow_pickle: bool = False
    model_name: str = ""
    model_source: str = ""
    truncated: dict[str, int] = field(default_factory=dict)

    name = "text-classification"
    batch_columns = ("input_ids", "attention_mask", "token_type_ids", "labels")

    @property
    def id2label(self) -> dict[int, str]:
        """Label names by id, as saved in the model config."""
        return dict(enumerate(self.labels))

    @property
    def label2id(self) -> dict[str, int]:
        """Label ids by name."""
        return {name: i for i, name in enumerate(self.labels)}

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

    def build_model(self, *, from_scratch: bool = False) -> PreTrainedModel:
        """The pretrained encoder with a fresh classification head (or random weights if ``from_scratch``)."""
        kwargs: dict[str, Any] = {
            "num_labels": len(self.labels),
            "id2label": self.id2label,
            "label2id": self.label2id,
            "problem_type": "multi_label_classification" if self.multi_label else "single_label_classification",
        }
        if from_scratch:
            config = AutoConfig.from_pretrained(self.model_path, trust_remote_code=self.trust_remote_code, **kwargs)
            return AutoModelForSequenceClassification.from_config(config, trust_remote_code=self.trust_remote_code)
        return load_pretrained(
            AutoModelForSequenceClassification,
            self.model_path,
            allow_pickle=self.allow_pickle,
            trust_remote_code=self.trust_remote_code,
            **kwargs,
        )

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy (single-label) or binary cross-entropy (multi-label), class-weighted if set."""
        weight = None if self.class_weights is None else self.class_weights.to(logits.device)
        if self.multi_label:
            return torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), labels.float(), pos_weight=weight)
        return torch.nn.functional.cross_entropy(logits.float(), labels, weight=weight)

    # ------------------------------------------------------------------ outputs

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Softmax for single-label, sigmoid for multi-label (what ``pipeline`` applies too)."""
        logits = logits.astype(np.float64)
        if self.multi_label:
            return 1.0 / (1.0 + np.exp(-logits))
        shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return shifted / shifted.sum(axis=-1, keepdims=True)

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
    """Inverse-frequency weights ``n / (k * count)``; for multi-label, BCE ``pos_weight = negatives / positives``."""
    n = len(labels)
    counts = dict.fromkeys(names, 0)
    for label in labels:
        for item in label if isinstance(label, list) else [label]:
            counts[item] += 1
    if multi_label:
        return [(n - counts[name]) / max(counts[name], 1) for name in names]
    return [n / (len(names) * max(counts[name], 1)) for name in names]


def count_truncated(encoded: Any, texts: Sequence[str], tokenizer: PreTrainedTokenizerBase, max_length: int) -> int:
    """How many texts lost tokens to ``max_length`` (from the fast tokenizer's overflow, else re-tokenized)."""
    encodings = getattr(encoded, "encodings", None)
    if encodings:
        return sum(bool(e.overflowing) for e in encodings)
    full = tokenizer(list(texts), truncation=False)["input_ids"]
    return sum(len(ids) > max_length for ids in full)
