"""Behavioural test suites: YAML or JSONL files of templated test cases, shipped ones and the user's own.

A suite is a list of tests. Each test has a ``name``, a ``kind`` and ``cases``; a case is a ``template`` with
``{placeholder}`` fill-ins (``Not a {good} {product}.``), filled from the suite's and the test's ``fill`` lists. The
kinds:

- ``label``: minimum functionality; every filled text must get ``label`` (a multi-label run: among its labels).
- ``invariance``: the prediction (the top label; a multi-label run's label set) must not change between the filled
  text and its ``variant`` (a second template with the same fill-ins) or its ``perturb`` (a built-in change:
  ``typo``, ``whitespace``, ``contraction``, ``punctuation``; see :mod:`nlp_transfer.check.perturb`).
- ``direction``: the score of ``label`` must move ``up`` or ``down`` (``direction``) from the text to its
  ``variant``; a move the wrong way by more than ``tolerance`` fails.
- ``entity_recall`` (NER): the filled value of ``entity.placeholder`` must come back as an entity of
  ``entity.type``; the value lists are ``groups`` and recall is reported per group.

Labels in a suite are canonical names (``positive``, ``negative``); the suite's ``labels`` maps each to the
run's label names it accepts (see :func:`map_labels`). A JSONL suite holds one test per line.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from nlp_transfer.data.readers import text_lines
from nlp_transfer.errors import UserError

KINDS = ("label", "invariance", "direction", "entity_recall")
PERTURBATIONS = ("typo", "whitespace", "contraction", "punctuation")
#: fill-ins of one template at most; a larger product is sampled (seeded)
MAX_FILLS = 24
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class Case:
    """One template of a test and what it expects."""

    template: str
    variant: str | None = None
    perturb: str | None = None
    label: str | None = None
    direction: str | None = None


@dataclass
class Test:
    """One behavioural test: a kind, its cases and its fill-in lists."""

    name: str
    kind: str
    cases: list[Case]
    fill: dict[str, list[str]] = field(default_factory=dict)
    description: str = ""
    tolerance: float = 0.02
    entity: dict[str, str] = field(default_factory=dict)
    groups: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class Suite:
    """A named list of tests and the run labels its canonical labels accept."""

    name: str
    source: str
    tests: list[Test]
    labels: dict[str, list[str]] = field(default_factory=dict)
    task: str = "classification"


def shipped_suite_path(name: str) -> Path:
    """The path of a suite shipped in ``nlp_transfer/check/suites/`` (``sentiment``, ``ner``, ``any``, ``bias``)."""
    folder = Path(str(resources.files("nlp_transfer.check") / "suites"))
    path = folder / f"{name}.yaml"
    if "/" in name or "\\" in name or not path.is_file():
        shipped = sorted(p.stem for p in folder.glob("*.yaml"))
        raise UserError(f"--suite {name}: no such file and no shipped suite of that name; shipped: {', '.join(shipped)}.")
    return path


def read_document(source: str) -> tuple[Path, Any]:
    """The parsed YAML (or JSONL: ``{"tests": [...]}``) of a file path or a shipped suite name."""
    path = Path(source)
    if not path.is_file():
        path = shipped_suite_path(source)
    text = suite_text(path)
    if path.suffix.lower() == ".jsonl":
        tests = []
        for number, line in enumerate(text_lines(text), start=1):
            if not line.strip():
                continue
            try:
                tests.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise UserError(f"{path}:{number}: not valid JSON ({err.msg}); write one test object per line.") from None
        return path, {"name": path.stem, "tests": tests}
    try:
        return path, yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise UserError(f"{where}: not valid YAML ({problem}). Fix the suite file there.") from None


def suite_text(path: Path) -> str:
    """A suite file decoded as UTF-8 (a byte-order mark dropped); any other encoding is a one-line error naming the file."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        found = f"{path}:{line}: byte 0x{raw[err.start : err.start + 1].hex()} is not UTF-8"
        if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
            found = f"{path}: UTF-16 text"
        raise UserError(f"{found}; a suite must be UTF-8. Re-save the suite file as UTF-8.") from None


def read_suite_file(source: str) -> dict[str, Any]:
    """The raw suite document of a file path or a shipped suite name: a mapping with a ``tests`` list."""
    path, document = read_document(source)
    if not isinstance(document, dict) or not isinstance(document.get("tests"), list):
        raise UserError(f"{path}: a suite is a mapping with a 'tests' list (or a .jsonl file of tests, one a line).")
    document.setdefault("name", path.stem)
    return document


