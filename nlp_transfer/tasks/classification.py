"""Sequence classification, single-label (sentiment, topics) and multi-label."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import datasets
import numpy as np
import torch
from transformers import (
    AutoModelForSequenceClassification,
    DataCollatorWithPadding,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from nlp_transfer.config import RunConfig
from nlp_transfer.data.text_rows import TextClassificationData, load_text_classification_data
from nlp_transfer.errors import DataError, UserError, refuse_one_string
from nlp_transfer.evaluation.metrics import classification_metrics, scalar_metrics
from nlp_transfer.models import resolve_with_tokenizer
from nlp_transfer.tasks.base import Task, softmax
from nlp_transfer.tasks.windows import (
    CONFIG_KEY,
    DOCUMENT_COLUMN,
    WindowSettings,
    document_labels,
    encode_windows,
    pool_windows,
    resolve_stride,
)


@dataclass
class SequenceClassificationTask(Task):
    """Everything task-specific about fine-tuning a sequence classifier.

    Build one with :func:`build_classification_task`.
    """

    multi_label: bool = False
    threshold: float = 0.5
    #: single-label runs: scores are softmax(logits / temperature); ``nlp-transfer check`` fits it on validation
    temperature: float = 1.0
    #: ``check --calibrator isotonic``: a monotone map of the chosen label's score (``confidence`` -> ``calibrated``)
    top_label_map: dict[str, list[float]] | None = None
    #: ``training.long_text=windows``: how long texts become overlapping windows; None truncates at ``max_length``
    windows: WindowSettings | None = None

    name = "text-classification"
    auto_class = AutoModelForSequenceClassification

    @property
    def default_metric(self) -> str:
        """The validation metric that picks the best model unless the config names another."""
        return "f1_micro" if self.multi_label else "accuracy"

    # ------------------------------------------------------------------ data

    def preprocess(self, dataset: datasets.Dataset, split: str = "") -> datasets.Dataset:
        """Tokenize ``text`` and encode ``label``; keeps ``length`` for length-grouped batching.

        Texts longer than ``max_length`` tokens are truncated and counted in ``self.truncated``; with
        :attr:`windows` they become several rows (one per window, each with the text's label and its index
        in the ``window_document`` column), and ``self.truncated`` counts the long texts and the windows.
        """
        columns, documents = self.encode_texts(dataset["text"][:], split or "data")  # [:] reads the column at once
        columns["length"] = [len(ids) for ids in columns["input_ids"]]
        if "label" in dataset.column_names:
            lines = dataset["line"][:] if "line" in dataset.column_names else None
            labels = self.encode_labels(dataset["label"][:], split, lines)
            columns["labels"] = labels if documents is None else [labels[d] for d in documents]
        if documents is not None:
            columns[DOCUMENT_COLUMN] = documents
        return datasets.Dataset.from_dict(columns)

    def encode_texts(self, texts: Sequence[str], split: str) -> tuple[dict[str, list[Any]], list[int] | None]:
        """Model columns for ``texts`` and, with :attr:`windows`, the text index of each window row (else None).

        Counts in ``self.truncated``: ``split`` is the number of texts longer than ``max_length`` (truncated,
        or cut into windows); with windows, ``split + "_windows"`` is the number of window rows.
        """
        if self.windows is None:
            encoded = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)
            self.truncated[split] = count_truncated(encoded, texts, self.tokenizer, self.max_length)
            return dict(encoded), None
        windows = encode_windows(self.tokenizer, texts, self.max_length, self.windows.stride)
        self.truncated[split] = windows.long_texts()
        self.truncated[f"{split}_windows"] = len(windows.documents)
        return windows.columns, windows.documents

    def document_logits(self, logits: np.ndarray, documents: Sequence[int] | None, n_documents: int) -> np.ndarray:
        """One row of logits per text: ``logits`` itself, or its window rows pooled per text (mean or max)."""
        if documents is None or self.windows is None:
            return logits
        return pool_windows(logits, documents, n_documents, self.windows.pooling)

    def encode_labels(self, values: Sequence[Any], split: str = "", lines: Sequence[int] | None = None) -> list[Any]:
        """Each row's label as its id (single-label) or its 0/1 row (multi-label).

        A label the task does not know is a DataError naming the row (and its file line, from a ``line`` column),
        the label, the task's labels and the fix.
        """
        label2id, encoded = self.label2id, []
        for index, value in enumerate(values):
            try:
                encoded.append(self.multi_hot(value, label2id) if self.multi_label else self.label_id(value, label2id))
            except DataError as err:
                line = f" (line {lines[index]} of its file)" if lines is not None and lines[index] else ""
                raise DataError(f"{split or 'dataset'} row {index}{line}: {err}") from None
        return encoded

    @staticmethod
    def label_id(label: Any, label2id: dict[str, int]) -> int:
        """The id of one single-label row's ``label``; a DataError saying what to change when the task lacks it."""
        if isinstance(label, (list, tuple)):
            raise DataError(
                f"label {list(label)!r} is a list, and the task (labels {list(label2id)}) is single-label; "
                "build it with build_classification_task(..., multi_label=True)."
            )
        if isinstance(label, Hashable) and label in label2id:  # names as the task was built with them (ints too)
            return label2id[label]
        names = list(label2id)
        if not isinstance(label, str) and all(isinstance(name, str) for name in names):
            raise DataError(
                f"label {label!r} ({type(label).__name__}) is not one of the task's labels {names}, which are strings: map "
                "each id to its name first (a ClassLabel column: dataset.features['label'].int2str), or where the ids are "
                "the names, dataset.cast_column('label', datasets.Value('string'))."
            )
        raise DataError(
            f"label {label!r} is not one of the task's labels {names}; fix the data, or build the task with the labels it "
            "uses (load_text_classification_data(...).labels)."
        )

    @staticmethod
    def multi_hot(labels: Sequence[str], label2id: dict[str, int]) -> list[float]:
        """A 0/1 row with a 1 at each label's id; a DataError for a string (not a list) or a label the task lacks."""
        if isinstance(labels, str):
            raise DataError(
                f"label {labels!r} is one string, and a multi-label task needs a list of labels per row: read the data "
                "with load_text_classification_data(..., multi_label=True), or split the string into a list."
            )
        row = [0.0] * len(label2id)
        for label in labels:
            if label not in label2id:
                raise DataError(
                    f"label {label!r} (of {list(labels)!r}) is not one of the task's labels {list(label2id)}; fix the data, "
                    "or build the task with the labels it uses."
                )
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

    def build_model(self, *, from_scratch: bool = False) -> PreTrainedModel:
        """The model of :meth:`Task.build_model`; a windows run records its window settings in the model's config.

        They are saved in ``config.json``, so ``load_run`` predicts a saved run through the same windows.
        """
        model = super().build_model(from_scratch=from_scratch)
        if self.windows is not None:
            model.config.update({CONFIG_KEY: self.windows.to_config()})
        return model

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
        """Metrics of one split from its logits and gold labels.

        Window rows (``dataset`` has a ``window_document`` column) are pooled into one row per document
        first, so the metrics count documents.
        """
        if self.windows is not None and dataset is not None and DOCUMENT_COLUMN in dataset.column_names:
            documents = list(dataset[DOCUMENT_COLUMN])
            count = max(documents) + 1 if documents else 0
            logits = pool_windows(logits, documents, count, self.windows.pooling)
            labels = document_labels(labels, documents, count)
        probs = self.probabilities(logits)
        if self.multi_label:
            predictions = (probs >= self.threshold).astype(np.int32)
            return classification_metrics(predictions, labels.astype(np.int32), label_names=self.labels, multi_label=True)
        return classification_metrics(probs.argmax(-1), labels, label_names=self.labels, prediction_scores=probs)

    def metric_names(self) -> frozenset[str]:
        """The numbers :meth:`compute_metrics` reports for these labels (``roc_auc``: binary, both classes present)."""
        ids = np.arange(len(self.labels))
        if self.multi_label:
            one_hot = np.eye(len(self.labels), dtype=np.int32)
            metrics = classification_metrics(one_hot, one_hot, label_names=self.labels, multi_label=True)
        else:
            metrics = classification_metrics(ids, ids, label_names=self.labels, prediction_scores=np.eye(len(self.labels)))
        return frozenset(scalar_metrics(metrics))

    def label_score(self, probability: float) -> float:
        """The chosen label's score: its probability, through the top-label map when the check fitted one."""
        if self.top_label_map is None:
            return float(probability)
        return float(np.interp(probability, self.top_label_map["confidence"], self.top_label_map["calibrated"]))

    def postprocess(self, logits: np.ndarray, texts: Sequence[str]) -> list[dict[str, Any]]:
        """One prediction per text: ``text``, ``label``, ``score`` and every label's score.

        ``score`` is the chosen label's calibrated confidence: its probability after the temperature, or with
        ``check --calibrator isotonic`` that probability through the fitted top-label map (then it can differ from
        ``scores[label]``, which stays the model's distribution). Multi-label: ``label`` is the list of labels at or
        above the threshold, best first.
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
                results.append({"text": text, "label": self.labels[best], "score": self.label_score(row[best]), "scores": scores})
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
    windows: WindowSettings | None = None,
) -> SequenceClassificationTask:
    """A sequence-classification task for ``model`` (Hub id or folder) and ``labels`` in id order.

    ``windows``: cut texts longer than ``max_length`` into overlapping windows (None: truncate them).
    """
    refuse_one_string(labels, "labels", "label names")
    repeated = sorted({name for name in labels if list(labels).count(name) > 1})
    if repeated:  # ["a", "a", "b"] gave label2id {"a": 1, "b": 2}: id 0 had no name
        raise UserError(f"labels={list(labels)} names {', '.join(repeated)} more than once; list each label once.")
    resolved, tokenizer = resolve_with_tokenizer(model, trust_remote_code=trust_remote_code, max_length=max_length)
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
        windows=windows,
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
    from sklearn.utils.class_weight import compute_class_weight  # scikit-learn only where weights are asked for

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
    task = build_classification_task(
        model=config.model,
        labels=data.labels,
        multi_label=multi_label,
        max_length=config.training.max_length,
        threshold=config.training.threshold,
        trust_remote_code=config.trust_remote_code,
        allow_pickle=config.allow_pickle,
        windows=windows_from_config(config),
    )
    if config.training.class_weights == "balanced":
        labels = data.splits["train"]["label"][:]
        if task.windows is not None:  # the loss trains on windows: a long text's class counts once per window
            windows = encode_windows(task.tokenizer, data.splits["train"]["text"][:], task.max_length, task.windows.stride)
            labels = [labels[document] for document in windows.documents]
        weights = balanced_class_weights(labels, data.labels, multi_label=multi_label)
        task.class_weights = torch.tensor(weights, dtype=torch.float32)
    return task, data


def windows_from_config(config: RunConfig) -> WindowSettings | None:
    """The run's window settings when ``training.long_text=windows`` (None for ``truncate``)."""
    training = config.training
    if training.long_text != "windows":
        return None
    return WindowSettings(stride=resolve_stride(training.window_stride, training.max_length), pooling=training.window_pooling)
