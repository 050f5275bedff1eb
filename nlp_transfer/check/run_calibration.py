"""A run's calibration: its splits scored, calibrators fitted on validation and measured on held-out rows.

:func:`run_splits` and :func:`file_rows` score the rows (:class:`Scored`); :func:`single_label_figures` fits a
temperature and a top-label isotonic map on the validation split and reports ECE, Brier, NLL and selective
prediction before and after, on the held-out rows and cross-fitted on validation; :func:`multi_label_figures` does
the same per decision of a multi-label run (its temperature is reported, not applied). :func:`write_calibration`
stores what ``predict``, ``evaluate`` and ``load_run`` apply.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from nlp_transfer.check.calibration import (
    CALIBRATORS,
    apply_top_label_map,
    calibration_report,
    cross_fitted_confidences,
    ece_noise_floor,
    expected_calibration_error_multilabel,
    fit_temperature,
    fit_temperature_multilabel,
    fit_top_label_map,
    softmax_with_temperature,
    top_label_ece,
)
from nlp_transfer.check.selective import selective_report
from nlp_transfer.config import DataConfig
from nlp_transfer.errors import UserError
from nlp_transfer.files import write_text_atomic


@dataclass
class Scored:
    """Logits and gold labels of one set of rows, and where they come from."""

    logits: np.ndarray
    labels: np.ndarray
    source: str
    texts: list[str] | None = None
    lines: list[int] | None = None


def load_run_config(run_dir: Path) -> Any:
    """The ``config.yaml`` of a run of ``nlp-transfer train``, which says where its validation split is."""
    from nlp_transfer.config import load_saved_config

    if not (run_dir / "config.yaml").is_file():
        raise UserError(
            f"{run_dir}: a model folder but not a run of nlp-transfer train (no config.yaml), so check cannot find the "
            "validation split it calibrates on. Train a run from this model and check that run's output_dir."
        )
    return load_saved_config(run_dir / "config.yaml")


def run_splits(run_dir: Path, model: Any, task: Any, batch_size: int) -> dict[str, Scored]:
    """Logits and labels of the run's own validation and test splits (as its config.yaml reads them; read once)."""
    from nlp_transfer.data.text_rows import load_text_classification_data
    from nlp_transfer.inference import labelled_text_logits

    config = load_run_config(run_dir)
    no_augment = replace(config.data, augment=[])  # data.augment only adds training rows, which check does not read
    data = load_text_classification_data(no_augment, multi_label=task.multi_label, seed=config.seed)
    scored = {}
    for split in ("validation", "test"):
        if split in data.splits and len(data.splits[split]) > 0:
            rows = data.splits[split]
            logits, labels = labelled_text_logits(model, task, rows["text"][:], rows["label"][:], batch_size=batch_size)
            source = f"the run's {split} split ({len(rows)} rows)"
            scored[split] = Scored(logits, labels, source, rows["text"][:], rows["line"][:])
    return scored


def file_rows(path: str, data: DataConfig, model: Any, task: Any, batch_size: int) -> Scored:
    """The logits and labels of a labelled file, read as ``nlp-transfer evaluate`` reads it."""
    from nlp_transfer.data.labels import check_known_labels, map_integer_label_column
    from nlp_transfer.data.text_rows import read_text_classification_file
    from nlp_transfer.inference import labelled_text_logits

    columns = read_text_classification_file(path, data, multi_label=task.multi_label)  # as labelled_file_logits reads it
    columns["label"] = map_integer_label_column(columns["label"], task.labels)
    check_known_labels(columns["label"], columns["line"], task.labels, path, known_from="run")
    logits, labels = labelled_text_logits(model, task, columns["text"], columns["label"], batch_size=batch_size)
    return Scored(logits, labels, f"{path} ({len(labels)} rows)", list(columns["text"]), list(columns["line"]))


def single_label_figures(
    fit: Scored, held_out: Scored, bins: int, calibrator: str = "temperature"
) -> tuple[dict[str, Any], dict[str, Any], tuple]:
    """Calibration before and after calibrators fitted on ``fit``, and selective prediction, on ``held_out``.

    Both calibrators are always measured (a temperature; a temperature then a top-label isotonic map), on the
    held-out rows and cross-fitted on ``fit``; ``calibrator`` (``temperature``, ``isotonic`` or ``auto``: the lower
    cross-fitted validation ECE) is the one applied to the scores, and selective prediction reads its scores.
    """
    temperature = fit_temperature(fit.logits, fit.labels)
    before = calibration_report(held_out.logits, held_out.labels, bins=bins)
    after = calibration_report(held_out.logits, held_out.labels, bins=bins, temperature=temperature)
    fitted = [calibration_report(fit.logits, fit.labels, bins=bins, temperature=t)["ece"] for t in (1.0, temperature)]
    probabilities = softmax_with_temperature(held_out.logits, temperature)
    fit_probabilities = softmax_with_temperature(fit.logits, temperature)
    calibration = {
        "temperature": temperature,
        "ece": before["ece"],
        "ece_after_temperature": after["ece"],
        "validation_ece": fitted[0],  # on the rows that fitted the temperature: the "after" figure is in-sample
        "validation_ece_after_temperature": fitted[1],
        # what a perfectly calibrated model with the same scores would show on as many rows (after temperature)
        "ece_noise_floor": ece_noise_floor(probabilities.max(axis=1), bins=bins),
        "validation_ece_noise_floor": ece_noise_floor(fit_probabilities.max(axis=1), bins=bins),
        "brier": before["brier"],
        "brier_after_temperature": after["brier"],
        "nll": before["nll"],
        "nll_after_temperature": after["nll"],
        "accuracy": before["accuracy"],
        "bins": before["bins"],
        "bins_after_temperature": after["bins"],
    }
    correct = probabilities.argmax(axis=1) == held_out.labels
    top_label = top_label_figures(fit, fit_probabilities, probabilities.max(axis=1), correct, bins)
    calibration.update(top_label.pop("figures"))
    calibration["calibrator"] = chosen_calibrator(calibrator, calibration)
    scores = probabilities.max(axis=1)
    if calibration["calibrator"] == "isotonic":
        calibration["top_label_map"] = top_label["points"]
        scores = apply_top_label_map(top_label["points"], scores)
    calibration["ece_after_calibration"] = top_label_ece(scores, correct, bins=bins)
    return calibration, selective_report(scores, correct), (scores, correct)


