"""Sentence pairs for contrastive training: drawn on demand, batched as one forward pass, scored by cosine.

The contrastive strategy (:mod:`nlp_transfer.transfer.contrastive`) trains the encoder on pairs of training
texts: same label means similar (target 1), different labels dissimilar (target 0). Building every pair up
front grows with the square of the examples (the out-of-memory reports of SetFit users); here
:class:`PairRows` is a sequence whose item ``j`` is computed when asked for, from ``(seed, j)`` alone:

- item ``j`` pairs anchor ``j % n`` with a partner; whether that partner is positive or negative follows
  from ``j // n`` (even passes positive, odd passes negative), so the pairs are exactly balanced when the
  number of pairs per example is even, and every example is an anchor equally often;
- the partner is drawn with a generator seeded by ``(seed, j)``, so the same run draws the same pairs and a
  resumed run continues with the pairs an uninterrupted one would have drawn.

Memory is the tokenized examples plus an index per class: it does not grow with the number of pairs.

Multi-label rows (label vectors of 0/1) pair on one of the anchor's labels: a positive partner carries
that label, a negative one shares no label with the anchor (or, failing that, lacks that label).

A batch of B pairs is one batch of 2B texts. The ``cosine`` and ``contrastive`` losses score each pair alone;
``supcon`` (supervised contrastive, Khosla et al. 2020) scores every text against all 2B - 1 others of its batch
by their labels, so one forward pass teaches B (2B - 1) relations instead of B. The batch's labels therefore carry
each text's label set as well as the pair's target (:func:`pair_labels`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput

from nlp_transfer.errors import UserError
from nlp_transfer.training.batches import budgeted_batches
from nlp_transfer.transfer.feature_extraction import encoder_states, pool

PairLoss = Literal["cosine", "contrastive", "supcon"]
PAIR_LOSSES: tuple[str, ...] = ("cosine", "contrastive", "supcon")


def label_sets(labels: Sequence[Any]) -> list[frozenset[int]]:
    """Each row's labels as a set of ids: ``3`` -> {3}; a 0/1 vector -> the positions of its ones."""
    sets = []
    for value in labels:
        if isinstance(value, (list, tuple, np.ndarray)):
            sets.append(frozenset(int(i) for i, flag in enumerate(value) if flag))
        else:
            sets.append(frozenset({int(value)}))
    return sets


def check_pairable(labels: list[frozenset[int]], names: Sequence[str], where: Callable[[int], str] | None = None) -> None:
    """Refuse training rows that cannot form pairs: a row without a label, a class with one example, one class only.

    ``where(row)`` names a row in the messages (its file and line); by default "training row N".
    """
    where = where or (lambda row: f"training row {row + 1}")
    for row, found in enumerate(labels):
        if not found:
            raise UserError(
                f"{where(row)}: the row has no label; contrastive training pairs rows by label. "
                "Give every row at least one label or drop it."
            )
    counts = {label: 0 for label in range(len(names))}
    for found in labels:
        for label in found:
            counts[label] += 1
    for label, count in counts.items():
        if count == 1:
            only = next(row for row, found in enumerate(labels) if label in found)
            raise UserError(
                f"class {names[label]!r} has 1 training example ({where(only)} is the only one); contrastive training needs at least 2 "
                "per class to form a similar pair. Add an example of it or remove the class."
            )
    if sum(1 for count in counts.values() if count) < 2:
        raise UserError("the training data has one class only; contrastive training needs at least 2 classes.")


def setfit_pairs_per_example(labels: list[frozenset[int]]) -> int:
    """Pairs per row that add up to the SetFit library's default count for rows with these label sets.

    SetFit (``sampling_strategy="oversampling"``) takes every pair of rows, a row with itself included, as similar
    (a shared label) or dissimilar, and draws the larger set and the smaller one repeated up to its size:
    ``2 x max(similar, dissimilar)`` pairs. For C classes of k rows that is ``2 x max(C k(k+1)/2, C(C-1)/2 k^2)``:
    2,112 pairs, 33 a row, for 2 classes of 32. Rounded up, so never fewer pairs than SetFit's.
    """
    groups = list(Counter(labels).items())  # rows with the same label set pair alike: count by set, not by row
    similar = dissimilar = 0
    for index, (first, count) in enumerate(groups):
        similar += count * (count + 1) // 2 if first else 0
        for second, other in groups[index + 1 :]:
            if first & second:
                similar += count * other
            else:
                dissimilar += count * other
    return max(1, math.ceil(2 * max(similar, dissimilar) / len(labels)))


