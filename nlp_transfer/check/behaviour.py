"""Run behavioural test suites against a model seen only through its scoring function.

The seam: a :class:`Classifier` is its label names and a function ``texts -> probabilities`` (one row per text,
one column per label), and for a multi-label run the threshold its labels are decided at; a :class:`Tagger` is a
function ``texts -> entities`` (per text, dicts with ``start``, ``end`` and ``type``). ``nlp-transfer check`` builds
them from a saved run; tests plug in small rigged functions. Each test reports its failure rate and a few failing
examples.

What a classifier predicts for a text is what ``predict`` gives: the top label of a single-label run, the set of
labels at or above the threshold of a multi-label run (:func:`decided`). An invariance test fails when that
prediction changes; a label test passes when the expected label is predicted (for a multi-label run: it is one of
the predicted labels, whatever else is predicted beside it).
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nlp_transfer.check.perturb import PERTURB
from nlp_transfer.check.suite import Suite, Test, expand, fill_template, map_labels, reversed_polarity

#: failing examples kept per test
EXAMPLES = 3
#: entity types a suite may name, and the run tags that count as them
ENTITY_ALIASES = {"PER": {"PER", "PERSON"}, "LOC": {"LOC", "LOCATION", "GPE"}, "ORG": {"ORG", "ORGANIZATION"}}


@dataclass
class Classifier:
    """A classifier seen from outside: label names and ``texts -> probabilities`` (n texts x n labels)."""

    labels: list[str]
    probabilities: Callable[[list[str]], np.ndarray]
    #: a multi-label run's decision threshold (its ``training.threshold``); None for a single-label run
    threshold: float | None = None


def decided(probabilities: np.ndarray, threshold: float | None) -> np.ndarray:
    """Which labels are predicted, as ``predict`` decides them: rows x labels of booleans.

    Single-label (``threshold`` None): the top label alone (the first on a tie, as argmax); multi-label: every label
    whose probability is at or above ``threshold``, possibly none.
    """
    probs = np.atleast_2d(np.asarray(probabilities, dtype=np.float64))
    if threshold is not None:
        return probs >= threshold
    return np.eye(probs.shape[1], dtype=bool)[probs.argmax(axis=1)] if probs.shape[0] else np.zeros(probs.shape, dtype=bool)


def shown(row: np.ndarray, labels: list[str], threshold: float | None) -> str | list[str]:
    """A text's prediction as a report shows it: the top label, or a multi-label run's predicted labels, best first."""
    if threshold is None:
        return labels[int(row.argmax())]
    return [labels[i] for i in np.argsort(-row, kind="stable") if row[i] >= threshold]


@dataclass
class Tagger:
    """A NER model seen from outside: ``texts -> entities`` (per text, dicts with ``start``, ``end``, ``type``)."""

    entities: Callable[[list[str]], list[list[dict[str, Any]]]]


def run_suites(suites: Sequence[Suite], model: Classifier | Tagger, seed: int = 0) -> dict[str, dict[str, Any]]:
    """One entry per test of every suite: its failure rate and examples, or why it was skipped."""
    results: dict[str, dict[str, Any]] = {}
    for suite in suites:
        mapping, note = _suite_labels(suite, model)
        for test in suite.tests:
            entry = {"suite": suite.name, "kind": test.kind, "description": test.description}
            why = note
            if why is None and isinstance(model, Tagger) != (test.kind == "entity_recall"):
                why = f"a {test.kind} test needs a {'NER' if test.kind == 'entity_recall' else 'classification'} run"
            if why is not None:
                results[test.name] = {**entry, "failure_rate": None, "skipped": why}
                continue
            results[test.name] = {**entry, **run_test(test, model, mapping, seed)}
    return results


def _suite_labels(suite: Suite, model: Classifier | Tagger) -> tuple[dict[str, str], str | None]:
    """The suite's canonical labels mapped to the run's, or a note saying why the suite does not fit."""
    if isinstance(model, Tagger) or not suite.labels:
        return {}, None
    mapping = map_labels(suite.labels, model.labels)
    if mapping is None:
        wanted = "; ".join(f"{k}: one of {', '.join([k, *v])}" for k, v in suite.labels.items())
        return {}, f"the run's labels ({', '.join(model.labels)}) do not fit this suite ({wanted})"
    fill = {key: words for test in suite.tests for key, words in test.fill.items()}
    return mapping, reversed_polarity(mapping, fill, model.labels, model.probabilities)


def run_test(test: Test, model: Classifier | Tagger, mapping: dict[str, str], seed: int = 0) -> dict[str, Any]:
    """Failure rate and examples of one test (``mapping``: suite label -> run label)."""
    if test.kind == "entity_recall":
        assert isinstance(model, Tagger)
        return entity_recall(test, model, seed)
    assert isinstance(model, Classifier)
    missing = sorted({mapping.get(c.label, c.label) for c in test.cases if c.label} - set(model.labels))
    if missing:
        return {
            "failure_rate": None,
            "skipped": f"label '{missing[0]}' is not one of the run's labels ({', '.join(model.labels)})",
        }
    pairs = _texts(test, seed)
    if not pairs:
        return {"failure_rate": None, "skipped": "no text changed under the perturbation"}
    texts = [text for text, _, _ in pairs]
    variants = [variant for _, variant, _ in pairs if variant is not None]
    probs = model.probabilities(texts + variants)
    first, second = probs[: len(texts)], probs[len(texts) :]
    if test.kind == "direction":
        failed, examples = _direction_failures(pairs, first, second, model.labels, mapping, test.tolerance)
    elif test.kind == "label":
        failed, examples = _label_failures(pairs, first, model, mapping)
    else:
        failed, examples = _invariance_failures(pairs, first, second, model)
    return {"cases": len(pairs), "failures": failed, "failure_rate": failed / len(pairs), "examples": examples, "skipped": None}


def _texts(test: Test, seed: int) -> list[tuple[str, str | None, Any]]:
    """(text, variant or None, case) for every fill-in of every case; unchanged perturbations are dropped."""
    rng = random.Random(f"{seed}:{test.name}")
    pairs = []
    for case in test.cases:
        for values in expand(case, test.fill, seed):
            text = fill_template(case.template, values)
            variant = fill_template(case.variant, values) if case.variant else None
            if case.perturb:
                variant = PERTURB[case.perturb](text, rng)
                if variant == text:
                    continue
            pairs.append((text, variant, case))
    return pairs


def _label_failures(pairs: list, first: np.ndarray, model: Classifier, mapping: dict) -> tuple[int, list[dict[str, Any]]]:
    """Texts whose prediction misses the expected label (multi-label: the label is not among the predicted ones)."""
    failed, examples = 0, []
    hits = decided(first, model.threshold)
    for (text, _, case), row, hit in zip(pairs, first, hits, strict=True):
        expected = mapping.get(case.label, case.label)
        column = model.labels.index(expected)
        if not hit[column]:
            failed += 1
            if len(examples) < EXAMPLES:
                example = {"text": text, "expected": expected, "predicted": shown(row, model.labels, model.threshold)}
                example["score"] = round(float(row.max() if model.threshold is None else row[column]), 4)
                examples.append(example)
    return failed, examples


def _invariance_failures(
    pairs: list, first: np.ndarray, second: np.ndarray, model: Classifier
) -> tuple[int, list[dict[str, Any]]]:
    """Pairs whose prediction changed: the top label, or a multi-label run's set of labels at its threshold."""
    failed, examples = 0, []
    changed = np.any(decided(first, model.threshold) != decided(second, model.threshold), axis=1)
    for (text, variant, _), a, b, moved in zip(pairs, first, second, changed, strict=True):
        if moved:
            failed += 1
            if len(examples) < EXAMPLES:
                before, after = shown(a, model.labels, model.threshold), shown(b, model.labels, model.threshold)
                examples.append({"text": text, "variant": variant, "predicted": before, "variant_predicted": after})
    return failed, examples


