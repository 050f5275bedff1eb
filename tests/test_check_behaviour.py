"""Behavioural suites: loading, the label mapping, and tests that fail a model built to fail them."""

import re

import numpy as np
import pytest

from nlp_transfer.check.behaviour import Classifier, Tagger, fill_with_span, run_suites
from nlp_transfer.check.perturb import contraction, punctuation, typo, whitespace
from nlp_transfer.check.suite import load_suite, map_labels, placeholders
from nlp_transfer.errors import UserError

POSITIVE = {
    "great", "excellent", "wonderful", "fantastic", "brilliant", "lovely", "amazing", "superb", "good", "nice", "enjoyable",
    "pleasant", "decent", "helpful", "enjoy", "worth", "works", "loved", "joy", "patient", "best", "happily",
    "perfectly", "recommend", "thanks", "spotless",
}  # fmt: skip
NEGATIVE = {
    "terrible", "awful", "disappointing", "dreadful", "horrible", "bad", "boring", "useless", "rude", "regret", "worse",
    "filthy", "ignored", "waste", "broke", "cold", "overpriced", "late", "crushed", "shouted", "impatient",
}  # fmt: skip
NEGATORS = {"not", "never", "no", "nothing", "nobody", "cannot"}
SCALE = {"really": 2.0, "extremely": 2.0, "incredibly": 2.0, "absolutely": 2.0, "truly": 2.0, "remarkably": 2.0}
SCALE |= {"somewhat": 0.5, "fairly": 0.5, "slightly": 0.5, "little": 0.5, "of": 0.5, "mildly": 0.5}


def lexicon_score(text: str, handle_negation: bool = True) -> float:
    """A word-count sentiment score; a negator flips the polar words after it up to the next punctuation mark."""
    score, negate, scale = 0.0, False, 1.0
    for token in re.findall(r"[a-z']+|[.,;:!?]", text.lower()):
        if token in ".,;:!?":
            negate = False
        elif token in NEGATORS or token.endswith("n't"):
            negate = True
        elif token in SCALE:
            scale = SCALE[token]
        else:
            polarity = (token in POSITIVE) - (token in NEGATIVE)
            score += polarity * scale * (-1 if negate and handle_negation else 1)
            scale = 1.0 if polarity else scale
    return score


def lexicon_model(labels=("negative", "positive"), handle_negation=True, rigged_name=None) -> Classifier:
    """A sentiment classifier from a word list; ``rigged_name`` flips its label whenever that name appears."""

    def probabilities(texts):
        rows = []
        for text in texts:
            p = 1.0 / (1.0 + np.exp(-(2.0 * lexicon_score(text, handle_negation) + 0.1)))
            if rigged_name and re.search(rf"\b{rigged_name}\b", text):
                p = 1.0 - p
            rows.append([1.0 - p, p])
        return np.asarray(rows)

    return Classifier(list(labels), probabilities)


def test_a_model_that_ignores_negation_fails_the_negation_tests_and_one_that_handles_it_passes():
    suites = [load_suite("sentiment")]
    handles = run_suites(suites, lexicon_model())
    ignores = run_suites(suites, lexicon_model(handle_negation=False))
    for name in ("negation", "negated_negative"):
        assert handles[name]["failure_rate"] <= 0.05, handles[name]["examples"]
        assert ignores[name]["failure_rate"] >= 0.8, ignores[name]
        assert ignores[name]["examples"] and ignores[name]["cases"] >= 80
    example = ignores["negation"]["examples"][0]
    assert example["expected"] == "negative" and example["predicted"] == "positive"
    # the rest of the suite does not depend on negation handling: both pass the directional tests
    for name in ("intensifiers", "diminishers", "irrelevant_sentence"):
        assert handles[name]["failure_rate"] <= 0.05 and ignores[name]["failure_rate"] <= 0.05, (name, handles[name])


def test_directional_tests_fail_a_model_whose_intensifiers_point_the_wrong_way():
    upside_down = dict(SCALE)
    SCALE.update({k: 1 / v for k, v in SCALE.items()})  # intensifiers now weaken and diminishers strengthen
    try:
        results = run_suites([load_suite("sentiment")], lexicon_model())
    finally:
        SCALE.clear()
        SCALE.update(upside_down)
    assert results["intensifiers"]["failure_rate"] > 0.5 and results["diminishers"]["failure_rate"] > 0.5
    example = results["intensifiers"]["examples"][0]
    assert example["variant_score"] < example["score"] and example["expected"] == "up"


