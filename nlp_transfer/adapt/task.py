"""The task the training loop runs for adaptation: masked-LM batches, loss and held-out metrics.

It satisfies ``training.loop.TrainableTask``: the loop batches its rows with :meth:`collator`, takes the
loss of :meth:`loss` and selects the best model by the held-out masked-LM ``loss`` (lower is better).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import datasets
import numpy as np
import torch

from nlp_transfer.adapt.masking import HELDOUT_STREAM, IGNORE, MaskingCollator, WholeWordMasker, encode


@dataclass
class MaskedLMTask:
    """Tokenizes texts into rows (ids, word index per token, row number) and scores masked tokens."""

    tokenizer: Any
    words: str  # "wordpiece" or "word_ids": how whole words are found
    seed: int
    max_length: int = 256
    probability: float = 0.15
    window_stride: int | None = None  # None: a row per text, cut at max_length; else long texts become windows
    truncated: dict[str, int] = field(default_factory=dict)

    default_metric: ClassVar[str] = "loss"
    batch_columns: ClassVar[tuple[str, ...]] = ("input_ids", "word_ids", "row", "labels")

    def __post_init__(self) -> None:
        self.masker = WholeWordMasker.for_tokenizer(self.tokenizer, self.seed, self.probability)
        uses_types = "token_type_ids" in getattr(self.tokenizer, "model_input_names", ())
        self._collator = MaskingCollator(self.masker, self.tokenizer.pad_token_id, uses_types)

    def collator(self) -> MaskingCollator:
        """The one collator of the run (training and held-out batches), whose epoch a callback sets."""
        return self._collator

    def preprocess(self, texts: Sequence[str], split: str, *, fixed_masks: bool = False) -> datasets.Dataset:
        """Rows of ``texts``; with ``fixed_masks`` each row is masked once, for good (the held-out lines)."""
        encoded = encode(self.tokenizer, texts, self.max_length, self.words, stride=self.window_stride)
        self.truncated[split] = int(sum(encoded.pop("truncated")))
        if self.window_stride is not None:
            self.truncated[f"{split}_windows"] = len(encoded["input_ids"])
        encoded["row"] = list(range(len(encoded["input_ids"])))
        encoded["length"] = [len(ids) for ids in encoded["input_ids"]]
        if fixed_masks:
            pairs = [
                self.masker.mask(ids, words, self.masker.generator(HELDOUT_STREAM, 0, row))
                for row, (ids, words) in enumerate(zip(encoded["input_ids"], encoded["word_ids"], strict=True))
            ]
            encoded["input_ids"] = [ids for ids, _ in pairs]
            encoded["labels"] = [labels for _, labels in pairs]
        return datasets.Dataset.from_dict(encoded)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over the masked tokens of the batch (0 for a batch with none)."""
        masked = labels != IGNORE
        return logits[..., 0].sum() / masked.sum().clamp(min=1)

    def compute_metrics(self, logits: np.ndarray, labels: np.ndarray, dataset: Any = None) -> dict[str, Any]:
        """Masked-LM loss, perplexity and top-1 accuracy over every masked token."""
        masked = labels != IGNORE
        count = int(masked.sum())
        loss = float(logits[..., 0][masked].mean()) if count else float("nan")
        accuracy = float(logits[..., 1][masked].mean()) if count else float("nan")
        return {"loss": loss, "perplexity": math.exp(min(loss, 50.0)), "masked_accuracy": accuracy, "masked_tokens": count}
