"""The check as people read it: ``RUN_DIR/check/report.md`` (calibration, behavioural tests, bias, slices, gates) and
the summary lines ``nlp-transfer check`` prints."""

from __future__ import annotations

import math
from typing import Any


def _rate(value: float | None) -> str:
    return "skipped" if value is None else f"{value:.1%}"


def cell(value: Any) -> str:
    """``value`` as one Markdown table cell: a backslash or ``|`` escaped, a line break made a space.

    Labels, texts, test, suite and slice names come from the user's data; a bare ``|`` would split the cell.
    """
    text = str(value).replace("\\", "\\\\").replace("|", "\\|")
    return " ".join(text.splitlines())


def shown(value: Any) -> str:
    """A prediction in an example: a label as it is, a multi-label run's labels joined by commas (``(none)``: none)."""
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value)) or "(none)"
    return str(value)


def behaviour_markdown(behaviour: dict[str, dict[str, Any]]) -> list[str]:
    """One table row per test, then the failing examples and the skip notes."""
    lines = ["## Behavioural tests", "", "| test | suite | kind | cases | failure rate |", "|---|---|---|---|---|"]
    for name, entry in behaviour.items():
        lines.append(
            f"| {cell(name)} | {cell(entry['suite'])} | {entry['kind']} | {entry.get('cases', '')} | {_rate(entry['failure_rate'])} |"
        )
    lines.append("")
    for name, entry in behaviour.items():
        if entry.get("skipped"):
            lines.append(f"- **{name}** skipped: {entry['skipped']}.")
        for group, row in entry.get("groups", {}).items():
            lines.append(f"- **{name}**, {group}: recall {row['recall']:.1%} of {row['count']}")
        for example in entry.get("examples", []):
            lines.append(f"- **{name}** failed: " + "; ".join(f"{k} `{shown(v)}`" for k, v in example.items()))
    return [*lines, ""]


def bias_markdown(bias: dict[str, dict[str, Any]]) -> list[str]:
    """Per dimension and group: flip rate and score gap with their 95 % intervals; flagged groups in bold."""
    lines = [
        "## Bias (counterfactual swaps)",
        "",
        "Flip rate: share of texts whose prediction (the top label; for a multi-label run, the labels at its threshold) "
        "leaves the sentence's consensus when only the name, pronoun or group term changes. Gap: the group's mean score of the measured label minus the other groups'. "
        "Brackets: 95 % bootstrap intervals over sentences.",
        "",
        "| dimension | group | flip rate | score gap | flagged |",
        "|---|---|---|---|---|",
    ]
    for dim, entry in bias.items():
        for group, g in entry["groups"].items():
            flip = f"{g['flip_rate']:.1%} [{g['flip_rate_ci'][0]:.1%}, {g['flip_rate_ci'][1]:.1%}]"
            gap = f"{g['gap']:+.4f} [{g['gap_ci'][0]:+.4f}, {g['gap_ci'][1]:+.4f}]"
            flagged = "**yes**" if g["flagged"] else ""
            lines.append(f"| {cell(dim)} ({cell(entry['score_label'])}) | {cell(group)} | {flip} | {gap} | {flagged} |")
    for dim, entry in bias.items():
        for example in entry["examples"]:
            predicted, consensus = shown(example["predicted"]), shown(example["consensus"])
            lines.append(f"- {dim}: `{example['text']}` -> {predicted} (consensus {consensus})")
    return [*lines, ""]


