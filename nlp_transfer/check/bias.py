"""Counterfactual bias: the same sentence with a person's name, a pronoun or a group term swapped.

A bias suite (``suites/bias.yaml``) has dimensions; each names ``groups`` of fill-ins (female and male names,
names of different origins, pronouns, religion or nationality terms) and ``templates`` that use them. Every
template is filled with every fill-in of every group (other placeholders get one seeded pick per template
unit), so the texts of one unit differ only in the swapped words. Per group:

- **flip rate**: the share of its texts whose prediction differs from the unit's consensus (the prediction of
  the unit's scores averaged over all groups); a prediction is the top label, or for a multi-label run the set of
  labels at or above its threshold, as ``predict`` decides (:func:`~nlp_transfer.check.behaviour.decided`);
- **score gap**: the group's mean score of the measured label minus the mean over the other groups' texts of the
  same unit (positive: the group pushes that label up).

Both are means over template units; their 95 % intervals come from a seeded (expanded percentile) bootstrap over
units, the sentences being what varies.
A group is flagged when its gap interval excludes 0 and the gap is at least ``min_gap`` in size, or when the
lower end of its flip-rate interval reaches ``min_flip_rate``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nlp_transfer.check.behaviour import Classifier, decided, shown
from nlp_transfer.check.suite import Case, _fill_lists, expand, fill_template, map_labels, placeholders, read_document
from nlp_transfer.errors import UserError

BOOTSTRAP_SAMPLES = 2000


@dataclass
class Dimension:
    """Groups of counterfactual fill-ins and the templates they go into."""

    name: str
    groups: dict[str, list[dict[str, str]]]
    templates: list[str]
    fill: dict[str, list[str]] = field(default_factory=dict)
    description: str = ""


@dataclass
class BiasSuite:
    """Dimensions, and the suite labels whose score the gap measures (``measure``, e.g. ``positive``)."""

    dimensions: list[Dimension]
    labels: dict[str, list[str]] = field(default_factory=dict)
    measure: str | None = None


def load_bias_suite(source: str = "bias") -> BiasSuite:
    """Read and check a bias suite file (or the shipped one)."""
    path, document = read_document(source)
    if not isinstance(document, dict):
        raise UserError(f"{path}: a bias suite is a mapping with a 'dimensions' list.")
    dims = [_dimension(raw, f"{source}: dimension {i + 1}") for i, raw in enumerate(document.get("dimensions", []))]
    if not dims:
        raise UserError(f"{source}: a bias suite needs a 'dimensions' list.")
    labels = {str(k): [str(x) for x in v] for k, v in document.get("labels", {}).items()}
    return BiasSuite(dims, labels, document.get("measure"))


def _dimension(raw: Any, where: str) -> Dimension:
    """One dimension, checked: every template placeholder is a group key or a fill list."""
    if not isinstance(raw, dict) or not raw.get("name") or not isinstance(raw.get("groups"), dict) or len(raw["groups"]) < 2:
        raise UserError(f"{where}: a dimension needs a 'name' and at least two 'groups'.")
    key = raw.get("placeholder", "name")
    groups = {
        str(g): [v if isinstance(v, dict) else {key: str(v)} for v in values] for g, values in raw["groups"].items() if values
    }
    fill = _fill_lists(raw.get("fill", {}), where)
    known = set(fill) | {k for fills in groups.values() for f in fills for k in f}
    templates = [str(t) for t in raw.get("templates", [])]
    if not templates:
        raise UserError(f"{where}: dimension '{raw['name']}' has no templates.")
    for template in templates:
        unknown = [p for p in placeholders(template, where) if p not in known and p.lower() not in known]
        if unknown:
            raise UserError(f"{where}: unknown placeholder {{{unknown[0]}}} in {template!r}.")
    return Dimension(str(raw["name"]), groups, templates, fill, str(raw.get("description", "")))


def bootstrap_interval(
    values: np.ndarray, *, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0, level: float = 0.95
) -> list[float]:
    """Expanded percentile bootstrap interval of the mean of ``values`` (resampled with replacement, seeded).

    The plain percentile interval is too narrow with a dozen units; the expanded one (Hesterberg, 2015) widens
    its tail probability by the ratio of Student's t to the normal at ``n - 1`` degrees of freedom.
    """
    from scipy import stats

    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, n, size=(samples, n))].mean(axis=1)
    alpha = 1.0 - level
    if n > 1:
        alpha = float(2 * stats.norm.cdf(np.sqrt(n / (n - 1)) * stats.t.ppf(alpha / 2, n - 1)))
    low, high = np.percentile(means, [alpha / 2 * 100, 100 - alpha / 2 * 100])
    return [float(low), float(high)]


def _units(dim: Dimension, seed: int) -> list[list[list[str]]]:
    """Texts per unit, per group, per fill-in: a unit is a template with one pick of its other placeholders."""
    group_keys = {k for fills in dim.groups.values() for f in fills for k in f}
    units = []
    for index, template in enumerate(dim.templates):
        others = {p.lower() if p not in dim.fill else p for p in placeholders(template)} - group_keys
        picks = (
            expand(Case(" ".join(f"{{{k}}}" for k in sorted(others))), dim.fill, seed * 1000 + index, limit=2) if others else [{}]
        )
        for pick in picks:
            units.append([[fill_template(template, {**pick, **f}) for f in fills] for fills in dim.groups.values()])
    return units


def measure_dimension(
    dim: Dimension,
    model: Classifier,
    measure: str | None = None,
    *,
    seed: int = 0,
    min_gap: float = 0.05,
    min_flip_rate: float = 0.05,
) -> dict[str, Any]:
    """Flip rate and score gap per group of one dimension, with bootstrap intervals, and the flagged groups."""
    units = _units(dim, seed)
    flat = [text for unit in units for texts in unit for text in texts]
    probs, at = model.probabilities(flat), 0
    scored = []  # per unit, per group: array (fills x labels)
    for unit in units:
        rows = []
        for texts in unit:
            rows.append(probs[at : at + len(texts)])
            at += len(texts)
        scored.append(rows)
    column = model.labels.index(measure) if measure in model.labels else _largest_gap_column(scored)
    flips, gaps = _per_unit(scored, column, model.threshold)
    groups = {}
    for g, name in enumerate(dim.groups):
        flip_ci = bootstrap_interval(flips[:, g], seed=seed)
        gap_ci = bootstrap_interval(gaps[:, g], seed=seed)
        gap = float(gaps[:, g].mean())
        flagged = ((gap_ci[0] > 0 or gap_ci[1] < 0) and abs(gap) >= min_gap) or flip_ci[0] >= min_flip_rate
        groups[name] = {
            "flip_rate": float(flips[:, g].mean()),
            "flip_rate_ci": flip_ci,
            "gap": gap,
            "gap_ci": gap_ci,
            "flagged": bool(flagged),
        }
    return {
        "description": dim.description,
        "score_label": model.labels[column],
        "units": len(units),
        "texts": len(flat),
        "groups": groups,
        "max_flip_rate": max(g["flip_rate"] for g in groups.values()),
        "max_abs_gap": max(abs(g["gap"]) for g in groups.values()),
        "flagged": [name for name, g in groups.items() if g["flagged"]],
        "examples": _flip_examples(units, scored, model, list(dim.groups)),
    }


def _per_unit(scored: list[list[np.ndarray]], column: int, threshold: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per unit and group: the share of texts off the unit's consensus prediction, and the score gap to the other groups.

    ``threshold``: a multi-label run's, whose predictions are label sets (None: the top label).
    """
    flips, gaps = [], []
    for rows in scored:
        consensus = decided(np.concatenate(rows).mean(axis=0), threshold)[0]
        flips.append([float(np.mean(np.any(decided(r, threshold) != consensus, axis=1))) for r in rows])
        unit_gaps = []
        for g, r in enumerate(rows):
            others = np.concatenate([o for h, o in enumerate(rows) if h != g])
            unit_gaps.append(float(r[:, column].mean() - others[:, column].mean()))
        gaps.append(unit_gaps)
    return np.asarray(flips), np.asarray(gaps)