def load_suite(source: str) -> Suite:
    """Read and check a suite: every template well formed, every placeholder filled."""
    document = read_suite_file(source)
    where = str(source)
    shared = _fill_lists(document.get("fill", {}), where)
    if not document["tests"]:
        raise UserError(f"{where}: the 'tests' list is empty; add at least one test.")
    tests = [_test(raw, shared, f"{where}: test {i + 1}") for i, raw in enumerate(document["tests"])]
    names = [t.name for t in tests]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise UserError(f"{where}: two tests are named '{duplicate}'; give each test its own name.")
    labels = {str(k): [str(v) for v in (vs if isinstance(vs, list) else [vs])] for k, vs in document.get("labels", {}).items()}
    return Suite(str(document["name"]), where, tests, labels, str(document.get("task", "classification")))


def _fill_lists(raw: Any, where: str) -> dict[str, list[str]]:
    """``{placeholder: [values]}`` checked: names are identifiers, lists are non-empty."""
    if not isinstance(raw, dict):
        raise UserError(f"{where}: 'fill' must map placeholder names to lists of values.")
    lists = {}
    for key, values in raw.items():
        if not _NAME.match(str(key)) or not isinstance(values, list) or not values:
            raise UserError(f"{where}: fill '{key}' must be an identifier with a non-empty list of values.")
        lists[str(key)] = [str(v) for v in values]
    return lists


def _test(raw: Any, shared: dict[str, list[str]], where: str) -> Test:
    """One test of a suite document, checked."""
    if not isinstance(raw, dict) or not raw.get("name") or raw.get("kind") not in KINDS:
        raise UserError(f"{where}: a test needs a 'name' and a 'kind' (one of {', '.join(KINDS)}).")
    where = f"{where.rsplit(': ', 1)[0]}: test '{raw['name']}'"
    if "." in str(raw["name"]):  # --fail-under keys are dotted paths: behaviour.NAME.failure_rate could not be read
        fixed = str(raw["name"]).replace(".", "_")
        raise UserError(f"{where}: a test name cannot hold a dot (gate keys split on dots); rename it, e.g. '{fixed}'.")
    groups = _fill_lists(raw.get("groups", {}), where)
    fill = {**shared, **_fill_lists(raw.get("fill", {}), where)}
    entity = raw.get("entity", {})
    if raw["kind"] == "entity_recall":
        if not (isinstance(entity, dict) and entity.get("placeholder") and entity.get("type") and groups):
            raise UserError(f"{where}: entity_recall needs 'entity: {{placeholder, type}}' and 'groups' of values.")
        fill = {**fill, str(entity["placeholder"]): ["x"]}  # filled per group, listed so the check below passes
    cases_raw = raw.get("cases")
    if not isinstance(cases_raw, list) or not cases_raw:
        raise UserError(f"{where}: 'cases' must be a non-empty list.")
    cases = [_case(c, raw, fill, f"{where}, case {i + 1}") for i, c in enumerate(cases_raw)]
    return Test(
        name=str(raw["name"]),
        kind=str(raw["kind"]),
        cases=cases,
        fill=fill,
        description=str(raw.get("description", "")),
        tolerance=_tolerance(raw.get("tolerance", 0.02), where),
        entity={k: str(v) for k, v in entity.items()},
        groups=groups,
    )


def _case(raw: Any, test: dict[str, Any], fill: dict[str, list[str]], where: str) -> Case:
    """One case; a bare string is a template. Test-level ``label``/``direction``/``perturb`` are defaults."""
    raw = {"template": raw} if isinstance(raw, str) else raw
    if not isinstance(raw, dict) or not isinstance(raw.get("template"), str):
        raise UserError(f"{where}: a case is a template string or a mapping with 'template'.")
    case = Case(
        template=raw["template"],
        variant=raw.get("variant", test.get("variant")),
        perturb=raw.get("perturb", test.get("perturb")),
        label=_text_or_none(raw.get("label", test.get("label")), where),
        direction=raw.get("direction", test.get("direction")),
    )
    for text in (case.template, case.variant):
        if text is not None:
            unknown = [p for p in placeholders(text, where) if p not in fill and p.lower() not in fill]
            if unknown:
                raise UserError(f"{where}: unknown placeholder {{{unknown[0]}}} in {text!r}; fill lists: {', '.join(fill)}.")
    _check_expectation(case, str(test["kind"]), where)
    return case


def _tolerance(value: Any, where: str) -> float:
    """A test's ``tolerance``: a number from 0 to 1 (a score may move that much the wrong way)."""
    number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if number is None or not 0 <= number <= 1:
        raise UserError(f"{where}: tolerance {value!r} is not a number from 0 to 1; write e.g. 'tolerance: 0.02'.")
    return float(number)


def _text_or_none(value: Any, where: str) -> str | None:
    """A label as text (YAML reads ``label: 1`` as a number); a list or a mapping is refused."""
    if isinstance(value, (list, dict)):
        raise UserError(f"{where}: label {value!r}: a case expects one label; write it as a plain value, e.g. 'label: positive'.")
    return None if value is None else str(value)