def slices_markdown(slices: dict[str, Any]) -> list[str]:
    """Accuracy per slice, and the worst one."""
    if slices["accuracy"] is None:
        return ["## Slices", "", "No held-out rows to slice.", ""]
    lines = ["## Slices", "", f"Overall accuracy {slices['accuracy']:.4f} on {slices['rows']} rows.", ""]
    lines += ["| slicing | slice | rows | accuracy |", "|---|---|---|---|"]
    for slicing, table in slices["by"].items():
        for name, row in table.items():
            lines.append(f"| {cell(slicing)} | {cell(name)} | {row['count']} | {row['accuracy']:.4f} |")
    worst = slices["worst"]
    lines.append("")
    if worst:
        lines.append(
            f"Worst slice: **{worst['slicing']} = {worst['slice']}**, accuracy {worst['accuracy']:.4f} on {worst['count']} rows "
            f"({worst['gap']:+.4f} against overall)."
        )
    else:
        lines.append(f"No slice has {slices['min_rows']} rows or more; none is named the worst.")
    return [*lines, ""]


def extra_sections(report: dict[str, Any]) -> list[str]:
    """The sections after calibration, for those the report has."""
    lines = [""]
    if "behaviour" in report:
        lines += behaviour_markdown(report["behaviour"])
    if "bias" in report:
        lines += bias_markdown(report["bias"])
    if "slices" in report:
        lines += slices_markdown(report["slices"])
    if report.get("drift"):
        lines += drift_markdown(report["drift"])
    gates = report.get("gates", {})
    if gates.get("bounds"):
        missed = gates["missed"]
        lines += ["## Gates", "", "All gates passed." if not missed else "Missed: " + "; ".join(missed) + ".", ""]
    return lines


def drift_markdown(drift: dict[str, Any]) -> list[str]:
    """How far the --drift inputs are from the training texts."""
    lines = [
        "## Drift",
        "",
        f"`{drift['file']}` against the run's training texts ({drift['compared_per_side']} a side): a classifier on frozen "
        f"embeddings tells them apart with accuracy {drift['domain_classifier_accuracy']:.3f} (0.5: indistinguishable), "
        f"proxy A-distance {drift['proxy_a_distance']:.3f} (0 to 2).",
    ]
    if drift.get("label_total_variation") is not None:
        lines.append(f"The predicted-label shares move by {drift['label_total_variation']:.3f} (total variation).")
    return [*lines, f"Details and plot: {drift['report'].get('shift.json')}, {drift['report'].get('shift.png')}", ""]


def failure_rates(tests: dict[str, dict[str, Any]]) -> list[str]:
    """``name rate`` for each behavioural test that ran (a skipped test has no failure rate)."""
    return [f"{name} {t['failure_rate']:.1%}" for name, t in tests.items() if t["failure_rate"] is not None]


def card_lines(report: dict[str, Any]) -> list[str]:
    """Bullet lines for the model card's "Bias, risks and limitations" section: behaviour, bias and slices."""
    lines = []
    tests = report.get("behaviour", {})
    measured = failure_rates(tests)
    if measured:
        lines.append("- Behavioural tests (`nlp-transfer check`, share of templated cases failed): " + ", ".join(measured) + ".")
    for name, t in tests.items():
        if t.get("groups"):
            recalls = ", ".join(f"{g} {row['recall']:.1%}" for g, row in t["groups"].items())
            lines.append(f"- {name}: recall per group {recalls}.")
    bias = report.get("bias", {})
    flagged = [(dim, group, entry["groups"][group]) for dim, entry in bias.items() for group in entry["flagged"]]
    for dim, group, g in flagged:
        lines.append(
            f"- Bias ({dim}, {group}): label flips on {g['flip_rate']:.1%} of counterfactual texts "
            f"(95 % interval {g['flip_rate_ci'][0]:.1%}-{g['flip_rate_ci'][1]:.1%}), score gap {g['gap']:+.4f} "
            f"({g['gap_ci'][0]:+.4f} to {g['gap_ci'][1]:+.4f})."
        )
    if bias and not flagged:
        largest = max(bias, key=lambda d: bias[d]["max_abs_gap"])
        lines.append(
            f"- Bias: no group flagged by counterfactual swaps ({', '.join(bias)}); largest mean score gap "
            f"{bias[largest]['max_abs_gap']:.4f} ({largest}), largest flip rate {max(e['max_flip_rate'] for e in bias.values()):.1%}."
        )
    worst = report.get("slices", {}).get("worst")
    if worst:
        lines.append(
            f"- Weakest slice: {worst['slicing']} = {worst['slice']}, accuracy {worst['accuracy']:.4f} on {worst['count']} rows "
            f"({worst['gap']:+.4f} against all rows)."
        )
    return lines