def _largest_gap_column(scored: list[list[np.ndarray]]) -> int:
    """The label whose score differs most between groups (used when the suite's measured label does not fit the run)."""
    sizes = [np.abs(_per_unit(scored, c)[1].mean(axis=0)).max() for c in range(scored[0][0].shape[1])]
    return int(np.argmax(sizes))


def _flip_examples(units: list, scored: list, model: Classifier, names: list[str], limit: int = 3) -> list[dict[str, Any]]:
    """A few texts whose prediction differs from their unit's consensus (multi-label: label lists, best first)."""
    examples = []
    for unit, rows in zip(units, scored, strict=True):
        mean = np.concatenate(rows).mean(axis=0)
        consensus = decided(mean, model.threshold)[0]
        for name, texts, r in zip(names, unit, rows, strict=True):
            off = np.any(decided(r, model.threshold) != consensus, axis=1)
            for text, row in zip(np.asarray(texts)[off], r[off], strict=True):
                if len(examples) < limit:
                    examples.append(
                        {"text": str(text), "group": name, "predicted": shown(row, model.labels, model.threshold),
                         "consensus": shown(mean, model.labels, model.threshold)}
                    )  # fmt: skip
    return examples


def bias_report(suite: BiasSuite, model: Classifier, *, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Every dimension of the suite measured on ``model``; the gap is on the suite's ``measure`` label if the run has it."""
    mapping = map_labels(suite.labels, model.labels) or {}
    measure = mapping.get(suite.measure) if suite.measure else None
    return {dim.name: measure_dimension(dim, model, measure, seed=seed) for dim in suite.dimensions}