def test_invariance_tests_flag_a_model_that_reads_surface_form():
    fussy = Classifier(
        ["a", "b"], lambda texts: np.asarray([[0.9, 0.1] if "  " in t or "\n" in t else [0.2, 0.8] for t in texts])
    )
    results = run_suites([load_suite("any")], fussy)
    assert results["whitespace_invariance"]["failure_rate"] > 0.4  # the model changes its mind on doubled spaces
    assert results["typo_invariance"]["failure_rate"] == 0.0
    assert results["whitespace_invariance"]["examples"][0]["variant_predicted"] == "a"


@pytest.mark.parametrize(
    ("run_labels", "fits"),
    [
        (["negative", "positive"], True),
        (["NEG", "POS"], True),
        (["0", "1"], True),
        (["Positive", "Negative", "neutral"], True),
        (["joy", "sadness", "anger"], False),
        (["spam", "ham"], False),
    ],
)
def test_sentiment_labels_map_to_the_runs_labels_or_the_suite_is_skipped_with_a_note(run_labels, fits):
    suite = load_suite("sentiment")
    mapping = map_labels(suite.labels, run_labels)
    assert (mapping is not None) == fits
    n = len(run_labels)
    results = run_suites([suite], Classifier(run_labels, lambda texts: np.full((len(texts), n), 1.0 / n)))
    if fits:
        assert mapping["positive"].lower() in ("positive", "pos", "1")
        assert all(r["failure_rate"] is not None for r in results.values())
    else:
        assert all(r["failure_rate"] is None for r in results.values())
        assert "do not fit this suite" in results["negation"]["skipped"] and run_labels[0] in results["negation"]["skipped"]


def test_the_label_ids_follow_the_run_not_the_order_of_its_labels():
    lexicon = lexicon_model()
    reordered = Classifier(["1", "0"], lambda texts: lexicon.probabilities(texts)[:, ::-1])  # column 0 is "1", positive
    results = run_suites([load_suite("sentiment")], reordered)
    assert results["negation"]["failure_rate"] < 0.1  # the mapping used the names, not the columns' order


def test_a_run_whose_1_means_negative_skips_the_sentiment_suite():
    """Numbers match SST-2's convention (1 = positive); a dataset where 1 means negative ran the suite upside down."""
    reversed_run = lexicon_model(labels=("1", "0"))  # the model puts negative in the column named "1"
    results = run_suites([load_suite("sentiment")], reversed_run)
    assert all(r["failure_rate"] is None for r in results.values())
    assert "'1' seems to mean negative here" in results["negation"]["skipped"]
    assert all(r["failure_rate"] is not None for r in run_suites([load_suite("sentiment")], lexicon_model(("0", "1"))).values())
    named = lexicon_model(labels=("positive", "negative"))  # named labels are taken at their word, whatever they score
    assert all(r["failure_rate"] is not None for r in run_suites([load_suite("sentiment")], named).values())


def test_user_suites_from_yaml_and_jsonl(tmp_path):
    (tmp_path / "mine.yaml").write_text(
        "fill:\n  team: [Arsenal, Benfica, Celtic]\ntests:\n"
        "  - {name: wins, kind: label, label: positive, cases: ['{team} played brilliantly!', 'What a superb night for {team}.']}\n"
        "  - {name: losses, kind: label, label: negative, cases: ['{team} lost the derby.']}\n",
        encoding="utf-8",
    )
    (tmp_path / "mine.jsonl").write_text(
        '{"name": "shouting", "kind": "invariance", "cases": [{"template": "great film", "variant": "GREAT FILM"}]}\n',
        encoding="utf-8",
    )
    results = run_suites([load_suite(str(tmp_path / "mine.yaml")), load_suite(str(tmp_path / "mine.jsonl"))], lexicon_model())
    assert results["wins"]["cases"] == 6 and results["wins"]["failure_rate"] == 0.0
    assert results["losses"]["failure_rate"] == 1.0  # the lexicon knows no "lost"
    assert results["losses"]["examples"][0]["text"] == "Arsenal lost the derby."
    assert results["shouting"]["failure_rate"] == 0.0