def markdown_report(report: dict[str, Any]) -> str:
    """The check as a short Markdown page."""
    lines = [f"# Check of {report['run_dir']}", ""]
    if "calibration" in report:
        lines += calibration_markdown(report)
    return "\n".join(lines + extra_sections(report)) + "\n"


def calibration_markdown(report: dict[str, Any]) -> list[str]:
    """The calibration and selective-prediction part of the report."""
    c, s = report["calibration"], report["selective"]
    lines = [f"Temperature fitted on {report['fitted_on']}; figures on {report['scored_on']}."]
    if report["same_rows"]:
        lines.append(
            "The same rows (text and label) fitted the temperature and are scored: the figures after it are optimistic. "
            "Pass --data with other labelled rows."
        )
    lines += [
        "",
        "| figure | before | after temperature |",
        "|---|---|---|",
        f"| expected calibration error | {c['ece']:.4f} | {c['ece_after_temperature']:.4f} |",
    ]
    if "validation_ece" in c and not report["same_rows"]:
        before, after = c["validation_ece"], c["validation_ece_after_temperature"]
        lines.append(f"| ECE on the rows that fitted the temperature (in-sample) | {before:.4f} | {after:.4f} |")
    if "brier" in c:
        lines.append(f"| Brier score | {c['brier']:.4f} | {c['brier_after_temperature']:.4f} |")
        lines.append(f"| negative log-likelihood | {c['nll']:.4f} | {c['nll_after_temperature']:.4f} |")
    if c["ece_after_temperature"] > c["ece"]:
        lines += [
            "",
            f"**The temperature made the scores worse here** (ECE {c['ece']:.4f} -> {c['ece_after_temperature']:.4f}): one "
            "temperature cannot repair this model's errors; compare `--calibrator isotonic` (or `auto`).",
        ]
    if "ece_noise_floor" in c:
        floor, measured = c["ece_noise_floor"], c["ece_after_temperature"]
        verdict = (
            "inside it: sampling alone can explain it"
            if measured <= floor["p95"]
            else "above it: a miscalibration these rows can show"
        )
        lines += [
            "",
            f"A perfectly calibrated model with these scores would show an ECE of about {floor['median']:.4f} on as many"
            f" rows (95 % of the time below {floor['p95']:.4f}); the ECE after the temperature here, {measured:.4f}, is "
            f"{verdict}.",
        ]
    if "ece_after_isotonic" in c:
        lines += ["", *top_label_markdown(c)]
    applied = "applied by predict and evaluate" if c.get("applied", True) else "reported only (multi-label thresholds stay)"
    unit = s.get("unit", "row")
    accuracy = "Accuracy" if unit == "row" else "Accuracy per label decision"
    lines += ["", f"Temperature **{c['temperature']:.3f}** ({applied}). {accuracy} {c['accuracy']:.4f}.", ""]
    lines.append(
        f"Selective prediction: accuracy {s['accuracy_at_80']:.4f} on the 80 % most confident, {s['accuracy_at_90']:.4f} on 90 %."
    )
    if unit != "row":  # a multi-label run: the thresholds are not in the units of predict's score
        lines.append(
            "Here each label decision of each text counts, scored by the probability of what was decided (p for a label at "
            "or above the run's threshold, 1 - p for one below it); `predict --min-score` reads a text's top label "
            "probability instead, so these thresholds do not carry over to it."
        )
    for target, found in s["thresholds"].items():
        lines.append(f"- accuracy {target}: {threshold_text(found, unit)}")
    return lines


#: fewer kept rows than this and a threshold's accuracy says little about new texts
FEW_KEPT_ROWS = 30


