"""Vocabulary and length measures of two text sets: word-type overlap, unseen words, the tokenizer's view."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

#: a word: letters or digits, with inner apostrophes ("don't"); punctuation is not a word
WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")


def words(text: str) -> list[str]:
    """The lower-cased words of ``text``."""
    return WORD.findall(text.lower())


def word_counts(texts: Iterable[str]) -> Counter[str]:
    """How often each lower-cased word occurs in ``texts``."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(words(text))
    return counts


def vocabulary_overlap(source: Sequence[str], target: Sequence[str]) -> dict[str, float | int]:
    """Jaccard of the word types, and the share of target word tokens (and types) never seen in the source."""
    source_counts, target_counts = word_counts(source), word_counts(target)
    source_types, target_types = set(source_counts), set(target_counts)
    union = source_types | target_types
    unseen = target_types - source_types
    target_tokens = sum(target_counts.values())
    return {
        "source_word_types": len(source_types),
        "target_word_types": len(target_types),
        "jaccard_word_types": len(source_types & target_types) / len(union) if union else 0.0,
        "target_tokens_unseen_in_source": sum(target_counts[w] for w in unseen) / target_tokens if target_tokens else 0.0,
        "target_types_unseen_in_source": len(unseen) / len(target_types) if target_types else 0.0,
    }


def length_summary(lengths: Sequence[int]) -> dict[str, float]:
    """Median, 90th percentile and mean of ``lengths``."""
    values = np.asarray(lengths, dtype=np.float64)
    if values.size == 0:
        return {"median": 0.0, "p90": 0.0, "mean": 0.0}
    return {
        "median": float(np.median(values)),
        "p90": float(np.percentile(values, 90)),
        "mean": round(float(values.mean()), 2),
    }


def tokenizer_view(tokenizer: Any, texts: Sequence[str]) -> tuple[dict[str, Any], list[int]]:
    """The tokenizer's unknown-token rate and subwords per word on ``texts``, and each text's length in tokens.

    Lengths count subword tokens without special tokens and without truncation. Fertility is the texts' subword
    tokens over their whitespace-separated words, measured on the texts as written (a cased or byte-level tokenizer
    cuts "The" and " Movie" otherwise than a lower-cased word alone, which it was measured on).
    """
    encoded = tokenizer(list(texts), add_special_tokens=False, truncation=False)["input_ids"]
    lengths = [len(ids) for ids in encoded]
    unk = getattr(tokenizer, "unk_token_id", None)
    total = sum(lengths)
    unknown = sum(ids.count(unk) for ids in encoded) if unk is not None else 0
    word_total = sum(len(text.split()) for text in texts)
    fertility = total / word_total if word_total else 0.0
    view = {
        "unknown_token_rate": unknown / total if total else 0.0,
        "unknown_tokens": unknown,
        "subword_tokens": total,
        "subwords_per_word": fertility,
        "length_tokens": length_summary(lengths),
    }
    return view, lengths
