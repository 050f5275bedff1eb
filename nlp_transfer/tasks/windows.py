"""Long documents as overlapping windows: cut a text into pieces of ``max_length`` tokens, pool their logits.

``training.long_text: windows`` (classification and multilabel). The fast tokenizer does the cutting
(``return_overflowing_tokens`` with ``stride``): a text longer than ``max_length`` tokens becomes several
windows, each one repeating the last ``stride`` content tokens of the window before it, so every token of
the text is in at least one window. ``overflow_to_sample_mapping`` says which text each window came from.

- **Training**: every window is a training row that carries its document's label.
- **Evaluation and prediction**: the model scores every window; a document's logits are the mean (or the
  max, per label) of its windows' logits, so there is one prediction per document and metrics count
  documents, never windows.

The cost is one forward pass per window: a text of ``n`` content tokens takes about
``ceil((n - stride) / (max_length - specials - stride))`` windows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from transformers import PreTrainedTokenizerBase

from nlp_transfer.errors import UserError

MODES = ("truncate", "windows")
POOLINGS = ("mean", "max")
#: the dataset column that names the document (text index) each window row belongs to
DOCUMENT_COLUMN = "window_document"
#: the key of the model's config.json that records how a windows run reads long texts (read back by ``load_run``)
CONFIG_KEY = "nlp_transfer_long_text"


@dataclass(frozen=True)
class WindowSettings:
    """How a windows run cuts and recombines texts: the overlap in tokens and the pooling of window logits."""

    stride: int
    pooling: str = "mean"

    def to_config(self) -> dict[str, Any]:
        """The settings as saved in the model's ``config.json`` under :data:`CONFIG_KEY`."""
        return {"mode": "windows", "stride": self.stride, "pooling": self.pooling}

    @classmethod
    def from_config(cls, value: Any) -> WindowSettings | None:
        """The settings a saved model's config records (None: the run truncates, as every run before windows)."""
        if not isinstance(value, dict) or value.get("mode") != "windows":
            return None
        return cls(stride=int(value.get("stride", 0)), pooling=str(value.get("pooling", "mean")))


def resolve_stride(stride: int | None, max_length: int) -> int:
    """``training.window_stride``, or a quarter of ``max_length`` when it is null."""
    return max_length // 4 if stride is None else stride


@dataclass
class Windows:
    """Tokenized windows of a list of texts: model columns per window and the text each came from."""

    columns: dict[str, list[Any]]
    documents: list[int]

    def long_texts(self) -> int:
        """How many texts needed more than one window."""
        counts = np.bincount(np.asarray(self.documents, dtype=np.int64)) if self.documents else np.zeros(0)
        return int((counts > 1).sum())


def encode_windows(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int, stride: int) -> Windows:
    """Every text of ``texts`` as one or more windows of at most ``max_length`` tokens overlapping by ``stride``.

    Needs a fast tokenizer (the overflow mapping is its feature). Short texts give exactly the row that
    plain truncation gives.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise UserError(
            "training.long_text=windows needs a fast (Rust) tokenizer for its overflow windows; "
            "this model has a slow one. Use training.long_text=truncate."
        )
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length, stride=stride, return_overflowing_tokens=True)
    documents = [int(i) for i in encoded.pop("overflow_to_sample_mapping")]
    return Windows(columns=dict(encoded), documents=documents)


def pool_windows(logits: np.ndarray, documents: Sequence[int], n_documents: int, pooling: str = "mean") -> np.ndarray:
    """One row of logits per document: the mean or element-wise max of its windows' rows.

    ``documents[i]`` is the document of window row ``i``; every document in ``range(n_documents)`` must have a window.
    """
    if pooling not in POOLINGS:
        raise UserError(f"training.window_pooling={pooling!r} is unknown; choose one of {', '.join(POOLINGS)}.")
    index = np.asarray(documents, dtype=np.int64)
    counts = np.bincount(index, minlength=n_documents) if len(index) else np.zeros(n_documents, dtype=np.int64)
    if len(counts) != n_documents or (counts == 0).any():
        raise ValueError(f"window rows name {len(counts)} documents, some without a window; expected {n_documents}.")
    values = logits.astype(np.float64)
    if pooling == "mean":
        sums = np.zeros((n_documents, *values.shape[1:]), dtype=np.float64)
        np.add.at(sums, index, values)
        pooled = sums / counts.reshape(-1, *([1] * (values.ndim - 1)))
    else:
        pooled = np.full((n_documents, *values.shape[1:]), -np.inf, dtype=np.float64)
        np.maximum.at(pooled, index, values)
    return pooled.astype(logits.dtype)


def document_labels(labels: np.ndarray, documents: Sequence[int], n_documents: int) -> np.ndarray:
    """The label (row) of each document, taken from its first window (all its windows carry the same one)."""
    found, first = np.unique(np.asarray(documents, dtype=np.int64), return_index=True)
    if len(found) != n_documents:
        raise ValueError(f"window rows name {len(found)} documents; expected {n_documents}.")
    return labels[first]
