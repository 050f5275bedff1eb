"""Whole-word masking, reproducible from ``(seed, epoch, row)``.

Words: for a WordPiece vocabulary a word is a piece without the continuation prefix (``##``) and the
``##`` pieces that follow it; for any other fast tokenizer, the tokens that ``word_ids()`` gives the same
word (its pre-tokenizer's words). Special tokens belong to no word and are never masked.

Masking (BERT's recipe, per word): each text masks 15 % of its words in expectation (``floor(p * words + u)``
words, ``u`` uniform, chosen without replacement), every piece of a chosen word; of the masked tokens 80 %
become the mask token, 10 % a random non-special token, 10 % stay. The draws come from a generator seeded
by the run's seed, the epoch and the row, so masks change every epoch (dynamic masking) but never depend
on the batch a row lands in, the number of processes, or whether the run was resumed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from nlp_transfer.errors import UserError
from nlp_transfer.training.callbacks import TrainingCallback

IGNORE = -100
NO_WORD = -1
TRAIN_STREAM = 0  # seeds of training masks: (seed, TRAIN_STREAM, epoch, row)
HELDOUT_STREAM = 1  # the held-out lines' fixed masks: (seed, HELDOUT_STREAM, 0, row)


def wordpiece_prefix(tokenizer: Any) -> str | None:
    """The continuation prefix (``##``) of a WordPiece tokenizer, None for other vocabularies."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        model = backend.model
        return model.continuing_subword_prefix if type(model).__name__ == "WordPiece" else None
    return "##" if hasattr(tokenizer, "wordpiece_tokenizer") else None


def check_maskable(tokenizer: Any, model: str) -> str:
    """How words are found with ``tokenizer`` (``wordpiece`` or ``word_ids``); refuse one that cannot mask."""
    if tokenizer.mask_token is None or tokenizer.mask_token_id is None:
        raise UserError(
            f"model '{model}': its tokenizer has no mask token, so masked-LM training is impossible. "
            "Adapt an encoder with a mask token (BERT, RoBERTa, DeBERTa, ELECTRA, ...)."
        )
    if tokenizer.pad_token_id is None:
        raise UserError(f"model '{model}': its tokenizer has no padding token. Adapt an encoder tokenizer with one.")
    if wordpiece_prefix(tokenizer):
        return "wordpiece"
    if getattr(tokenizer, "is_fast", False):
        return "word_ids"
    raise UserError(
        f"model '{model}': whole-word masking needs a WordPiece vocabulary or a fast tokenizer (tokenizer.json) "
        "that knows word boundaries. Save the model's fast tokenizer in its folder."
    )


def word_ids_of(tokens: Sequence[str], special: Sequence[int], prefix: str) -> list[int]:
    """Word index of each WordPiece token: a ``prefix`` piece continues the word before it; -1 for special tokens."""
    words, current, after_special = [], NO_WORD, True
    for token, is_special in zip(tokens, special, strict=True):
        if is_special:
            words.append(NO_WORD)
            after_special = True
            continue
        if after_special or not token.startswith(prefix):
            current += 1
        words.append(current)
        after_special = False
    return words


def encode(
    tokenizer: Any, texts: Sequence[str], max_length: int, words: str, *, stride: int | None = None
) -> dict[str, list[Any]]:
    """Token ids, word index per token (-1: special) and truncation flags of the rows of ``texts``: a row per text,
    cut at ``max_length``; or, with a ``stride`` (windows), every window of ``max_length`` tokens of each text, each
    repeating ``stride`` tokens of the one before (the fast tokenizer's overflow), none truncated."""
    overflow = {} if stride is None else {"return_overflowing_tokens": True, "stride": stride}
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length, return_special_tokens_mask=True, **overflow)
    if stride is None:
        full = tokenizer(list(texts), add_special_tokens=True, truncation=False, return_length=True)["length"]
    else:
        full = [0] * len(encoded["input_ids"])
    columns: dict[str, list[Any]] = {"input_ids": encoded["input_ids"], "word_ids": [], "truncated": []}
    prefix = wordpiece_prefix(tokenizer)
    specials = set(tokenizer.all_special_ids)  # "[MASK]" or "[UNK]" written in a text too: no word, never masked
    for i, ids in enumerate(encoded["input_ids"]):
        special = [int(s or token in specials) for s, token in zip(encoded["special_tokens_mask"][i], ids, strict=True)]
        if words == "wordpiece":
            found = word_ids_of(tokenizer.convert_ids_to_tokens(ids), special, prefix)
        else:
            found = [NO_WORD if s or w is None else w for w, s in zip(encoded.word_ids(i), special, strict=True)]
        columns["word_ids"].append(found)
        columns["truncated"].append(full[i] > len(ids))
    return columns


