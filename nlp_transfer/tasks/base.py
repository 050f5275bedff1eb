"""What every task shares: its label schema, the model it builds, the weighted loss and the softmax.

A task bundles what a run needs to know about the problem: the labels, how to tokenize and batch,
which model head to build, the loss, the metrics, and how to turn logits into predictions. The loop
and the recipes only talk to this interface. A new task subclasses :class:`Task`, sets
:attr:`Task.auto_class` and ``default_metric``, and implements ``preprocess``, ``collator``, ``loss`` and
``compute_metrics`` (the ``TrainableTask`` protocol of ``training/loop.py``; docs/architecture.md walks through it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from nlp_transfer.models import load_pretrained, read_model_config


@dataclass
class Task:
    """Label schema, model building and loss shared by the tasks."""

    model_path: str
    labels: list[str]
    tokenizer: PreTrainedTokenizerBase
    max_length: int = 256
    class_weights: torch.Tensor | None = None
    trust_remote_code: bool = False
    allow_pickle: bool = False
    model_name: str = ""
    model_source: str = ""
    truncated: dict[str, int] = field(default_factory=dict)

    #: the ``transformers`` Auto class of the task's model head
    auto_class: ClassVar[Any] = None
    batch_columns: ClassVar[tuple[str, ...]] = ("input_ids", "attention_mask", "token_type_ids", "labels")
    multi_label: ClassVar[bool] = False

    @property
    def id2label(self) -> dict[int, str]:
        """Label names by id, as saved in the model config."""
        return dict(enumerate(self.labels))

    @property
    def label2id(self) -> dict[str, int]:
        """Label ids by name."""
        return {name: i for i, name in enumerate(self.labels)}

    def model_config(self) -> dict[str, Any]:
        """Keyword arguments for the model's config: the number of labels and their names."""
        return {"num_labels": len(self.labels), "id2label": self.id2label, "label2id": self.label2id}

    def build_model(self, *, from_scratch: bool = False) -> PreTrainedModel:
        """The pretrained encoder with a fresh task head (or random weights everywhere if ``from_scratch``)."""
        kwargs = self.model_config()
        if from_scratch:
            config = read_model_config(self.model_path, trust_remote_code=self.trust_remote_code, **kwargs)
            return self.auto_class.from_config(config, trust_remote_code=self.trust_remote_code)
        return load_pretrained(
            self.auto_class, self.model_path, allow_pickle=self.allow_pickle, trust_remote_code=self.trust_remote_code, **kwargs
        )

    def metric_names(self) -> frozenset[str] | None:
        """The numbers ``compute_metrics`` reports, so a wrong ``training.metric_for_best_model`` fails before training;
        None (the default) leaves the check to the first evaluation."""
        return None

    def weighted_cross_entropy(self, logits: torch.Tensor, labels: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        """Cross-entropy over the last axis of ``logits``, class-weighted when the task has weights."""
        weight = None if self.class_weights is None else self.class_weights.to(logits.device)
        return torch.nn.functional.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1), weight=weight, **kwargs
        )


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, in float64 and stable for large logits."""
    shifted = np.exp(logits.astype(np.float64) - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)
