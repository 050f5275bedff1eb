"""``nlp-transfer check RUN_DIR``: calibration and selective prediction of a trained classifier, before shipping it.

A temperature is fitted on the run's validation split (the rows that chose the model) and the figures are
reported, before and after it, on held-out rows: ``--data FILE``, else the run's test split, else the
validation split itself (then the "after" figures are optimistic, and the report says so). The temperature is
written to ``RUN_DIR/calibration.json``, where ``predict``, ``evaluate`` and ``load_run`` apply it to
single-label scores (labels never change: the temperature keeps the order of the logits). The report goes to
``RUN_DIR/check/``: ``check.json``, ``report.md``, a reliability diagram and the accuracy-coverage curve.
``--fail-under KEY=VALUE`` turns the figures into a release gate (exit 1 when one misses its bound).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from nlp_transfer.check.calibration import (
    calibration_report,
    expected_calibration_error_multilabel,
    fit_temperature,
    fit_temperature_multilabel,
    plot_reliability,
    softmax_with_temperature,
)
from nlp_transfer.check.selective import plot_accuracy_coverage, selective_report
from nlp_transfer.config import DataConfig
from nlp_transfer.errors import UserError

CHECK_DIR = "check"
#: figures a gate can name, and whether a higher value is better
GATES = {
    "calibration.ece": False,
    "calibration.ece_after_temperature": False,
    "calibration.brier": False,
    "calibration.brier_after_temperature": False,
    "calibration.accuracy": True,
    "selective.accuracy_at_80": True,
    "selective.accuracy_at_90": True,
    "selective.auc": True,
}


@dataclass
class Scored:
    """Logits and gold labels of one set of rows, and where they come from."""

    logits: np.ndarray
    labels: np.ndarray
    source: str


def run_splits(run_dir: Path, model: Any, task: Any, batch_size: int) -> dict[str, Scored]:
    """Logits and labels of the run's own validation and test splits (as its config.yaml reads them; read once)."""
    from nlp_transfer.config import load_config
    from nlp_transfer.data.loading import load_text_classification_data
    from nlp_transfer.inference import labelled_text_logits

    config = load_config(run_dir / "config.yaml")
    no_augment = replace(config.data, augment=[])  # data.augment only adds training rows, which check does not read
    data = load_text_classification_data(no_augment, multi_label=task.multi_label, seed=config.seed)
    scored = {}
    for split in ("validation", "test"):
        if split in data.splits and len(data.splits[split]) > 0:
            rows = data.splits[split]
            logits, labels = labelled_text_logits(model, task, rows["text"], rows["label"], batch_size=batch_size)
            scored[split] = Scored(logits, labels, f"the run's {split} split ({len(rows)} rows)")
    return scored


def file_rows(path: str, data: DataConfig, model: Any, task: Any, batch_size: int) -> Scored:
    """The logits and labels of a labelled file, read as ``nlp-transfer evaluate`` reads it."""
    from nlp_transfer.inference import labelled_file_logits

    logits, labels = labelled_file_logits(model, task, path, data, batch_size=batch_size)
    return Scored(logits, labels, f"{path} ({len(labels)} rows)")


def single_label_figures(fit: Scored, held_out: Scored, bins: int) -> tuple[dict[str, Any], dict[str, Any], tuple]:
    """Calibration before and after a temperature fitted on ``fit``, and selective prediction, on ``held_out``."""
    temperature = fit_temperature(fit.logits, fit.labels)
    before = calibration_report(held_out.logits, held_out.labels, bins=bins)
    after = calibration_report(held_out.logits, held_out.labels, bins=bins, temperature=temperature)
    calibration = {
        "temperature": temperature,
        "ece": before["ece"],
        "ece_after_temperature": after["ece"],
        "brier": before["brier"],
        "brier_after_temperature": after["brier"],
        "nll": before["nll"],
        "nll_after_temperature": after["nll"],
        "accuracy": before["accuracy"],
        "bins": before["bins"],
        "bins_after_temperature": after["bins"],
    }
    probabilities = softmax_with_temperature(held_out.logits, temperature)
    scores = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == held_out.labels
    return calibration, selective_report(scores, correct), (scores, correct)


def multi_label_figures(fit: Scored, held_out: Scored, bins: int) -> tuple[dict[str, Any], dict[str, Any], tuple]:
    """Per-decision calibration of a multi-label run (its temperature is reported, not applied: thresholds stay)."""
    temperature = fit_temperature_multilabel(fit.logits, fit.labels)

    def sigmoid(z: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-z.astype(np.float64)))

    before, after = sigmoid(held_out.logits), sigmoid(held_out.logits / temperature)
    calibration = {
        "temperature": temperature,
        "applied": False,
        "ece": expected_calibration_error_multilabel(before, held_out.labels, bins=bins),
        "ece_after_temperature": expected_calibration_error_multilabel(after, held_out.labels, bins=bins),
        "accuracy": float(np.mean((before >= 0.5) == (held_out.labels == 1))),
    }
    scores = np.maximum(before, 1.0 - before).ravel()
    correct = ((before >= 0.5) == (held_out.labels == 1)).ravel()
    return calibration, selective_report(scores, correct), (scores, correct)