def _direction_failures(pairs: list, first: np.ndarray, second: np.ndarray, labels: list[str], mapping: dict, tol: float):
    """Pairs where the expected label's score moved the wrong way by more than ``tol``."""
    failed, examples = 0, []
    for (text, variant, case), a, b in zip(pairs, first, second, strict=True):
        label = mapping.get(case.label, case.label)
        column = labels.index(label)
        sign = 1.0 if case.direction == "up" else -1.0
        if sign * (b[column] - a[column]) < -tol:
            failed += 1
            if len(examples) < EXAMPLES:
                examples.append(
                    {"text": text, "variant": variant, "label": label, "expected": case.direction,
                     "score": round(float(a[column]), 4), "variant_score": round(float(b[column]), 4)}
                )  # fmt: skip
    return failed, examples


def fill_with_span(template: str, values: dict[str, str], target: str) -> tuple[str, tuple[int, int]]:
    """The filled template and the character span of the (first) ``{target}`` fill-in."""
    text, span = "", (0, 0)
    for literal, name, _, _ in string.Formatter().parse(template):
        text += literal
        if name is not None:
            value = fill_template("{" + name + "}", values)
            if name == target and span == (0, 0):
                span = (len(text), len(text) + len(value))
            text += value
    return text, span


def entity_recall(test: Test, model: Tagger, seed: int = 0) -> dict[str, Any]:
    """Recall of the filled entity per group of values; the failure rate is 1 - recall over all groups."""
    target, wanted = test.entity["placeholder"], ENTITY_ALIASES.get(test.entity["type"], {test.entity["type"]})
    rows = []  # (group, value, text, span)
    for group, values in test.groups.items():
        for value in values:
            for case in test.cases:
                for assignment in expand(case, {**test.fill, target: [value]}, seed, limit=2):
                    text, span = fill_with_span(case.template, assignment, target)
                    rows.append((group, value, text, span))
    found = model.entities([text for _, _, text, _ in rows])
    hits = [_hit(entities, text, span, wanted) for (_, _, text, span), entities in zip(rows, found, strict=True)]
    groups = {}
    for group in test.groups:
        mine = [h for (g, *_), h in zip(rows, hits, strict=True) if g == group]
        groups[group] = {"recall": float(np.mean(mine)), "count": len(mine)}
    recalls = [g["recall"] for g in groups.values()]
    examples = [{"text": text, "group": g, "missed": value} for (g, value, text, _), h in zip(rows, hits, strict=True) if not h]
    return {
        "cases": len(rows),
        "failures": len(rows) - int(sum(hits)),
        "failure_rate": 1.0 - float(np.mean(hits)),
        "groups": groups,
        "recall_gap": max(recalls) - min(recalls),
        "worst_group": min(groups, key=lambda g: groups[g]["recall"]),
        "examples": examples[:EXAMPLES],
        "skipped": None,
    }


def _hit(entities: list[dict[str, Any]], text: str, span: tuple[int, int], wanted: set[str]) -> bool:
    """An entity of a wanted type covers the span and holds nothing but it (and punctuation)."""
    value = text[span[0] : span[1]]
    for entity in entities:
        inside = entity["start"] <= span[0] and entity["end"] >= span[1]
        if (
            inside
            and entity["type"].upper() in wanted
            and text[entity["start"] : entity["end"]].strip(string.punctuation + " ") == value.strip(string.punctuation + " ")
        ):
            return True
    return False