@dataclass
class WholeWordMasker:
    """Masks rows as the module says; ``random_ids`` are the ids a masked token may be swapped for."""

    mask_id: int
    random_ids: np.ndarray
    seed: int
    probability: float = 0.15
    replace_mask: float = 0.8
    replace_random: float = 0.1

    @classmethod
    def for_tokenizer(cls, tokenizer: Any, seed: int, probability: float = 0.15) -> WholeWordMasker:
        """A masker with ``tokenizer``'s mask token; random replacements avoid its special tokens."""
        special = set(tokenizer.all_special_ids)
        ids = np.array([i for i in range(len(tokenizer)) if i not in special], dtype=np.int64)
        return cls(tokenizer.mask_token_id, ids, seed, probability)

    def generator(self, stream: int, epoch: int, row: int) -> np.random.Generator:
        """The generator of one row's mask in one epoch."""
        return np.random.default_rng([self.seed, stream, epoch, row])

    def mask(self, ids: Sequence[int], words: Sequence[int], rng: np.random.Generator) -> tuple[list[int], list[int]]:
        """(input ids with the chosen words masked, labels: the original id where masked, -100 elsewhere)."""
        ids_array, word_array = np.asarray(ids, dtype=np.int64), np.asarray(words, dtype=np.int64)
        unique = np.unique(word_array[word_array != NO_WORD])
        count = int(np.floor(self.probability * len(unique) + rng.random()))
        chosen = rng.choice(unique, size=min(count, len(unique)), replace=False) if count else unique[:0]
        positions = np.flatnonzero(np.isin(word_array, chosen))
        labels = np.full(len(ids_array), IGNORE, dtype=np.int64)
        labels[positions] = ids_array[positions]
        draw = rng.random(len(positions))
        masked = ids_array.copy()
        masked[positions[draw < self.replace_mask]] = self.mask_id
        swap = positions[(draw >= self.replace_mask) & (draw < self.replace_mask + self.replace_random)]
        masked[swap] = rng.choice(self.random_ids, size=len(swap))
        return masked.tolist(), labels.tolist()


@dataclass
class MaskingCollator:
    """Pads rows into a batch; rows without ``labels`` are masked for the current ``epoch`` first.

    The batch carries the labels twice: ``labels`` (which the loop pops for the loss) and ``targets``
    (which reach the model, so that it predicts only the masked positions).
    """

    masker: WholeWordMasker
    pad_id: int
    token_type_ids: bool
    epoch: int = 0

    def __call__(self, rows: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        pairs = [self.masked(row) for row in rows]
        width = max(len(ids) for ids, _ in pairs)
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for i, (ids, row_labels) in enumerate(pairs):
            input_ids[i, : len(ids)] = torch.tensor(ids)
            labels[i, : len(ids)] = torch.tensor(row_labels)
            attention[i, : len(ids)] = 1
        batch = {"input_ids": input_ids, "attention_mask": attention, "labels": labels, "targets": labels.clone()}
        if self.token_type_ids:
            batch["token_type_ids"] = torch.zeros_like(input_ids)
        return batch

    def masked(self, row: dict[str, Any]) -> tuple[list[int], list[int]]:
        """A row's (input ids, labels): as stored when premasked (held-out lines), else this epoch's mask."""
        if "labels" in row:
            return row["input_ids"], row["labels"]
        rng = self.masker.generator(TRAIN_STREAM, self.epoch, int(row["row"]))
        return self.masker.mask(row["input_ids"], row["word_ids"], rng)


class MaskEpoch(TrainingCallback):
    """Tells the collator which epoch runs, so every epoch draws new masks (and a resumed epoch the same ones)."""

    def __init__(self, collator: MaskingCollator) -> None:
        self.collator = collator

    def on_epoch_start(self, model: Any, optimizer: Any, epoch: int) -> None:
        """Set the epoch whose masks the next batches get."""
        self.collator.epoch = epoch
