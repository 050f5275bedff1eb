"""Built-in perturbations for invariance tests: small changes that should not change a label.

Each takes a text and a seeded :class:`random.Random` and returns the changed text (or the text itself when the
change does not apply, e.g. no contraction to expand; such pairs are dropped by the caller).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

#: contracted and expanded forms, both directions are tried
CONTRACTIONS = {
    "isn't": "is not",
    "aren't": "are not",
    "wasn't": "was not",
    "weren't": "were not",
    "don't": "do not",
    "doesn't": "does not",
    "didn't": "did not",
    "can't": "cannot",
    "couldn't": "could not",
    "won't": "will not",
    "wouldn't": "would not",
    "haven't": "have not",
    "hasn't": "has not",
    "it's": "it is",
    "that's": "that is",
    "i'm": "i am",
    "we're": "we are",
    "they're": "they are",
    "you're": "you are",
    "i've": "i have",
    "we've": "we have",
    "i'd": "i would",
    "there's": "there is",
    "let's": "let us",
}
_EXPANDED = {v: k for k, v in CONTRACTIONS.items()}


def typo(text: str, rng: random.Random) -> str:
    """Swap two neighbouring letters inside one word of four letters or more."""
    words = [(m.start(), m.end()) for m in re.finditer(r"[A-Za-z]{4,}", text)]
    if not words:
        return text
    start, end = rng.choice(words)
    i = rng.randrange(start, end - 1)
    return text[:i] + text[i + 1] + text[i] + text[i + 2 :]


def whitespace(text: str, rng: random.Random) -> str:
    """Double one space, or add a space at an end, or a line break between words."""
    spaces = [m.start() for m in re.finditer(" ", text)]
    choice = rng.randrange(3)
    if choice == 0 and spaces:
        i = rng.choice(spaces)
        return text[:i] + "  " + text[i + 1 :]
    if choice == 1 and spaces:
        i = rng.choice(spaces)
        return text[:i] + "\n" + text[i + 1 :]
    return f" {text} " if rng.random() < 0.5 else f"{text}  "


def contraction(text: str, rng: random.Random) -> str:
    """Expand a contraction (``isn't`` -> ``is not``) or contract an expanded form, keeping a leading capital."""
    for table in (CONTRACTIONS, _EXPANDED):
        pattern = re.compile(r"\b(" + "|".join(re.escape(k) for k in table) + r")\b", re.IGNORECASE)
        found = list(pattern.finditer(text))
        if found:
            match = rng.choice(found)
            swap = table[match.group(0).lower()]
            swap = swap[:1].upper() + swap[1:] if match.group(0)[:1].isupper() else swap
            return text[: match.start()] + swap + text[match.end() :]
    return text


def punctuation(text: str, rng: random.Random) -> str:
    """Drop the final punctuation mark, or add one (``.``, ``!``, ``...``) where there is none."""
    stripped = text.rstrip()
    if stripped and stripped[-1] in ".!?":
        return stripped.rstrip(".!?")
    return stripped + rng.choice([".", "!", "...", " ."])


PERTURB: dict[str, Callable[[str, random.Random], str]] = {
    "typo": typo,
    "whitespace": whitespace,
    "contraction": contraction,
    "punctuation": punctuation,
}
