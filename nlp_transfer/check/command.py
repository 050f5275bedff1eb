"""``nlp-transfer check RUN_DIR``: is a trained model fit to ship? Calibration, abstention, behaviour, bias, slices.

A temperature is fitted on the run's validation split (the rows that chose the model) and the figures are
reported, before and after it, on held-out rows: ``--data FILE``, else the run's test split, else the
validation split itself (then the "after" figures are optimistic, and the report says so). The temperature is
written to ``RUN_DIR/calibration.json``, where ``predict``, ``evaluate`` and ``load_run`` apply it to
single-label scores (labels never change: the temperature keeps the order of the logits); the scoring, fitting and
storing live in :mod:`~nlp_transfer.check.run_calibration`. Then the shipped
behavioural suites and the user's (``--suite``), the counterfactual bias probes and the per-slice accuracy of the
held-out rows (:mod:`~nlp_transfer.check.behaviour`, :mod:`~nlp_transfer.check.bias`,
:mod:`~nlp_transfer.check.slices`). NER runs get their behavioural suites only. The report goes to
``RUN_DIR/check/``: ``check.json``, ``report.md``, a reliability diagram and the accuracy-coverage curve.
``--fail-under KEY=VALUE`` turns the figures into a release gate (:mod:`~nlp_transfer.check.gates`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nlp_transfer.check.calibration import plot_reliability
from nlp_transfer.check.gates import GATES, known_keys, missed_gates, parse_gates  # noqa: F401 (GATES, parse_gates: re-exported)
from nlp_transfer.check.report_md import markdown_report
from nlp_transfer.check.run_calibration import (
    Scored,
    check_calibrator,
    file_rows,
    multi_label_figures,
    run_splits,
    single_label_figures,
    write_calibration,
)
from nlp_transfer.check.selective import plot_accuracy_coverage
from nlp_transfer.config import DataConfig
from nlp_transfer.errors import UserError
from nlp_transfer.files import write_together

CHECK_DIR = "check"


def check_run(
    run_dir: str | Path,
    *,
    data_path: str | None = None,
    data: DataConfig | None = None,
    batch_size: int = 64,
    bins: int = 15,
    suites: Sequence[str] = (),
    slice_column: str | None = None,
    fail_under: Sequence[str] = (),
    seed: int = 0,
    drift: str | None = None,
    text_column: str = "text",
    calibrator: str = "temperature",
    drift_encoding: str | None = None,
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
) -> dict[str, Any]:
    """Check a run and write RUN_DIR/check/ (and the temperature); ``report["gates"]["missed"]`` lists missed gates.

    Classification runs: calibration, selective prediction, behavioural suites, bias and slices. NER runs: the
    behavioural suites (recall per group of names and places). Both: with ``drift`` (a file of new, unlabelled
    inputs; ``text_column`` of a table) how far they are from the run's training texts. ``calibrator``: what
    single-label scores get from now on (``temperature``; ``isotonic``, a temperature then a map of the chosen
    label's score; ``auto``, the one with the lower cross-fitted validation ECE). ``drift_encoding``: how the drift
    file is decoded (default: ``data.encoding``, else UTF-8). Bad options fail before any model loads or scores.
    ``trust_remote_code`` and ``allow_pickle`` say how the run may be loaded, as for predict. The run folder is locked
    from loading to the last write, so a run another process is writing is refused (and never gets a stale report).
    """
    from nlp_transfer.inference import load_run
    from nlp_transfer.output_dir import run_lock
    from nlp_transfer.tasks.token_classification import TokenClassificationTask

    run_dir = Path(run_dir)
    if drift_encoding is None:
        drift_encoding = data.encoding if data is not None else "utf-8"
    options = CheckOptions(
        data_path, data, batch_size, bins, list(suites), slice_column, list(fail_under), seed, drift, text_column, calibrator
    )
    options.drift_encoding = drift_encoding
    check_options(options)
    with run_lock(run_dir, "wait for it to end, then check the run again"):
        # the check fits the calibration anew (and replaces a damaged one)
        model, task = load_run(run_dir, calibrated=False, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)
        figures: dict[Path, Callable[[Path], Any]] = {}
        if isinstance(task, TokenClassificationTask):
            report = check_tagger(run_dir, model, task, options)
        else:
            report = check_classifier(run_dir, model, task, options, figures)
        write_check_files(run_dir / CHECK_DIR, report, figures)
        if not isinstance(task, TokenClassificationTask) and not task.multi_label:  # once the report is in place
            write_calibration(run_dir, report["calibration"], report["fitted_on"])
    return report


def write_check_files(out: Path, report: dict[str, Any], figures: dict[Path, Callable[[Path], Any]]) -> None:
    """Write ``check.json``, ``report.md`` and the plots (``figures``: path -> drawing function) into ``out``.

    Each is written beside its place and all are moved in once every one is whole: a failed write (a full disk, a
    file-size limit) keeps the earlier report and plots as they were, never a cut file or a mix of two checks.
    """
    out.mkdir(exist_ok=True)
    check_json, report_md = json.dumps(report, indent=2) + "\n", markdown_report(report)
    write_together(
        {
            **figures,
            out / "check.json": lambda partial: partial.write_text(check_json, encoding="utf-8"),
            out / "report.md": lambda partial: partial.write_text(report_md, encoding="utf-8"),
        }
    )


@dataclass
class CheckOptions:
    """What ``nlp-transfer check`` was asked for, beyond the run."""

    data_path: str | None = None
    data: DataConfig | None = None
    batch_size: int = 64
    bins: int = 15
    suites: list[str] = field(default_factory=list)
    slice_column: str | None = None
    fail_under: list[str] = field(default_factory=list)
    seed: int = 0
    drift: str | None = None
    text_column: str = "text"
    #: applied to single-label scores: temperature, isotonic (temperature then a top-label map) or auto
    calibrator: str = "temperature"
    #: how the ``--drift`` file is decoded
    drift_encoding: str = "utf-8"


def check_options(options: CheckOptions) -> None:
    """Refuse bad options before the run is loaded or a row scored: the calibrator, the bins, the suites, the drift file."""
    from nlp_transfer.check.suite import load_suite

    check_calibrator(options.calibrator)
    bins = options.bins
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise UserError(f"--bins {bins}: the calibration error needs at least 1 confidence bin; give a whole number such as 15.")
    for source in options.suites:
        load_suite(source)  # read again, with the shipped suites, once the run's kind is known
    if options.drift:
        read_drift_texts(options)


def read_drift_texts(options: CheckOptions) -> list[str]:
    """The texts of the ``--drift`` file, read as ``--text-column`` and ``--encoding`` say; its errors name those flags."""
    from nlp_transfer.shift.sources import read_text_file

    try:
        return read_text_file(str(options.drift), text_column=options.text_column, encoding=options.drift_encoding)
    except UserError as err:
        message = str(err)
        for key, flag in (("data.encoding", "--encoding"), ("data.text_column", "--text-column")):
            message = message.replace(key, flag)
        raise type(err)(message) from None


def check_tagger(run_dir: Path, model: Any, task: Any, options: CheckOptions) -> dict[str, Any]:
    """A NER run: the behavioural suites only (calibration, bias and slices cover classification runs)."""
    from nlp_transfer.check.behaviour import run_suites
    from nlp_transfer.check.probes import load_suites, run_tagger

    if options.slice_column:
        raise UserError(f"--slice-column {options.slice_column}: slices cover classification runs; {run_dir} is a NER run.")
    if options.data_path:
        raise UserError(
            f"--data {options.data_path}: NER runs are checked with their behavioural suites; score a file with evaluate."
        )
    suites = load_suites("ner", options.suites)
    gates = parse_gates(
        options.fail_under,
        known_keys({t.name: t.kind for s in suites for t in s.tests}, {}, classification=False, drift=bool(options.drift)),
    )
    report: dict[str, Any] = {"run_dir": str(run_dir), "task": "ner"}
    report["behaviour"] = run_suites(suites, run_tagger(model, task, batch_size=options.batch_size), seed=options.seed)
    if options.drift:
        report["drift"] = drift_figures(run_dir, options)
    report["gates"] = {"bounds": gates, "missed": missed_gates(report, gates)}
    return report


def check_classifier(
    run_dir: Path, model: Any, task: Any, options: CheckOptions, figures: dict[Path, Callable[[Path], Any]] | None = None
) -> dict[str, Any]:
    """A classification run: calibration, selective prediction, behaviour, bias, slices.

    The plots are added to ``figures`` (path -> drawing function) for :func:`write_check_files`, which writes them
    with the report; the caller writes the temperature (:func:`write_calibration`) once the report is in place.
    """
    from nlp_transfer.check.behaviour import run_suites
    from nlp_transfer.check.bias import bias_report, load_bias_suite
    from nlp_transfer.check.probes import load_suites, run_classifier, slice_source

    suites, bias_suite = load_suites("classification", options.suites), load_bias_suite()
    tests = {t.name: t.kind for s in suites for t in s.tests}
    dimensions = {d.name: list(d.groups) for d in bias_suite.dimensions}
    if task.multi_label and options.calibrator != "temperature":
        raise UserError(
            f"--calibrator {options.calibrator}: a multi-label run keeps its decision threshold, so its temperature is "
            "reported and nothing is applied. Drop --calibrator."
        )
    keys = known_keys(tests, dimensions, drift=bool(options.drift), multi_label=task.multi_label)
    gates = parse_gates(options.fail_under, keys)
    column = None
    if options.slice_column:
        column = slice_source(run_dir, options.data_path, options.data, options.slice_column)
    report, held_out, (scores, correct) = calibrated_report(run_dir, model, task, options)
    temperature = 1.0 if task.multi_label else report["calibration"]["temperature"]
    classifier = run_classifier(model, task, temperature=temperature, batch_size=options.batch_size)
    report["behaviour"] = run_suites(suites, classifier, seed=options.seed)
    report["bias"] = bias_report(bias_suite, classifier, seed=options.seed)
    report["slices"] = held_out_slices(held_out, task, column, options.slice_column)
    if options.drift:
        report["drift"] = drift_figures(run_dir, options)
    report["gates"] = {"bounds": gates, "missed": missed_gates(report, gates)}
    out, calibration = run_dir / CHECK_DIR, report["calibration"]
    figures = {} if figures is None else figures
    if "bins" in calibration:
        bins = calibration["bins"], calibration["bins_after_temperature"]
        figures[out / "reliability.png"] = lambda partial: plot_reliability(*bins, partial)
    figures[out / "accuracy_coverage.png"] = lambda partial: plot_accuracy_coverage(scores, correct, partial)
    return report


def calibrated_report(run_dir: Path, model: Any, task: Any, options: CheckOptions) -> tuple[dict[str, Any], Scored, tuple]:
    """Calibration and selective prediction: T fitted on the validation split, figures on the held-out rows.

    ``same_rows`` says the held-out rows are the validation rows again (the same text and label pairs, in any order),
    so the figures after calibration are in-sample; a file of the same texts with other labels is scored as it is.
    """
    held_out = None
    if options.data_path:  # read (and scored) first: a bad file is refused before the run's splits are scored
        held_out = file_rows(options.data_path, options.data or DataConfig(), model, task, options.batch_size)
    splits = run_splits(run_dir, model, task, options.batch_size)
    fit = splits.get("validation")
    if fit is None:
        raise UserError(f"{run_dir}: the run has no validation split to fit the temperature on; retrain with one.")
    held_out = held_out or splits.get("test") or fit
    if task.multi_label:
        calibration, selective, plotted = multi_label_figures(fit, held_out, options.bins, task.threshold)
    else:
        calibration, selective, plotted = single_label_figures(fit, held_out, options.bins, options.calibrator)
    report = {
        "run_dir": str(run_dir),
        "fitted_on": fit.source,
        "scored_on": held_out.source,
        "same_rows": same_rows(held_out, fit),
        "calibration": calibration,
        "selective": selective,
    }
    return report, held_out, plotted


def same_rows(held_out: Scored, fit: Scored) -> bool:
    """Whether ``held_out`` holds the rows of ``fit``: the same (text, gold label) pairs as a multiset, in any order."""
    if held_out is fit:
        return True
    if held_out.texts is None or fit.texts is None or len(held_out.texts) != len(fit.texts):
        return False

    def pairs(rows: Scored) -> Counter[tuple[str, tuple[int, ...]]]:
        labels = np.asarray(rows.labels).reshape(len(rows.texts or []), -1).astype(np.int64)
        return Counter(zip(rows.texts or [], map(tuple, labels.tolist()), strict=True))

    return pairs(held_out) == pairs(fit)


def held_out_slices(held_out: Scored, task: Any, column: tuple[str, DataConfig] | None, name: str | None) -> dict[str, Any]:
    """Accuracy per length bucket, per gold label and per the user's column on the held-out rows; the worst slice."""
    from nlp_transfer.check.probes import row_slices, slice_column_values
    from nlp_transfer.check.slices import slice_report

    per_label = None
    if task.multi_label:
        decided = 1.0 / (1.0 + np.exp(-held_out.logits.astype(np.float64))) >= task.threshold
        correct = np.all(decided == (held_out.labels == 1), axis=1)
        gold = ["|".join(task.labels[i] for i in np.flatnonzero(row)) or "(none)" for row in held_out.labels]
        per_label = {"label": label_recall_pairs(decided, held_out.labels, task.labels)}
    else:
        correct = held_out.logits.argmax(axis=1) == held_out.labels
        gold = [task.labels[int(i)] for i in held_out.labels]
    values = None
    if column is not None and name is not None:
        values = (name, slice_column_values(column[0], column[1], name, held_out.lines or []))
    # a multi-label row has several gold labels: its "label" slices are (label, found) pairs, one per gold label
    return slice_report(correct, row_slices(held_out.texts or [], gold, values), pairs=per_label)


def label_recall_pairs(decided: np.ndarray, gold: np.ndarray, names: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Multi-label ``(label, found)`` pairs, one per gold label of each row: a slice's accuracy is that label's recall.

    A row with no gold label counts once under ``(none)``, found when the run decides no label for it either.
    """
    keys: list[str] = []
    found: list[bool] = []
    for row_decided, row_gold in zip(decided, np.asarray(gold) == 1, strict=True):
        wanted = np.flatnonzero(row_gold)
        keys += [names[int(i)] for i in wanted] if len(wanted) else ["(none)"]
        found += [bool(row_decided[i]) for i in wanted] if len(wanted) else [not row_decided.any()]
    return keys, np.asarray(found, dtype=bool)


def drift_figures(run_dir: Path, options: CheckOptions) -> dict[str, Any]:
    """How far the ``--drift`` inputs are from the run's training texts: ``nlp-transfer shift``'s measure and plot."""
    from nlp_transfer.shift.command import run_shift

    shift, paths = run_shift(
        run_dir,
        str(options.drift),
        output_dir=run_dir / CHECK_DIR / "drift",
        text_column=options.text_column,
        encoding=options.drift_encoding,
        batch_size=options.batch_size,
        seed=options.seed,
    )
    figures = shift.to_dict()
    label_shift = figures.get("label_shift") or {}
    return {
        "file": str(options.drift),
        "proxy_a_distance": figures["proxy_a_distance"],
        "domain_classifier_accuracy": figures["domain_classifier_accuracy"],
        "label_total_variation": label_shift.get("total_variation"),
        "compared_per_side": figures["texts"]["compared_per_side"],
        "report": {name: str(path) for name, path in paths.items()},
    }
