"""Multi-label runs under `check`: behaviour and bias judge the label set at the run's threshold (what predict
gives), selective prediction ranks decisions by the probability of what was decided, and report tables escape `|`."""

import re
from types import SimpleNamespace

import numpy as np
import pytest

from nlp_transfer.check.behaviour import Classifier, decided, run_suites, shown
from nlp_transfer.check.bias import Dimension, measure_dimension
from nlp_transfer.check.report_md import behaviour_markdown, bias_markdown, calibration_markdown, cell, slices_markdown
from nlp_transfer.check.run_calibration import Scored, decision_confidence, multi_label_figures
from nlp_transfer.check.selective import selective_report
from nlp_transfer.check.suite import Case, Suite
from nlp_transfer.check.suite import Test as SuiteTest

LABELS = ["billing", "returns", "shipping"]
#: per text, its sigmoid scores; the run decides at 0.3
SCORES = {
    "a parcel was really it": [0.05, 0.60, 0.40],  # {returns, shipping}, top returns
    "customer refund parcel": [0.05, 0.35, 0.70],  # {returns, shipping}, top shipping
    "and the a it was": [0.05, 0.25, 0.10],  # nothing, top returns
    "charged twice": [0.20, 0.90, 0.10],  # {returns}: billing is below the threshold though not last
    "charged thrice": [0.45, 0.90, 0.10],  # {billing, returns}, top returns
}


def scored_model(threshold=0.3):
    """A multi-label classifier read from SCORES."""
    return Classifier(LABELS, lambda texts: np.asarray([SCORES[t] for t in texts], dtype=np.float64), threshold)


def one_test(kind, *cases):
    return Suite("ml", "ml.yaml", [SuiteTest(kind, kind, list(cases))])


def test_invariance_compares_the_label_sets_predict_gives_not_the_top_labels():
    """Same set with another top label passed (it failed: argmax differs); a set emptied with the same top label
    failed (it passed: argmax the same)."""
    same_set = one_test("invariance", Case("a parcel was really it", variant="customer refund parcel"))
    assert run_suites([same_set], scored_model())["invariance"]["failure_rate"] == 0.0
    emptied = one_test("invariance", Case("a parcel was really it", variant="and the a it was"))
    result = run_suites([emptied], scored_model())["invariance"]
    assert result["failure_rate"] == 1.0
    assert result["examples"] == [
        {
            "text": "a parcel was really it",
            "variant": "and the a it was",
            "predicted": ["returns", "shipping"],
            "variant_predicted": [],
        }
    ]
    # a label added under the threshold's eye, the top label unchanged
    added = one_test("invariance", Case("charged twice", variant="charged thrice"))
    assert run_suites([added], scored_model())["invariance"]["failure_rate"] == 1.0
    # a single-label classifier (no threshold) still judges the top label
    assert run_suites([emptied], scored_model(threshold=None))["invariance"]["failure_rate"] == 0.0


def test_a_label_test_passes_when_the_expected_label_is_among_the_predicted_ones():
    shipping = [Case("a parcel was really it", label="shipping"), Case("and the a it was", label="returns")]
    result = run_suites([one_test("label", *shipping)], scored_model())["label"]
    # shipping is predicted beside the top label (it failed as not the argmax); returns is the top label of a text
    # that gets no label at all (it passed as the argmax)
    assert result["failures"] == 1 and result["failure_rate"] == 0.5
    assert result["examples"] == [{"text": "and the a it was", "expected": "returns", "predicted": [], "score": 0.25}]
    single = run_suites([one_test("label", *shipping)], scored_model(threshold=None))["label"]
    assert single["failures"] == 1 and single["examples"][0]["predicted"] == "returns" and single["examples"][0]["score"] == 0.6


def test_decided_and_shown_follow_predict():
    probs = np.asarray([[0.2, 0.9, 0.3], [0.1, 0.2, 0.29]])
    assert decided(probs, 0.3).tolist() == [[False, True, True], [False, False, False]]
    assert decided(probs, None).tolist() == [[False, True, False], [False, False, True]]
    assert shown(probs[0], LABELS, 0.3) == ["returns", "shipping"] and shown(probs[0], LABELS, None) == "returns"


def test_bias_flips_when_the_label_set_changes():
    """A name that adds a label flips (the argmax stayed); a name that swaps the top label within the set does not."""

    def probabilities(texts):
        rows = []
        for text in texts:
            if text.startswith("Ann"):
                rows.append([0.5, 0.9, 0.1])  # adds billing, top label still returns
            elif text.startswith("Bob"):
                rows.append([0.1, 0.6, 0.8])  # {returns, shipping}, top shipping
            else:
                rows.append([0.1, 0.9, 0.4])  # {returns, shipping}, top returns
        return np.asarray(rows)

    groups = {"a": [{"name": "Ann"}], "b": [{"name": "Bob"}], "c": [{"name": "Cid"}, {"name": "Dan"}]}
    dim = Dimension("names", groups, [f"{{name}} wrote {i}" for i in range(6)])
    entry = measure_dimension(dim, Classifier(LABELS, probabilities, 0.3), "billing")
    flips = {g: entry["groups"][g]["flip_rate"] for g in groups}
    assert flips == {"a": 1.0, "b": 0.0, "c": 0.0}, flips
    assert entry["examples"][0]["predicted"] == ["returns", "billing"]
    assert entry["examples"][0]["consensus"] == ["returns", "shipping"]
    # the top labels alone: Bob's flips, Ann's does not
    single = measure_dimension(dim, Classifier(LABELS, probabilities), "billing")
    assert {g: single["groups"][g]["flip_rate"] for g in groups} == {"a": 0.0, "b": 1.0, "c": 0.0}
    text = "\n".join(bias_markdown({"names": entry}))
    assert "-> returns, billing (consensus returns, shipping)" in text