def top_label_figures(
    fit: Scored, fit_probabilities: np.ndarray, confidence: np.ndarray, correct: np.ndarray, bins: int
) -> dict[str, Any]:
    """The top-label isotonic map fitted on ``fit`` (after temperature), its held-out ECE, and both calibrators' cross-fitted ECE."""
    fit_correct = fit_probabilities.argmax(axis=1) == fit.labels
    points = fit_top_label_map(fit_probabilities.max(axis=1), fit_correct)
    cross = {
        method: top_label_ece(cross_fitted_confidences(fit.logits, fit.labels, method=method), fit_correct, bins=bins)
        for method in CALIBRATORS
    }
    figures = {
        "ece_after_isotonic": top_label_ece(apply_top_label_map(points, confidence), correct, bins=bins),
        "validation_ece_after_temperature_cross_fitted": cross["temperature"],
        "validation_ece_after_isotonic_cross_fitted": cross["isotonic"],
    }
    return {"points": points, "figures": figures}


def chosen_calibrator(calibrator: str, calibration: dict[str, Any]) -> str:
    """``temperature`` or ``isotonic``: the one asked for, or for ``auto`` the lower cross-fitted validation ECE."""
    if check_calibrator(calibrator) == "auto":
        return min(CALIBRATORS, key=lambda m: calibration[f"validation_ece_after_{m}_cross_fitted"])
    return calibrator


def check_calibrator(calibrator: str) -> str:
    """``calibrator`` when it is one ``--calibrator`` accepts; a UserError naming the choices otherwise."""
    if calibrator not in (*CALIBRATORS, "auto"):
        raise UserError(f"--calibrator {calibrator}: unknown; choose one of {', '.join(CALIBRATORS)} or auto.")
    return calibrator


def multi_label_figures(
    fit: Scored, held_out: Scored, bins: int, threshold: float = 0.5
) -> tuple[dict[str, Any], dict[str, Any], tuple]:
    """Per-decision calibration of a multi-label run (its temperature is reported, not applied: thresholds stay).

    A decision is a label's score against the run's ``threshold`` (``training.threshold``), as predict decides it;
    selective prediction ranks decisions by :func:`decision_confidence`.
    """
    temperature = fit_temperature_multilabel(fit.logits, fit.labels)

    def sigmoid(z: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-z.astype(np.float64)))

    before, after = sigmoid(held_out.logits), sigmoid(held_out.logits / temperature)
    calibration = {
        "temperature": temperature,
        "applied": False,
        "ece": expected_calibration_error_multilabel(before, held_out.labels, bins=bins),
        "ece_after_temperature": expected_calibration_error_multilabel(after, held_out.labels, bins=bins),
        "accuracy": float(np.mean((before >= threshold) == (held_out.labels == 1))),
    }
    scores = decision_confidence(before, threshold).ravel()
    correct = ((before >= threshold) == (held_out.labels == 1)).ravel()
    selective = {**selective_report(scores, correct), "unit": "label decision"}  # not predict's per-text `score`
    return calibration, selective, (scores, correct)


def decision_confidence(probabilities: np.ndarray, threshold: float) -> np.ndarray:
    """How sure a multi-label run is of each label decision: the probability of the outcome it decided.

    ``p`` for a label it predicts (``p >= threshold``), ``1 - p`` for one it leaves out: under calibration, the chance
    that the decision is right, so keeping the highest scores keeps the likeliest right decisions. At threshold 0.5
    it is ``max(p, 1 - p)``; on each side of the threshold it grows with the distance from it. Across the threshold
    it jumps, as it should: at threshold 0.3 a label predicted at 0.31 is right about 31 % of the time, one left out
    at 0.29 about 71 %, while ``max(p, 1 - p)`` ranked them alike.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    return np.where(probabilities >= threshold, probabilities, 1.0 - probabilities)


def write_calibration(run_dir: Path, calibration: dict[str, Any], source: str) -> None:
    """Store the temperature (and a top-label map) where ``load_run`` reads them, atomically.

    A half-written file never replaces a good one; the map is written only when it is the applied calibrator.
    """
    from nlp_transfer.inference import CALIBRATION_FILE

    stored: dict[str, Any] = {"temperature": calibration["temperature"], "fitted_on": source}
    stored["calibrator"] = calibration.get("calibrator", "temperature")
    if "top_label_map" in calibration:
        stored["top_label_map"] = calibration["top_label_map"]
    write_text_atomic(run_dir / CALIBRATION_FILE, json.dumps(stored, indent=2) + "\n")
