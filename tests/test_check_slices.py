"""Slices, gates on the new keys, and the whole check on a tiny trained run through the CLI."""

import csv
import json

import numpy as np
import pytest

from nlp_transfer.check.gates import higher_is_better, known_keys, missed_gates, parse_gates
from nlp_transfer.check.slices import length_buckets, slice_report
from nlp_transfer.config import load_config
from nlp_transfer.errors import UserError
from nlp_transfer.pipeline import run_training
from tests.conftest import synthetic_sentiment, tiny_overrides, write_csv
from tests.test_cli import cli_in_process


def test_length_buckets_cut_at_quartiles_of_word_counts():
    texts = [" ".join(["w"] * n) for n in (1, 2, 3, 4, 5, 6, 7, 8, 20, 40)]
    buckets = length_buckets(texts)
    assert buckets[0] == buckets[1] and buckets[-1] != buckets[0]
    assert buckets[-1].endswith("-40 words") and len(set(buckets)) == 4
    assert length_buckets([]) == []


def test_the_worst_slice_is_named_and_small_slices_are_not_ranked():
    correct = np.array([True] * 18 + [False] * 2 + [True, False, False, False] * 5 + [False] * 3)
    source = ["news"] * 20 + ["forum"] * 20 + ["chat"] * 3
    report = slice_report(correct, {"column:source": source}, min_rows=10)
    by = report["by"]["column:source"]
    assert by["news"] == {"count": 20, "accuracy": 0.9} and by["forum"]["accuracy"] == 0.25 and by["chat"]["count"] == 3
    worst = report["worst"]
    assert (worst["slice"], worst["slicing"], worst["count"]) == ("forum", "column:source", 20)  # chat is worse, but 3 rows
    assert worst["gap"] == pytest.approx(0.25 - report["accuracy"])
    assert slice_report(correct[:5], {"label": ["a"] * 5})["worst"] is None


def test_gate_directions_and_lookup():
    assert not higher_is_better("behaviour.negation.failure_rate") and not higher_is_better("bias.pronouns.groups.she.gap")
    assert not higher_is_better("calibration.ece_after_temperature") and higher_is_better("slices.worst.accuracy")
    keys = known_keys({"negation": "label"}, {"pronouns": ["she", "he"]})
    gates = parse_gates(
        ["behaviour.negation.failure_rate=0.2", "bias.pronouns.groups.she.gap=0.05", "slices.worst.accuracy=0.8"], keys
    )
    report = {
        "behaviour": {"negation": {"failure_rate": 0.3}},
        "bias": {"pronouns": {"groups": {"she": {"gap": -0.07}}}},
        "slices": {"worst": {"accuracy": 0.85}},
    }
    missed = missed_gates(report, gates)
    assert missed == [
        "behaviour.negation.failure_rate = 0.3000 (above 0.2)",
        "bias.pronouns.groups.she.gap = 0.0700 (above 0.05)",
    ]
    report["behaviour"]["negation"]["failure_rate"] = None  # skipped: the gate cannot pass
    assert "behaviour.negation.failure_rate not measured" in missed_gates(report, gates)
    report["behaviour"]["negation"]["skipped"] = "label 'neutral' is not one of the run's labels (neg, pos)"
    assert "behaviour.negation.failure_rate not measured (skipped: label 'neutral' is not one" in missed_gates(report, gates)[0]
    with pytest.raises(UserError, match=r"behaviour\.negation\.failure_rate") as caught:
        parse_gates(["behaviour.negaton.failure_rate=0.2"], keys)
    assert "\n" not in str(caught.value)
    with pytest.raises(UserError, match="only with --drift FILE"):  # a drift gate without --drift says what is missing
        parse_gates(["drift.proxy_a_distance=1.5"], keys)
    assert parse_gates(["drift.proxy_a_distance=1.5"], known_keys({}, {}, drift=True)) == {"drift.proxy_a_distance": 1.5}
    # a bound outside the figure's range can never fail (nan, inf, 5) or never pass (-1, 1.5): refused up front
    for bad in (
        "calibration.ece=nan",
        "calibration.ece=inf",
        "slices.worst.accuracy=1.5",
        "calibration.ece=-1",
        "calibration.brier=2.5",
    ):
        with pytest.raises(UserError, match="lies between 0 and"):
            parse_gates([bad], keys)
    assert parse_gates(["calibration.brier=1.5"], keys) == {"calibration.brier": 1.5}