def _check_expectation(case: Case, kind: str, where: str) -> None:
    """The fields a case of ``kind`` needs."""
    if kind == "label" and not case.label:
        raise UserError(f"{where}: a 'label' test needs the expected 'label'.")
    if kind == "invariance" and bool(case.variant) == bool(case.perturb):
        raise UserError(f"{where}: an invariance case needs either a 'variant' template or a 'perturb' (not both).")
    if case.perturb and case.perturb not in PERTURBATIONS:
        raise UserError(f"{where}: perturb '{case.perturb}' is not one of {', '.join(PERTURBATIONS)}.")
    if kind == "direction" and not (case.variant and case.label and case.direction in ("up", "down")):
        raise UserError(f"{where}: a direction case needs a 'variant', a 'label' and 'direction: up' or 'down'.")


def placeholders(template: str, where: str = "template") -> list[str]:
    """The ``{name}`` fill-ins of a template; a stray brace or an empty or positional field is a one-line error."""
    try:
        fields = [name for _, name, spec, conv in string.Formatter().parse(template) if name is not None]
    except ValueError as err:
        raise UserError(
            f"{where}: malformed template {template!r} ({err}); write fill-ins as {{name}}, braces as {{{{ }}}}."
        ) from None
    bad = [f for f in fields if not _NAME.match(f)]
    if bad:
        raise UserError(f"{where}: malformed template {template!r}: '{{{bad[0]}}}' is not a fill-in name.")
    return fields


def fill_template(template: str, values: dict[str, str]) -> str:
    """The template with its fill-ins; ``{Name}`` takes the value of ``name`` with a capital first letter."""
    filled = {}
    for name in placeholders(template):
        value = values[name] if name in values else values[name.lower()]
        filled[name] = value[:1].upper() + value[1:] if name not in values else value
    return template.format(**filled)


def expand(case: Case, fill: dict[str, list[str]], seed: int = 0, limit: int = MAX_FILLS) -> list[dict[str, str]]:
    """Fill-in assignments of a case: the product of its placeholders' lists, sampled down to ``limit`` (seeded)."""
    names = sorted({p.lower() if p not in fill else p for t in (case.template, case.variant) if t for p in placeholders(t)})
    lists = [fill[n] for n in names]
    total = 1
    for values in lists:
        total *= len(values)
    if total <= limit:
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*lists)]
    rng = random.Random(f"{seed}:{case.template}")
    seen: dict[tuple[str, ...], None] = {}
    while len(seen) < limit:
        seen.setdefault(tuple(rng.choice(values) for values in lists), None)
    return [dict(zip(names, combo, strict=True)) for combo in seen]


#: words any sentiment model scores apart, for suites that fill no ``good`` and ``bad`` lists (the bias suite)
POLARITY_WORDS = (["great", "excellent", "wonderful", "lovely"], ["terrible", "awful", "horrible", "dreadful"])


def reversed_polarity(
    mapping: dict[str, str], fill: dict[str, list[str]], labels: list[str], probabilities: Callable[[list[str]], Any]
) -> str | None:
    """Why a sentiment mapping made through numbers looks reversed for this run, or None.

    ``0``/``1`` match negative/positive by SST-2's convention, which a dataset may reverse. When both sides matched
    through a name that says nothing (digits, ``label_N``), the run reads "It was {good}." against "It was {bad}."
    (the suite's ``good`` and ``bad`` fill words, else :data:`POLARITY_WORDS`): a mapped positive label that scores the bad words higher says
    the run's 1 means negative, and the suite's verdicts would be upside down.
    """
    if "positive" not in mapping or not set(mapping) <= {"positive", "negative"}:
        return None
    if any(not re.fullmatch(r"(label_)?\d+", mapping[name].lower()) for name in mapping):
        return None  # a label with a name that says what it is
    positive = labels.index(mapping["positive"])
    good_words, bad_words = fill.get("good") or POLARITY_WORDS[0], fill.get("bad") or POLARITY_WORDS[1]
    good = probabilities([f"It was {word}." for word in good_words])[:, positive].mean()
    bad = probabilities([f"It was {word}." for word in bad_words])[:, positive].mean()
    if good >= bad:
        return None
    return (
        f"the run's label '{mapping['positive']}' scores bad words above good ones ({bad:.2f} against {good:.2f}), so "
        f"'{mapping['positive']}' seems to mean negative here, not positive as SST-2's numbers do; name the run's "
        "labels (data.labels) to run this suite"
    )


def map_labels(suite_labels: dict[str, list[str]], run_labels: list[str]) -> dict[str, str] | None:
    """Canonical suite label -> the run's label, or None when some canonical label has no match in the run.

    Matching ignores case; each canonical label lists the names it accepts (e.g. ``positive: [positive, pos, 1]``).
    """
    lowered = {label.lower(): label for label in run_labels}
    mapping = {}
    for canonical, accepted in suite_labels.items():
        found = next((lowered[a.lower()] for a in [canonical, *accepted] if a.lower() in lowered), None)
        if found is None:
            return None
        mapping[canonical] = found
    return mapping