class AnchorLengths(Sequence[int]):
    """The length of pair ``j``'s anchor (row ``j % n``), for ``total`` pairs, computed on demand."""

    def __init__(self, row_lengths: list[int], total: int) -> None:
        self.row_lengths = row_lengths
        self.total = total

    def __len__(self) -> int:
        return self.total

    def __getitem__(self, j: int) -> int:  # type: ignore[override]
        """The anchor length of pair ``j``."""
        if not 0 <= j < self.total:
            raise IndexError(j)
        return self.row_lengths[j % len(self.row_lengths)]


class PairRows(Sequence[dict[str, Any]]):
    """``pairs_per_example`` pairs for each of ``rows`` (tokenized examples), drawn on demand; see the module doc."""

    def __init__(self, rows: Sequence[dict[str, Any]], labels: Sequence[Any], pairs_per_example: int, seed: int) -> None:
        self.rows = rows
        self.labels = label_sets(labels)
        self.pairs_per_example = pairs_per_example
        self.seed = seed
        members: dict[int, list[int]] = {}
        for index, found in enumerate(self.labels):
            for label in found:
                members.setdefault(label, []).append(index)
        self.members = {label: np.asarray(indices) for label, indices in members.items()}

    def __len__(self) -> int:
        return len(self.rows) * self.pairs_per_example

    @property
    def lengths(self) -> AnchorLengths:
        """Each pair's anchor length, without drawing the pairs (what batching by length needs)."""
        return AnchorLengths([len(row["input_ids"]) for row in self.rows], len(self))

    def __getitem__(self, j: int) -> dict[str, Any]:  # type: ignore[override]
        """The ``j``-th pair: both tokenized texts, its target (1 similar, 0 dissimilar) and its length."""
        if not 0 <= j < len(self):
            raise IndexError(j)
        anchor, pass_number = j % len(self.rows), j // len(self.rows)
        rng = np.random.default_rng([self.seed, j])
        positive = pass_number % 2 == 0
        partner = self.partner(anchor, positive, rng)
        first, second = self.rows[anchor], self.rows[partner]
        target = float(positive if partner != anchor else 1.0)
        return {
            "first": first,
            "second": second,
            "labels": target,
            "label_sets": (self.labels[anchor], self.labels[partner]),
            "length": max(len(first["input_ids"]), len(second["input_ids"])),
        }

    def partner(self, anchor: int, positive: bool, rng: np.random.Generator) -> int:
        """A row sharing a label with ``anchor`` (``positive``) or sharing none; the anchor itself when no such row exists."""
        own = self.labels[anchor]
        label = sorted(own)[int(rng.integers(len(own)))]
        if positive:
            pool_ = self.members[label]
            pool_ = pool_[pool_ != anchor]
        else:
            others = [index for other, index in self.members.items() if not own & {other}]
            pool_ = np.setdiff1d(np.concatenate(others), self._sharing(own)) if others else np.asarray([], dtype=int)
            if not len(pool_):  # every other row shares some label: take one without this label
                pool_ = np.setdiff1d(np.arange(len(self.rows)), self.members[label])
        return int(pool_[rng.integers(len(pool_))]) if len(pool_) else anchor

    def _sharing(self, own: frozenset[int]) -> np.ndarray:
        """Rows carrying any of ``own``'s labels."""
        return np.unique(np.concatenate([self.members[label] for label in own]))


def pair_labels(targets: Sequence[float], sets: Sequence[tuple[frozenset[int], frozenset[int]]], classes: int) -> torch.Tensor:
    """A batch's labels, one row per pair: ``[target, first text's labels (C 0/1 flags), second text's labels]``."""
    rows = torch.zeros(len(targets), 1 + 2 * classes)
    rows[:, 0] = torch.tensor(targets, dtype=torch.float32)
    for row, (first, second) in enumerate(sets):
        rows[row, [1 + label for label in first]] = 1.0
        rows[row, [1 + classes + label for label in second]] = 1.0
    return rows