def test_a_bad_gate_lists_only_the_keys_this_check_has():
    """A NER check (no classification figures, no bias dimensions) offers behaviour keys alone, with no empty entry."""
    ner = known_keys({"names": "entity_recall"}, {}, classification=False)
    with pytest.raises(UserError) as caught:
        parse_gates(["bias.names_gender.max_flip_rate=0.1"], ner)
    listed = str(caught.value).split("KEY one of ", 1)[1]
    assert listed.startswith("behaviour.TEST.failure_rate") and "bias." not in listed, listed
    with pytest.raises(UserError, match=r"KEY one of calibration\.ece,"):
        parse_gates(["nothing=1"], known_keys({}, {}))
    with pytest.raises(UserError, match=r"bias\.DIMENSION\.max_flip_rate"):
        parse_gates(["nothing=1"], known_keys({}, {"pronouns": ["she", "he"]}))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_model_dir):
    """A tiny sentiment run whose test file has a 'source' column."""
    base = tmp_path_factory.mktemp("check-slices")
    train = write_csv(base / "train.csv", synthetic_sentiment(300, 1))
    validation = write_csv(base / "validation.csv", synthetic_sentiment(80, 2))
    test = base / "test.csv"
    with test.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label", "source"])
        for i, (text, label) in enumerate(synthetic_sentiment(80, 3)):
            writer.writerow([text, label, "forum" if i % 4 == 0 else "shop"])
    out = base / "run"
    values = {
        "data.train_file": train,
        "data.validation_file": validation,
        "data.test_file": test,
        "training.learning_rate": 5e-3,
    }
    run_training(load_config(None, tiny_overrides(tiny_model_dir, out, **values)))
    return out, test


def test_the_whole_check_through_the_cli(tiny_run, capsys):
    run_dir, _ = tiny_run
    code, out, err = cli_in_process(
        capsys,
        "check",
        run_dir,
        "--slice-column",
        "source",
        "--fail-under",
        "calibration.ece=1",
        "behaviour.negation.failure_rate=1",
    )
    assert code == 0, err
    assert "behaviour failure rates: " in out and "negation" in out and "worst slice:" in out
    report = json.loads((run_dir / "check" / "check.json").read_text())
    assert 0 <= report["calibration"]["ece"] <= 1  # the existing keys stay
    assert report["behaviour"]["negation"]["cases"] > 50 and 0 <= report["behaviour"]["negation"]["failure_rate"] <= 1
    assert report["behaviour"]["typo_invariance"]["suite"] == "any"
    female = report["bias"]["names_gender"]["groups"]["female"]
    assert female["gap_ci"][0] <= female["gap"] <= female["gap_ci"][1]
    assert report["bias"]["names_gender"]["score_label"] == "positive"
    by = report["slices"]["by"]
    assert set(by) == {"length", "label", "column:source"} and by["column:source"]["forum"]["count"] == 20
    assert report["slices"]["worst"]["accuracy"] == min(
        row["accuracy"] for table in by.values() for row in table.values() if row["count"] >= 10
    )
    assert report["gates"] == {"bounds": {"calibration.ece": 1.0, "behaviour.negation.failure_rate": 1.0}, "missed": []}
    markdown = (run_dir / "check" / "report.md").read_text()
    for heading in (
        "## Behavioural tests",
        "## Bias (counterfactual swaps)",
        "## Slices",
        "Worst slice:",
        "expected calibration error",
    ):
        assert heading in markdown
    from nlp_transfer.hub import build_model_card

    card = str(build_model_card(run_dir, repo_id="me/model"))
    limits = card[card.index("## Bias, risks and limitations") :]
    negation = report["behaviour"]["negation"]["failure_rate"]
    assert "Behavioural tests (`nlp-transfer check`, share of templated cases failed): typo_invariance" in limits
    assert f"negation {negation:.1%}" in limits and "Weakest slice:" in limits and "Bias" in limits
    assert "expected calibration error" in limits
    # a bound just below a measured figure misses: exit 1
    rate = report["bias"]["names_gender"]["max_abs_gap"]
    with pytest.raises(SystemExit) as stopped:
        cli_in_process(capsys, "check", run_dir, "--fail-under", f"bias.names_gender.max_abs_gap={rate / 2}")
    err = capsys.readouterr().err
    assert stopped.value.code == 1 and "check failed: bias.names_gender.max_abs_gap" in err and "above" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--slice-column", "dialect"], "--slice-column dialect:"),
        (["--fail-under", "behaviour.negashun.failure_rate=0.2"], "--fail-under behaviour.negashun.failure_rate=0.2:"),
        (["--suite", "SUITE:tests: [{name: t, kind: label, label: positive, cases: ['{x']}]"], "malformed template"),
        (
            ["--suite", "SUITE:tests: [{name: t, kind: label, label: positive, cases: ['{who} rocks']}]"],
            "unknown placeholder {who}",
        ),
        (["--suite", "no_such_suite"], "no shipped suite of that name"),
        (["--suite", "suites/no_such_suite.yaml"], "shipped: any, bias, ner, sentiment."),
        (["--suite", "SUITE:name: s\ntests: [\n  - bad\n"], "suite.yaml:3:3: not valid YAML (expected the node content"),
        (
            ["--suite", "SUITE:tests: [{name: neg.v2, kind: label, label: negative, cases: ['awful']}]"],
            "suite.yaml: test 'neg.v2': a test name cannot hold a dot (gate keys split on dots); rename it, e.g. 'neg_v2'.",
        ),
    ],
)
def test_bad_input_is_a_one_line_error_with_exit_2(tiny_run, capsys, tmp_path, args, message):
    if args[-1].startswith("SUITE:"):
        path = tmp_path / "suite.yaml"
        path.write_text(args[-1].removeprefix("SUITE:"), encoding="utf-8")
        args = [args[0], str(path)]
    code, _, err = cli_in_process(capsys, "check", tiny_run[0], *args)
    assert code == 2 and message in err and err.count("\n") == 1, err
