"""Counterfactual bias: a model rigged on one name is flagged, its control is not, and the intervals cover."""

import re

import numpy as np
import pytest

from nlp_transfer.check.behaviour import Classifier
from nlp_transfer.check.bias import Dimension, bias_report, bootstrap_interval, load_bias_suite, measure_dimension
from nlp_transfer.errors import UserError
from tests.test_check_behaviour import lexicon_model


def test_a_model_that_flips_on_one_name_is_flagged_and_its_control_is_not():
    suite = load_bias_suite()
    rigged = bias_report(suite, lexicon_model(rigged_name="Jamal"))
    control = bias_report(suite, lexicon_model())
    assert rigged["names_origin"]["flagged"] == ["african_american"]
    jamal = rigged["names_origin"]["groups"]["african_american"]
    assert jamal["flip_rate"] == pytest.approx(0.25)  # one name of four flips on every sentence
    assert jamal["flip_rate_ci"][0] > 0.05 and rigged["names_origin"]["score_label"] == "positive"
    # a flip lowers the positive score of praise and raises it on complaints: the mean gap stays small, the flips show it
    assert abs(jamal["gap"]) < 0.1
    assert "male" in rigged["names_gender"]["flagged"]
    assert any("Jamal" in e["text"] for e in rigged["names_origin"]["examples"])
    for dim in ("pronouns", "religion", "nationality"):  # no name in them: nothing to find
        assert rigged[dim]["flagged"] == [] and rigged[dim]["max_flip_rate"] == 0.0
    for dim, entry in control.items():
        assert entry["flagged"] == [] and entry["max_flip_rate"] == 0.0, dim
        assert entry["max_abs_gap"] == pytest.approx(0.0, abs=1e-12)
        assert all(g["gap_ci"][0] <= 0 <= g["gap_ci"][1] for g in entry["groups"].values())


def test_a_model_that_favours_a_pronoun_a_little_is_measured_not_flipped():
    base = lexicon_model()

    def probabilities(texts):
        probs = base.probabilities(texts)
        nudged = np.asarray([0.08 if re.search(r"\b(she|her)\b", t, re.IGNORECASE) else 0.0 for t in texts])
        positive = np.clip(probs[:, 1] + nudged, 0, 1)
        return np.stack([1 - positive, positive], axis=1)

    report = bias_report(load_bias_suite(), Classifier(["negative", "positive"], probabilities))
    she = report["pronouns"]["groups"]["she"]
    assert she["gap"] == pytest.approx(0.08, abs=0.02) and she["gap_ci"][0] > 0 and she["flagged"]
    assert report["names_gender"]["flagged"] == []


def test_without_a_positive_label_the_gap_is_measured_on_the_label_that_moves():
    rigged = lexicon_model(labels=("spam", "ham"), rigged_name="Omar")
    report = bias_report(load_bias_suite(), rigged)
    assert report["names_origin"]["score_label"] in ("spam", "ham")
    assert "arabic" in report["names_origin"]["flagged"]


def test_the_bootstrap_interval_covers_the_true_gap_in_most_simulated_repetitions():
    """200 simulated checks: sentences whose true gap for group a is 0.06, with noise per sentence and per text."""
    true_gap, covered = 0.06, 0
    dimension = Dimension(
        "sim", {"a": [{"name": n} for n in "ABCD"], "b": [{"name": n} for n in "EFGH"]}, [f"{{name}} case {i}" for i in range(20)]
    )
    for rep in range(200):
        rng = np.random.default_rng(rep)
        base = {f"case {i}": rng.uniform(0.2, 0.7) for i in range(20)}

        def probabilities(texts, rng=rng, base=base):
            p = np.asarray([base[t[2:]] + (true_gap if t[0] in "ABCD" else 0.0) + rng.normal(0, 0.08) for t in texts])
            return np.stack([1 - p, p], axis=1)

        entry = measure_dimension(dimension, Classifier(["neg", "pos"], probabilities), "pos", seed=rep)
        low, high = entry["groups"]["a"]["gap_ci"]
        covered += low <= true_gap <= high
    assert 176 <= covered <= 200, covered  # nominal 95 %: 190 expected


def test_bootstrap_interval_is_seeded_and_narrows_with_more_units():
    rng = np.random.default_rng(0)
    values = rng.normal(0.1, 0.05, 400)
    assert bootstrap_interval(values[:20], seed=3) == bootstrap_interval(values[:20], seed=3)
    small, large = bootstrap_interval(values[:20]), bootstrap_interval(values)
    assert small[0] < 0.1 < small[1] and large[1] - large[0] < (small[1] - small[0]) / 2


def test_a_bad_bias_suite_is_a_one_line_error(tmp_path):
    path = tmp_path / "bias.yaml"
    path.write_text("dimensions:\n  - {name: x, groups: {a: [Ann], b: [Bob]}, templates: ['{nam} came']}\n")
    with pytest.raises(UserError, match=r"unknown placeholder \{nam\}"):
        load_bias_suite(str(path))
    path.write_text("dimensions:\n  - {name: x, groups: {a: [Ann]}, templates: ['{name} came']}\n")
    with pytest.raises(UserError, match="at least two 'groups'"):
        load_bias_suite(str(path))


def test_the_card_states_flagged_groups_with_their_intervals():
    from nlp_transfer.check.report_md import bias_markdown, card_lines

    report = {"bias": bias_report(load_bias_suite(), lexicon_model(rigged_name="Jamal"))}
    lines = card_lines(report)
    assert any(line.startswith("- Bias (names_origin, african_american): label flips on 25.0%") for line in lines), lines
    assert "**yes**" in "\n".join(bias_markdown(report["bias"]))
    control = card_lines({"bias": bias_report(load_bias_suite(), lexicon_model())})
    assert control[0].startswith("- Bias: no group flagged by counterfactual swaps (names_gender, names_origin, pronouns")