@dataclass
class PairCollator:
    """Pads a batch of pairs into one batch of ``2 * B`` texts: the first texts, then their partners."""

    text_collator: Any
    classes: int

    def __call__(self, pairs: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """``input_ids`` (2B, L), ``attention_mask`` (and ``token_type_ids``) and :func:`pair_labels` as ``labels``."""
        texts = [pair["first"] for pair in pairs] + [pair["second"] for pair in pairs]
        batch = self.text_collator(
            [{k: v for k, v in row.items() if k in ("input_ids", "attention_mask", "token_type_ids")} for row in texts]
        )
        batch["labels"] = pair_labels([p["labels"] for p in pairs], [p["label_sets"] for p in pairs], self.classes)
        return batch


class PairEncoder(nn.Module):
    """The encoder of a sequence-classification model, embedding both texts of each pair.

    ``forward`` takes the 2B texts :class:`PairCollator` batches and returns, as ``logits`` of shape (B, 2, D), each
    pair's two mean-pooled embeddings scaled to unit length (their dot product is the pair's cosine).
    Its parameters are the model's own encoder (``model.base_model``): training it trains the model.

    With ``max_tokens`` (a CPU run), the 2B texts are encoded longest first in pieces of at most that many padded
    tokens, each piece cut to its own longest text, rather than as one batch padded to the longest of all: pairs
    are drawn at random, so one long text would pad every other. The embeddings are the same (dropout aside,
    which draws its masks per piece); the batch, and so the loss, is unchanged.
    """

    def __init__(self, model: nn.Module, max_tokens: int | None = None, encode_once: bool = False) -> None:
        super().__init__()
        self.model = model
        self.max_tokens = max_tokens
        self.encode_once = encode_once

    def forward(self, labels: torch.Tensor | None = None, **batch: torch.Tensor) -> SequenceClassifierOutput:
        """Unit-length embeddings of each pair (``labels`` accepted and ignored: the task computes the loss).

        With ``encode_once``, a text that occurs in several pairs of the batch is encoded once and its embedding
        shared by those pairs (one dropout mask for all its occurrences; without dropout, the same embeddings).
        """
        if self.encode_once:
            first, inverse = distinct_rows(batch)
            embeddings = self.embed({key: value[first] for key, value in batch.items()})[inverse]
        else:
            embeddings = self.embed(batch)
        first, second = F.normalize(embeddings, dim=-1).chunk(2)
        return SequenceClassifierOutput(logits=torch.stack([first, second], dim=1))

    def embed(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean-pooled embeddings of the batch's texts, in pieces under ``max_tokens`` where that applies."""
        pieces = self.pieces(batch.get("attention_mask"))
        if pieces is None:
            return pool(encoder_states(self.model, batch), batch.get("attention_mask"), "mean")
        pooled = []
        for rows, width in pieces:
            piece = {key: value[rows, :width] for key, value in batch.items()}
            pooled.append(pool(encoder_states(self.model, piece), piece["attention_mask"], "mean"))
        order = torch.cat([rows for rows, _ in pieces])
        return torch.cat(pooled)[torch.argsort(order)]  # back to the batch's own order

    def pieces(self, mask: torch.Tensor | None) -> list[tuple[torch.Tensor, int]] | None:
        """(rows, padded width) of each piece of a right-padded batch under ``max_tokens``; None: encode it whole."""
        if self.max_tokens is None or mask is None:
            return None
        lengths = mask.sum(1)
        if not torch.equal(mask.bool(), torch.arange(mask.shape[1], device=mask.device) < lengths[:, None]):
            return None  # padded on the left (or holes): slicing columns would cut real tokens
        groups = budgeted_batches(lengths.tolist(), len(lengths), self.max_tokens)
        if len(groups) == 1:
            return None
        return [(torch.tensor(rows, device=mask.device), int(lengths[rows[0]])) for rows in groups]


def distinct_rows(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(``first``, ``inverse``) over the batch's texts: ``first`` the index of each distinct text's first occurrence
    (in order of appearance), ``inverse`` for every row the position of its text in ``first``.

    Two rows are the same text when all their tokenized columns (ids, attention mask, token types) agree.
    """
    columns = [batch[key] for key in ("input_ids", "attention_mask", "token_type_ids") if key in batch]
    positions: dict[tuple[int, ...], int] = {}
    first: list[int] = []
    inverse: list[int] = []
    for row, text in enumerate(map(tuple, torch.cat(columns, dim=1).tolist())):
        if text not in positions:
            positions[text] = len(first)
            first.append(row)
        inverse.append(positions[text])
    device = columns[0].device
    return torch.tensor(first, device=device), torch.tensor(inverse, device=device)


def supervised_contrastive_loss(embeddings: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al. 2020, the "outside" form) of unit-length ``embeddings`` (N, D).

    ``labels`` (N, C) are 0/1 flags; two texts are positives when they share a label. Each text's term is minus the
    mean, over its positives, of the log-softmax of its similarities (dot product / ``temperature``) to all N - 1
    other texts; texts without a positive in the batch add nothing. The mean over the texts that have one.
    """
    logits = embeddings @ embeddings.T / temperature
    self_mask = torch.eye(len(embeddings), dtype=torch.bool, device=embeddings.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    log_probabilities = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positives = ((labels @ labels.T) > 0) & ~self_mask
    counts = positives.sum(1)
    per_text = -log_probabilities.masked_fill(~positives, 0.0).sum(1) / counts.clamp(min=1)
    has_positive = counts > 0
    return per_text[has_positive].mean() if has_positive.any() else embeddings.sum() * 0.0


class PairTask:
    """Loss and metrics of pair training (what :func:`nlp_transfer.training.fit` needs from a task).

    Losses: ``cosine`` regresses the cosine on the target (mean squared error, SetFit's choice);
    ``contrastive`` pulls similar pairs to cosine 1 and pushes dissimilar ones below ``margin`` (Hadsell et al.
    2006 on cosine distance); ``supcon`` is :func:`supervised_contrastive_loss` over all 2B texts of the batch at
    ``temperature``. The metric that picks the best encoder is ``pair_auc``: how well the cosine ranks similar
    pairs above dissimilar ones on validation pairs (1.0: perfectly).
    """

    batch_columns = ("first", "second", "labels", "label_sets", "length")
    default_metric = "pair_auc"

    def __init__(
        self,
        text_collator: Any,
        classes: int,
        loss: PairLoss = "cosine",
        margin: float = 0.5,
        temperature: float = 0.1,
    ) -> None:
        self.text_collator = text_collator
        self.classes = classes
        self.loss_name = loss
        self.margin = margin
        self.temperature = temperature

    def collator(self) -> PairCollator:
        """Batches pairs as one batch of texts."""
        return PairCollator(self.text_collator, self.classes)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The loss of the pairs' embeddings ``logits`` (B, 2, D) against :func:`pair_labels` ``labels``."""
        if self.loss_name == "supcon":
            classes = self.classes
            texts = torch.cat([labels[:, 1 : 1 + classes], labels[:, 1 + classes :]])
            return supervised_contrastive_loss(torch.cat([logits[:, 0], logits[:, 1]]), texts, self.temperature)
        return self.pair_loss((logits[:, 0] * logits[:, 1]).sum(-1), labels[:, 0])

    def pair_loss(self, cosines: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The ``cosine`` or ``contrastive`` loss of the pairs' cosines against their targets (1 similar, 0 dissimilar)."""
        if self.loss_name == "contrastive":
            similar = targets * (1 - cosines).pow(2)
            dissimilar = (1 - targets) * F.relu(cosines - self.margin).pow(2)
            return (similar + dissimilar).mean() / 2
        return F.mse_loss(cosines, targets)

    def compute_metrics(self, logits: np.ndarray, labels: np.ndarray, dataset: Any = None) -> dict[str, Any]:
        """``pair_auc`` (the chance a similar pair's cosine beats a dissimilar one's) and the mean loss."""
        from sklearn.metrics import roc_auc_score

        loss = float(self.loss(torch.from_numpy(np.asarray(logits)), torch.from_numpy(np.asarray(labels))))
        cosines = (np.asarray(logits[:, 0], dtype=np.float64) * logits[:, 1]).sum(-1)
        targets = np.asarray(labels[:, 0]) > 0.5
        auc = float(roc_auc_score(targets, cosines)) if 0 < targets.sum() < len(targets) else float("nan")
        return {"pair_auc": auc, "loss": loss}