def parse_gates(items: list[str]) -> dict[str, float]:
    """``KEY=VALUE`` bounds for :data:`GATES` keys; an unknown key or a value that is not a number is a one-line error."""
    gates = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key.strip() not in GATES:
            raise UserError(f"--fail-under {item}: write KEY=VALUE with KEY one of {', '.join(GATES)}.")
        try:
            gates[key.strip()] = float(value)
        except ValueError:
            raise UserError(f"--fail-under {item}: {value!r} is not a number.") from None
    return gates


def missed_gates(report: dict[str, Any], gates: dict[str, float]) -> list[str]:
    """The gates a report misses: a figure below its bound (above it, where lower is better)."""
    missed = []
    for key, bound in gates.items():
        section, name = key.split(".")
        value = report[section].get(name)
        if value is None:
            continue
        if (value < bound) if GATES[key] else (value > bound):
            missed.append(f"{key} = {value:.4f} ({'below' if GATES[key] else 'above'} {bound:g})")
    return missed


def write_temperature(run_dir: Path, temperature: float, source: str) -> None:
    """Store the temperature where ``load_run`` reads it, atomically (a half-written file never replaces a good one)."""
    from nlp_transfer.inference import CALIBRATION_FILE

    target = run_dir / CALIBRATION_FILE
    tmp = target.with_name(f".tmp-{CALIBRATION_FILE}")
    tmp.write_text(json.dumps({"temperature": temperature, "fitted_on": source}, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, target)


def check_run(
    run_dir: str | Path, *, data_path: str | None = None, data: DataConfig | None = None, batch_size: int = 64, bins: int = 15
) -> dict[str, Any]:
    """Check a classification run: calibration and selective prediction; writes RUN_DIR/check/ and the temperature."""
    from nlp_transfer.inference import load_run
    from nlp_transfer.tasks.token_classification import TokenClassificationTask

    run_dir = Path(run_dir)
    model, task = load_run(run_dir)
    if isinstance(task, TokenClassificationTask):
        raise UserError(f"{run_dir}: a NER run; nlp-transfer check covers classification runs so far (issue #19).")
    splits = run_splits(run_dir, model, task, batch_size)
    fit = splits.get("validation")
    if fit is None:
        raise UserError(f"{run_dir}: the run has no validation split to fit the temperature on; retrain with one.")
    held_out = file_rows(data_path, data or DataConfig(), model, task, batch_size) if data_path else None
    held_out = held_out or splits.get("test") or fit
    figures = multi_label_figures if task.multi_label else single_label_figures
    calibration, selective, (scores, correct) = figures(fit, held_out, bins)
    report = {
        "run_dir": str(run_dir),
        "fitted_on": fit.source,
        "scored_on": held_out.source,
        "same_rows": held_out is fit,
        "calibration": calibration,
        "selective": selective,
    }
    out = run_dir / CHECK_DIR
    out.mkdir(exist_ok=True)
    (out / "check.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if "bins" in calibration:
        plot_reliability(calibration["bins"], calibration["bins_after_temperature"], out / "reliability.png")
    plot_accuracy_coverage(scores, correct, out / "accuracy_coverage.png")
    (out / "report.md").write_text(markdown_report(report), encoding="utf-8")
    if not task.multi_label:
        write_temperature(run_dir, calibration["temperature"], fit.source)
    return report


def markdown_report(report: dict[str, Any]) -> str:
    """The check as a short Markdown page."""
    c, s = report["calibration"], report["selective"]
    lines = [
        f"# Check of {report['run_dir']}",
        "",
        f"Temperature fitted on {report['fitted_on']}; figures on {report['scored_on']}.",
    ]
    if report["same_rows"]:
        lines.append("The same rows fitted the temperature and are scored: the figures after it are optimistic. Pass --data.")
    lines += [
        "",
        "| figure | before | after temperature |",
        "|---|---|---|",
        f"| expected calibration error | {c['ece']:.4f} | {c['ece_after_temperature']:.4f} |",
    ]
    if "brier" in c:
        lines.append(f"| Brier score | {c['brier']:.4f} | {c['brier_after_temperature']:.4f} |")
        lines.append(f"| negative log-likelihood | {c['nll']:.4f} | {c['nll_after_temperature']:.4f} |")
    applied = "applied by predict and evaluate" if c.get("applied", True) else "reported only (multi-label thresholds stay)"
    lines += ["", f"Temperature **{c['temperature']:.3f}** ({applied}). Accuracy {c['accuracy']:.4f}.", ""]
    lines.append(
        f"Selective prediction: accuracy {s['accuracy_at_80']:.4f} on the 80 % most confident, {s['accuracy_at_90']:.4f} on 90 %."
    )
    for target, found in s["thresholds"].items():
        reach = f"score >= {found['threshold']:.4f} keeps {found['coverage']:.1%}" if found else "not reached at any coverage"
        lines.append(f"- accuracy {target}: {reach}")
    return "\n".join(lines) + "\n"