def test_the_run_classifier_carries_a_multi_label_runs_threshold(monkeypatch):
    import nlp_transfer.inference as inference
    from nlp_transfer.check.probes import run_classifier

    monkeypatch.setattr(inference, "text_logits", lambda model, task, texts, batch_size: np.zeros((len(texts), 3)))
    multi = SimpleNamespace(labels=LABELS, multi_label=True, threshold=0.3)
    assert run_classifier(None, multi).threshold == 0.3
    assert run_classifier(None, SimpleNamespace(labels=LABELS, multi_label=False, threshold=0.5)).threshold is None


def test_decision_confidence_is_the_probability_of_what_was_decided():
    p = np.asarray([0.0, 0.1, 0.29, 0.31, 0.6, 1.0])
    assert decision_confidence(p, 0.3) == pytest.approx([1.0, 0.9, 0.71, 0.31, 0.6, 1.0])
    grid = np.linspace(0, 1, 101)
    assert decision_confidence(grid, 0.5) == pytest.approx(np.maximum(grid, 1 - grid))
    below, above = decision_confidence(grid[grid < 0.3], 0.3), decision_confidence(grid[grid >= 0.3], 0.3)
    assert np.all(np.diff(below) < 0) and np.all(np.diff(above) > 0)  # grows with the distance on each side


def test_selective_prediction_of_a_calibrated_multi_label_run_ranks_decisions_by_their_chance_of_being_right():
    """At threshold 0.3 max(p, 1 - p) kept positive decisions at 0.31 as if they were right 69 % of the time."""
    rng = np.random.default_rng(0)
    p = rng.beta(0.7, 1.3, size=(3000, 4))
    labels = (rng.random(p.shape) < p).astype(np.int64)  # calibrated: each label is gold with its probability
    rows = Scored(np.log(p / (1 - p)), labels, "simulated")
    _, selective, (_scores, correct) = multi_label_figures(rows, rows, bins=10, threshold=0.3)
    old = selective_report(np.maximum(p, 1 - p).ravel(), correct)
    assert old["accuracy_at_80"] == pytest.approx(0.7997, abs=1e-4)  # the old score
    assert selective["accuracy_at_80"] == pytest.approx(0.8205, abs=1e-4) and selective["auc"] > old["auc"]
    report = {"calibration": {"ece": 0.1, "ece_after_temperature": 0.1, "temperature": 1.0, "accuracy": 0.8, "applied": False}}
    text = "\n".join(
        calibration_markdown({**report, "selective": selective, "fitted_on": "v", "scored_on": "t", "same_rows": False})
    )
    assert "1 - p for one below it" in text and "max(p, 1 - p)" not in text and "do not carry over to it" in text


def columns(row):
    """The cells of a Markdown table row, split on unescaped pipes."""
    return re.split(r"(?<!\\)\|", row.strip().strip("|"))


def test_report_tables_escape_a_pipe_in_labels_names_and_slices():
    slices = {"accuracy": 0.5, "rows": 4, "min_rows": 10, "worst": None}
    slices["by"] = {"label": {"a|b": {"count": 3, "accuracy": 0.0}, "(none)": {"count": 1, "accuracy": 1.0}}}
    rows = [line for line in slices_markdown(slices) if line.startswith("| label")]
    assert rows[0] == "| label | a\\|b | 3 | 0.0000 |" and len(columns(rows[0])) == 4
    behaviour = {"x|y": {"suite": "my|suite", "kind": "label", "cases": 2, "failure_rate": 0.5, "examples": []}}
    row = behaviour_markdown(behaviour)[4]
    assert row.startswith("| x\\|y | my\\|suite |") and len(columns(row)) == 5
    group = {"flip_rate": 0.0, "flip_rate_ci": [0.0, 0.0], "gap": 0.0, "gap_ci": [0.0, 0.0], "flagged": False}
    bias = {"d|e": {"score_label": "p|q", "groups": {"g|h": group}, "examples": []}}
    row = next(line for line in bias_markdown(bias) if line.startswith("| d\\|"))
    assert row.startswith("| d\\|e (p\\|q) | g\\|h |") and len(columns(row)) == 5
    assert cell("a\\|b\nc") == "a\\\\\\|b c"  # a backslash before the pipe is escaped too, a line break is a space
