"""Augmentation of the training split (``data.augment``): seeded, altered copies of each training text, labels kept.

An augmenter is a small function ``(text, rng, *, rate, model) -> str`` registered in :data:`AUGMENTERS`:

- ``word_dropout``: drop each word with probability ``rate``, never every word (EDA's random deletion);
- ``word_swap``: swap ``max(1, round(rate * words))`` random pairs of words (EDA's random swap);
- ``neighbour_tokens``: replace ``max(1, round(rate * words))`` words by one of their :data:`NEIGHBOURS` nearest
  neighbours (cosine) in the encoder's own input-embedding matrix, read from the model folder's safetensors.

Words are the text's whitespace-separated parts; an augmented text joins them with single spaces.
:func:`augment_rows` adds ``copies`` augmented copies of every training row per augmenter; validation and test are
never augmented. Each augmenter draws from its own generator, seeded by the run's seed and its name, so the same
seed gives the same texts, and adding an augmenter leaves the texts of the others as they were.

**Not recommended** (none of them): on SST-2 with 8 and 32 examples per class, the default model frozen with mean
pooling, seeds 0-2, four copies at rate 0.1 or 0.15, every augmenter left test accuracy 0.1 to 1.7 points below no
augmentation (BENCHMARKS.md, ``benchmarks/augment_curve.py``). They stay for experiments on other data and strategies.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import random
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch

from nlp_transfer.errors import DataError, UserError

Augmenter = Callable[..., str]
Row = TypeVar("Row")

NEIGHBOURS = 5  # neighbour_tokens: a word is replaced by one of its k nearest vocabulary words
EMBEDDING_KEYS = ("word_embeddings.weight", "embed_tokens.weight", "shared.weight", "wte.weight")
WORD_MARKERS = ("▁", "Ġ")  # SentencePiece and byte-level BPE mark the piece that starts a word
AFFIXES = re.compile(r"^(\W*)(.*?)(\W*)$", re.DOTALL)


def touched(words: int, rate: float) -> int:
    """How many of ``words`` words an augmenter alters at ``rate``: at least one."""
    return max(1, round(rate * words))


def word_dropout(text: str, rng: random.Random, *, rate: float, **_: Any) -> str:
    """Drop each word with probability ``rate``; when every word would go, one of them (at random) stays.

    Not recommended: no gain measured (see the module's note).
    """
    words = text.split()
    kept = [word for word in words if rng.random() >= rate]
    return " ".join(kept or [rng.choice(words)])


def word_swap(text: str, rng: random.Random, *, rate: float, **_: Any) -> str:
    """Swap ``touched(words, rate)`` random pairs of words; the words themselves stay.

    Not recommended: no gain measured (see the module's note).
    """
    words = text.split()
    if len(words) < 2:
        return " ".join(words)
    for _ in range(touched(len(words), rate)):
        i, j = rng.sample(range(len(words)), 2)
        words[i], words[j] = words[j], words[i]
    return " ".join(words)


def neighbour_tokens(text: str, rng: random.Random, *, rate: float, model: str | None = None, **_: Any) -> str:
    """Replace ``touched(words, rate)`` words that are whole vocabulary words by one of their nearest neighbours.

    The neighbours come from ``model``'s input embeddings (:func:`neighbour_index`); punctuation around a word
    stays, and a capitalised or all-capitals word gets its neighbour written the same way. Not recommended: no gain
    measured (see the module's note), and input-embedding neighbours include antonyms (good: excellent, bad, great, ...).
    """
    if model is None:
        raise DataError("data.augment=neighbour_tokens needs the run's model: pass model= to load_text_classification_data.")
    index = neighbour_index(model)
    words = text.split()
    parts = [AFFIXES.match(word).groups() for word in words]
    spots = [i for i, (_, core, _) in enumerate(parts) if index.neighbours(core)]
    for i in rng.sample(spots, min(len(spots), touched(len(words), rate))):
        before, core, after = parts[i]
        words[i] = before + same_case(rng.choice(index.neighbours(core)), core) + after
    return " ".join(words)


def same_case(word: str, like: str) -> str:
    """``word`` written in the case of ``like``: all capitals, capitalised, or as it is."""
    if len(like) > 1 and like.isupper():
        return word.upper()
    return word[:1].upper() + word[1:] if like[:1].isupper() else word


AUGMENTERS: dict[str, Augmenter] = {
    "word_dropout": word_dropout,
    "word_swap": word_swap,
    "neighbour_tokens": neighbour_tokens,
}


def augment_rows(
    rows: Sequence[Row], names: Sequence[str], *, copies: int, rate: float, seed: int, model: str | None = None
) -> tuple[list[Row], dict[str, int]]:
    """``rows`` followed by ``copies`` augmented copies of each per augmenter in ``names``; and the rows each added.

    Rows are dataclasses with ``text`` and ``label`` (copied); every other field (the source line) is kept.
    """
    out, added = list(rows), {}
    for name in names:
        augment, rng = AUGMENTERS[name], random.Random(f"augment:{seed}:{name}")
        new = [
            dataclasses.replace(row, text=augment(row.text, rng, rate=rate, model=model), label=copy.copy(row.label))
            for _ in range(copies)
            for row in rows
        ]
        out.extend(new)
        added[name] = len(new)
    return out, added


def augment_training_split(loaded: Any, config: Any, *, seed: int, model: str | None = None) -> dict[str, int]:
    """Apply ``config.augment`` (a :class:`~nlp_transfer.config.DataConfig`) to ``loaded.rows["train"]`` in place.

    ``loaded`` is a :class:`~nlp_transfer.data.loading.LoadedSplits`; its training source gains a note of the rows
    added. Returns the rows each augmenter added (empty when ``config.augment`` is).
    """
    if not config.augment:
        return {}
    if "neighbour_tokens" in config.augment:  # read the model as it is now (a notebook may have adapted it since)
        neighbour_index.cache_clear()
    rows, added = augment_rows(
        loaded.rows["train"], config.augment, copies=config.augment_copies, rate=config.augment_rate, seed=seed, model=model
    )
    loaded.rows["train"] = rows
    loaded.sources["train"] += f" + {sum(added.values()):,} augmented ({', '.join(config.augment)} x{config.augment_copies})"
    return added


# ----------------------------------------------------------------------------- nearest neighbours in the embeddings


class NeighbourIndex:
    """The ``k`` nearest whole vocabulary words (cosine) of a word in an embedding matrix, computed on demand and cached.

    ``vocab[i]`` is the piece of row ``i``. Whole words are pieces of two or more letters that start a word
    (WordPiece: no ``##``; SentencePiece/BPE: the word marker, dropped); ``special`` pieces never count. A word's
    neighbours exclude the word itself and its other case forms.
    """

    def __init__(
        self, embeddings: torch.Tensor, vocab: Sequence[str], *, k: int = NEIGHBOURS, special: Sequence[str] = ()
    ) -> None:
        words = vocabulary_words(vocab[: len(embeddings)], set(special))
        rows = [i for i, word in enumerate(words) if word]
        self.words = [words[i] for i in rows]
        self.row: dict[str, int] = {}
        self.case_forms: dict[str, list[int]] = {}
        for position, word in enumerate(self.words):
            self.row.setdefault(word, position)
            self.case_forms.setdefault(word.lower(), []).append(position)
        self.unit = torch.nn.functional.normalize(embeddings[rows].float(), dim=1)
        self.k = k
        self.cache: dict[int, list[str]] = {}

    def neighbours(self, word: str) -> list[str]:
        """The nearest whole words of ``word`` (or of its lowercase form), nearest first; [] when it is no vocabulary word."""
        position = self.row.get(word, self.row.get(word.lower()))
        if position is None:
            return []
        if position not in self.cache:
            scores = self.unit @ self.unit[position]
            scores[self.case_forms[self.words[position].lower()]] = -torch.inf
            best = scores.topk(min(self.k, len(scores))).indices
            self.cache[position] = [self.words[i] for i in best.tolist() if scores[i] > -torch.inf]
        return self.cache[position]


def vocabulary_words(pieces: Sequence[str], special: set[str]) -> list[str | None]:
    """Per piece, the whole word it stands for, or None (a word-inner piece, punctuation, a number, a special token)."""
    marker = next((m for m in WORD_MARKERS if sum(p.startswith(m) for p in pieces) * 10 > len(pieces)), None)
    words: list[str | None] = []
    for piece in pieces:
        if marker:
            word = piece[len(marker) :] if piece.startswith(marker) else ""
        else:
            word = "" if piece.startswith("##") else piece
        words.append(word if piece not in special and len(word) > 1 and word.isalpha() else None)
    return words


@functools.lru_cache(maxsize=2)
def neighbour_index(model: str) -> NeighbourIndex:
    """The :class:`NeighbourIndex` of a model (Hub id or folder): its tokenizer's vocabulary and input embeddings."""
    from transformers import AutoTokenizer

    from nlp_transfer.models import resolve_model

    path = resolve_model(model).path
    tokenizer = AutoTokenizer.from_pretrained(path)
    vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    return NeighbourIndex(input_embeddings(path), vocab, special=tokenizer.all_special_tokens)


def input_embeddings(folder: str | Path) -> torch.Tensor:
    """The input (word) embedding matrix of the model in ``folder``, read alone from its safetensors file(s)."""
    from safetensors import safe_open

    files = sorted(Path(folder).glob("*.safetensors"))
    for path in files:
        with safe_open(str(path), framework="pt") as weights:
            key = next((k for k in weights.keys() if k.endswith(EMBEDDING_KEYS)), None)
            if key is not None:
                return weights.get_tensor(key)
    found = "no safetensors file" if not files else f"no tensor named *{' or *'.join(EMBEDDING_KEYS)}"
    raise UserError(
        f"data.augment=neighbour_tokens reads the input embeddings from the model's safetensors, but {folder} has {found}. "
        "Choose another augmenter (word_dropout, word_swap)."
    )