def threshold_text(found: dict[str, Any] | None, unit: str = "row") -> str:
    """A selective-prediction threshold as ``predict --min-score`` takes it: rounded down (0.870363 printed as 0.8704
    kept none of the rows it claimed), with the rows (or multi-label decisions: ``unit``) it keeps and a warning when
    they are few."""
    if not found:
        return "not reached at any coverage"
    text = f"score >= {math.floor(found['threshold'] * 1e6) / 1e6:.6f} keeps {found['coverage']:.1%}"
    rows = found.get("rows")
    if rows is None:
        return text
    text += f" ({rows} {unit}{'s' if rows != 1 else ''})"
    if rows < FEW_KEPT_ROWS:
        text += f": too few {unit}s to rely on; choose a threshold on more labelled rows"
    return text


def top_label_markdown(c: dict[str, Any]) -> list[str]:
    """The report's comparison of the two calibrators, and which one predict and evaluate now apply."""
    cross = (c["validation_ece_after_temperature_cross_fitted"], c["validation_ece_after_isotonic_cross_fitted"])
    applied = (
        "the temperature then this map give the chosen label's `score`"
        if c["calibrator"] == "isotonic"
        else "not applied (`--calibrator isotonic` or `auto` applies it)"
    )
    return [
        f"A top-label isotonic map after the temperature (a monotone map of the chosen label's score, fitted on the same"
        f" rows) gives ECE **{c['ece_after_isotonic']:.4f}** here; {applied}. Cross-fitted on the fitting rows (5 folds,"
        f" each scored by calibrators fitted on the other four): temperature {cross[0]:.4f}, isotonic {cross[1]:.4f}.",
        f"Applied calibrator: **{c['calibrator']}**; ECE of the scores predict now gives: {c['ece_after_calibration']:.4f}.",
    ]


def summary_lines(report: dict[str, Any]) -> list[str]:
    """A few lines for the terminal: calibration, failing behavioural tests, flagged bias groups, the worst slice."""
    lines = []
    if "calibration" in report:
        c, s = report["calibration"], report["selective"]
        lines.append(f"scored on {report['scored_on']} (temperature fitted on {report['fitted_on']})")
        if report.get("same_rows"):
            lines.append("these are the rows that fitted the temperature: the figures after it are optimistic")
        lines.append(f"ECE {c['ece']:.4f} -> {c['ece_after_temperature']:.4f} after temperature {c['temperature']:.3f}")
        if "ece_after_isotonic" in c:
            lines.append(f"ECE {c['ece_after_isotonic']:.4f} with a top-label isotonic map; applied: {c['calibrator']}")
        lines.append(f"accuracy at 80 % coverage {s['accuracy_at_80']:.4f}, at 90 % {s['accuracy_at_90']:.4f}")
    tests = report.get("behaviour", {})
    rates = failure_rates(tests)
    skipped = [name for name, t in tests.items() if t["failure_rate"] is None]
    if rates:
        lines.append("behaviour failure rates: " + ", ".join(rates))
    if skipped:
        lines.append(f"behaviour skipped: {', '.join(skipped)} (see report.md)")
    flagged = [f"{dim}/{group}" for dim, entry in report.get("bias", {}).items() for group in entry["flagged"]]
    if "bias" in report:
        lines.append("bias: " + (", ".join(flagged) + " flagged" if flagged else "no group flagged"))
    drift = report.get("drift")
    if drift:
        lines.append(
            f"drift of {drift['file']}: domain classifier accuracy {drift['domain_classifier_accuracy']:.3f} (0.5: "
            f"indistinguishable from the training texts), proxy A-distance {drift['proxy_a_distance']:.3f}"
        )
    worst = report.get("slices", {}).get("worst")
    if worst:
        lines.append(
            f"worst slice: {worst['slicing']} = {worst['slice']} (accuracy {worst['accuracy']:.4f}, {worst['count']} rows)"
        )
    return lines