@pytest.mark.parametrize(
    ("suite", "message"),
    [
        ("tests: [{name: t, kind: label, label: positive, cases: ['The {food was good']}]", "malformed template"),
        ("tests: [{name: t, kind: label, label: positive, cases: ['The {0} was good']}]", "malformed template"),
        ("tests: [{name: t, kind: label, label: positive, cases: ['The {food} was good']}]", "unknown placeholder {food}"),
        ("tests: [{name: t, kind: guess, cases: ['x']}]", "a test needs a 'name' and a 'kind'"),
        ("tests: [{name: t, kind: direction, cases: ['x']}]", "a direction case needs"),
        ("tests: [{name: t, kind: invariance, perturb: shout, cases: ['x']}]", "perturb 'shout' is not one of"),
        ("tests: [oops", "not valid"),
        ("just: text", "a suite is a mapping with a 'tests' list"),
        # a tolerance that is no number crashed (exit 1, read as a missed gate); a negative one failed unmoved cases
        ("tests: [{name: t, kind: invariance, tolerance: abc, cases: [{template: x, variant: y}]}]", "tolerance 'abc' is not"),
        ("tests: [{name: t, kind: invariance, tolerance: -5, cases: [{template: x, variant: y}]}]", "tolerance -5 is not"),
        ("tests: []", "the 'tests' list is empty"),
        ("tests: [{name: t, kind: label, label: [positive], cases: ['x']}]", "a case expects one label"),
        # a dot in a name made its gate behaviour.NAME.failure_rate unreadable: "not measured", exit 1, always
        ("tests: [{name: neg.v2, kind: label, label: negative, cases: ['x']}]", "test 'neg.v2': a test name cannot hold a dot"),
    ],
)
def test_bad_suites_are_one_line_errors(tmp_path, suite, message):
    path = tmp_path / "bad.yaml"
    path.write_text(suite, encoding="utf-8")
    with pytest.raises(UserError, match=re.escape(message)) as caught:
        load_suite(str(path))
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


def test_a_bad_jsonl_line_is_named(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text('{"name": "a", "kind": "label", "label": 1, "cases": ["fine"]}\n\n{"name": "b", kind: label}\n')
    with pytest.raises(UserError, match=r"mine.jsonl:3: not valid JSON"):
        load_suite(str(path))
    path.write_text('{"name": "a", "kind": "label", "label": 1, "cases": ["fine"]}\n')
    results = run_suites([load_suite(str(path))], lexicon_model(labels=("0", "1")))
    assert results["a"]["failure_rate"] == 0.0  # label 1 (a number in JSON) is the run's label "1"


def test_placeholders_and_spans():
    assert placeholders("{Name} met {name} in {city}.") == ["Name", "name", "city"]
    text, span = fill_with_span("Flights from {city} were late; {Who} said so.", {"city": "Lagos", "who": "ana"}, "city")
    assert text == "Flights from Lagos were late; Ana said so." and text[span[0] : span[1]] == "Lagos"


def test_perturbations_change_the_text_in_the_way_they_name():
    import random

    rng = random.Random(0)
    assert sorted(typo("The service was wonderful", rng)) == sorted("The service was wonderful")
    assert typo("a b c", rng) == "a b c"  # no word long enough: unchanged, and the pair is dropped
    assert contraction("It isn't good", rng) == "It is not good"
    assert contraction("I do not like it", rng) == "I don't like it"
    assert punctuation("Great film.", rng) == "Great film"
    assert whitespace("two words", rng).split() == ["two", "words"]


def test_ner_recall_per_group_finds_a_tagger_blind_to_some_names():
    known = {"Emily", "James", "Sarah", "Thomas", "Laura", "Oliver"}  # this tagger only knows anglo first names

    def entities(texts):
        found = []
        for text in texts:
            found.append(
                [{"start": m.start(), "end": m.end(), "type": "PER"} for m in re.finditer(r"\b([A-Z][a-z]+) [A-Z][a-z]+\b", text)
                 if m.group(1) in known]
            )  # fmt: skip
        return found

    results = run_suites([load_suite("ner")], Tagger(entities))
    names = results["person_names_by_origin"]
    assert names["groups"]["anglo"]["recall"] == 1.0 and names["groups"]["african"]["recall"] == 0.0
    assert names["worst_group"] != "anglo" and names["recall_gap"] == 1.0
    assert names["failure_rate"] == pytest.approx(6 / 7)
    assert results["places_by_region"]["failure_rate"] == 1.0  # it never tags a place
    classifier_only = run_suites([load_suite("any")], Tagger(entities))
    assert "needs a classification run" in classifier_only["typo_invariance"]["skipped"]


def test_a_name_ending_in_punctuation_is_found_when_an_entity_covers_it_exactly():
    """'Washington D.C.' and 'Acme Inc.' were never counted as found: the entity was stripped of punctuation, the name
    was not."""
    from nlp_transfer.check.behaviour import _hit

    text = "She flew to Washington D.C. on Monday."
    start = text.index("Washington D.C.")
    span = (start, start + len("Washington D.C."))
    assert _hit([{"start": span[0], "end": span[1], "type": "LOC"}], text, span, {"LOC"})
    assert not _hit([{"start": span[0], "end": span[0] + 10, "type": "LOC"}], text, span, {"LOC"})  # a part: missed
