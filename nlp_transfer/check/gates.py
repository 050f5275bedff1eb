"""Release gates of ``nlp-transfer check``: ``--fail-under KEY=VALUE`` bounds on figures of ``check.json``.

A key is the dotted path of a number in ``check.json`` (``calibration.ece``, ``behaviour.negation.failure_rate``,
``bias.names_gender.max_abs_gap``, ``slices.worst.accuracy``). The direction follows the key's last part: error
rates, flip rates, gaps, ECE, Brier, NLL and the drift figures (proxy A-distance, domain-classifier accuracy, total
variation of the predicted labels) are upper bounds (the check fails above them; gaps compare their
absolute value); everything else (accuracy, recall, AUC) is a lower bound (the check fails below it). A figure
the check could not measure (a skipped test) misses its gate.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from nlp_transfer.errors import UserError

#: calibration and selective-prediction keys, and whether a higher value is better
GATES = {
    "calibration.ece": False,
    "calibration.ece_after_temperature": False,
    "calibration.validation_ece": False,
    "calibration.validation_ece_after_temperature": False,
    "calibration.ece_after_isotonic": False,
    "calibration.ece_after_calibration": False,
    "calibration.validation_ece_after_temperature_cross_fitted": False,
    "calibration.validation_ece_after_isotonic_cross_fitted": False,
    "calibration.brier": False,
    "calibration.brier_after_temperature": False,
    "calibration.accuracy": True,
    "selective.accuracy_at_80": True,
    "selective.accuracy_at_90": True,
    "selective.auc": True,
}
#: the calibration figures of a multi-label run (per decision; no validation, Brier or isotonic figures)
MULTI_LABEL_GATES = ("calibration.ece", "calibration.ece_after_temperature", "calibration.accuracy")
LOWER_IS_BETTER = (
    "failure_rate", "flip_rate", "max_flip_rate", "gap", "max_abs_gap", "recall_gap",
    "proxy_a_distance", "domain_classifier_accuracy", "total_variation",
)  # fmt: skip
DRIFT_KEYS = ("drift.proxy_a_distance", "drift.domain_classifier_accuracy", "drift.label_total_variation")
BIAS_GROUP_KEYS = ("flip_rate", "gap")
#: how an error lists the keys of each section of a check that has it (behaviour tests, bias dimensions)
KEY_PATTERNS = {
    "behaviour.": "behaviour.TEST.failure_rate (entity tests also .recall_gap)",
    "bias.": "bias.DIMENSION.max_flip_rate|max_abs_gap",
}


def higher_is_better(key: str) -> bool:
    """Whether a bound on ``key`` is a lower bound (higher is better) or an upper bound."""
    last = key.rsplit(".", 1)[-1]
    return not (last in LOWER_IS_BETTER or last.startswith(("ece", "brier", "nll")))


def known_keys(
    tests: dict[str, str],
    dimensions: dict[str, list[str]],
    *,
    classification: bool = True,
    drift: bool = False,
    multi_label: bool = False,
) -> list[str]:
    """Every key a gate may name for a check with these behavioural tests (name -> kind) and bias dimensions (-> groups).

    ``drift``: the check measures ``--drift`` inputs against the training texts (``drift.*`` keys). ``multi_label``: a
    multi-label run's calibration has its ECE before and after a temperature, and its decisions' accuracy, alone.
    """
    keys = list(GATES) if classification else []
    if multi_label:
        keys = [k for k in keys if k in MULTI_LABEL_GATES or k.startswith("selective.")]
    keys += list(DRIFT_KEYS) if drift else []
    for test, kind in tests.items():
        keys.append(f"behaviour.{test}.failure_rate")
        if kind == "entity_recall":
            keys.append(f"behaviour.{test}.recall_gap")
    for dim, groups in dimensions.items():
        keys += [f"bias.{dim}.max_flip_rate", f"bias.{dim}.max_abs_gap"]
        keys += [f"bias.{dim}.groups.{g}.{k}" for g in groups for k in BIAS_GROUP_KEYS]
    if classification:
        keys += ["slices.accuracy", "slices.worst.accuracy"]
    return keys


def parse_gates(items: list[str], known: Iterable[str] = GATES) -> dict[str, float]:
    """``KEY=VALUE`` bounds on ``known`` keys; an unknown key or a value that is not a number is a one-line error."""
    known = list(known)
    gates = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if sep and key in DRIFT_KEYS and key not in known:
            raise UserError(f"--fail-under {item}: drift figures are measured only with --drift FILE; add it.")
        if not sep or key not in known:
            raise UserError(f"--fail-under {item}: write KEY=VALUE with KEY one of {_describe(known, key)}.")
        try:
            bound = float(value)
        except ValueError:
            raise UserError(f"--fail-under {item}: {value!r} is not a number.") from None
        top = figure_ceiling(key)
        if not 0.0 <= bound <= top:  # nan, inf or out of range: a gate that can never fail, or never pass
            raise UserError(f"--fail-under {item}: {key} lies between 0 and {top:g}; give a bound in that range.")
        gates[key] = bound
    return gates


def figure_ceiling(key: str) -> float:
    """The largest value the figure ``key`` can take: 2 for a Brier score and the proxy A-distance, else 1."""
    last = key.rsplit(".", 1)[-1]
    return 2.0 if last.startswith("brier") or last == "proxy_a_distance" else 1.0


def _describe(known: list[str], key: str) -> str:
    """The keys worth listing in an error: those of the section the user named, else the plain ones and patterns."""
    section = key.split(".", 1)[0]
    same = [k for k in known if k.split(".", 1)[0] == section and section in ("behaviour", "bias", "slices")]
    if same:
        return ", ".join(same[:40]) + (", ..." if len(same) > 40 else "")
    plain = [k for k in known if not k.startswith(("behaviour.", "bias."))]
    patterns = [pattern for prefix, pattern in KEY_PATTERNS.items() if any(k.startswith(prefix) for k in known)]
    return ", ".join(plain + patterns) or "none: this check measures no figure a gate can bound"


def lookup(report: dict[str, Any], key: str) -> Any:
    """The value at a dotted path of the report (None when a part is missing)."""
    node: Any = report
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def missed_gates(report: dict[str, Any], gates: dict[str, float]) -> list[str]:
    """The gates a report misses: a figure below its bound (above it, where lower is better), or not measured."""
    missed = []
    for key, bound in gates.items():
        value, higher = lookup(report, key), higher_is_better(key)
        if not isinstance(value, (int, float)):
            skipped = lookup(report, key.rsplit(".", 1)[0] + ".skipped") if "." in key else None
            missed.append(f"{key} not measured" + (f" (skipped: {skipped})" if isinstance(skipped, str) else ""))
            continue
        value = abs(value) if key.endswith("gap") else value
        if (value < bound) if higher else (value > bound):
            missed.append(f"{key} = {value:.4f} ({'below' if higher else 'above'} {bound:g})")
    return missed
