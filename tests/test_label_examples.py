"""data.label_examples: rows written from the label names join the training split only, recorded, refused where wrong."""

import re

import pytest

from nlp_transfer.config import DataConfig
from nlp_transfer.data import load_text_classification_data
from nlp_transfer.data.label_examples import label_example_rows, label_text
from nlp_transfer.errors import DataError
from tests.conftest import assert_train_refuses, data_file_settings, good_bad_rows, run_on_small_splits, write_csv


def test_a_label_is_written_as_its_description_or_its_name():
    descriptions = {"HUM": "human"}
    assert label_text("HUM", "This question is about {}.", descriptions) == "This question is about human."
    assert label_text("LOC", "This question is about {}.", descriptions) == "This question is about LOC."
    assert label_text("joy", "{} {}", {}) == "joy joy"  # every slot, and no str.format: other braces stay
    assert label_text("joy", "{joy}: {}", {}) == "{joy}: joy"


def test_rows_come_label_by_label_with_their_copies():
    rows = label_example_rows(
        ["neg", "pos"], lambda text, label: (text, label), copies=2, template="It is {}.", descriptions={}, multi_label=False
    )
    assert rows == [("It is neg.", "neg"), ("It is neg.", "neg"), ("It is pos.", "pos"), ("It is pos.", "pos")]
    tagged = label_example_rows(
        ["bad", "good"], lambda text, label: label, copies=1, template="{}", descriptions={}, multi_label=True
    )
    assert tagged == [["bad"], ["good"]]


@pytest.mark.parametrize("with_validation_file", [True, False])
def test_only_the_training_split_gains_the_rows_after_its_own(small_split_files, with_validation_file):
    files = data_file_settings(small_split_files, with_validation_file)
    plain = load_text_classification_data(DataConfig(**files), seed=3)
    named = load_text_classification_data(
        DataConfig(**files, label_examples=3, label_template="A {} review.", label_descriptions={"negative": "bad"}), seed=3
    )
    n = len(plain.splits["train"])
    train, plain_train = named.splits["train"].to_dict(), plain.splits["train"].to_dict()
    assert named.label_examples == 6 and plain.label_examples == 0
    assert train["text"][:n] == plain_train["text"] and train["label"][:n] == plain_train["label"]
    assert train["text"][n:] == ["A bad review."] * 3 + ["A positive review."] * 3
    assert train["label"][n:] == ["negative"] * 3 + ["positive"] * 3 and train["line"][n:] == [0] * 6
    for split in ("validation", "test"):
        assert named.splits[split].to_dict() == plain.splits[split].to_dict()
    assert named.sources["train"].endswith(" + 6 label-name rows (3 a label)")


def test_per_class_samples_the_real_rows_and_the_label_rows_come_on_top(small_split_files):
    files = {"train_file": str(small_split_files["train"]), "validation_file": str(small_split_files["validation"])}
    named = load_text_classification_data(DataConfig(**files, per_class=4, label_examples=2), seed=3)
    labels = named.splits["train"]["label"][:]
    assert len(labels) == 2 * 4 + 2 * 2 and labels.count("negative") == labels.count("positive") == 6
    assert named.splits["train"]["text"][-1] == "This sentence is positive."


def test_a_multilabel_row_carries_its_one_label(tmp_path):
    train = write_csv(tmp_path / "train.csv", good_bad_rows(60))
    data = load_text_classification_data(DataConfig(train_file=str(train), label_examples=1), multi_label=True, seed=0)
    assert data.splits["train"]["label"][-2:] == [["bad"], ["good"]]
    assert data.splits["train"]["text"][-2:] == ["This sentence is bad.", "This sentence is good."]


def test_a_description_of_no_label_is_refused_by_name(small_split_files):
    config = DataConfig(train_file=str(small_split_files["train"]), label_examples=1, label_descriptions={"neutral": "so-so"})
    with pytest.raises(DataError, match=re.escape("data.label_descriptions names 'neutral', which is not a label of this run (")):
        load_text_classification_data(config, seed=0)


def test_a_run_records_the_rows_it_trained_on(small_split_files, tiny_model_dir, tmp_path):
    result, saved = run_on_small_splits(tiny_model_dir, small_split_files, tmp_path / "run", **{"data.label_examples": 2})
    assert saved["label_examples"] == 4 and result.info["label_examples"] == 4
    assert saved["examples"] == {"train": 44, "validation": 20}


@pytest.mark.parametrize(
    ("overrides", "expect"),
    [
        (["task=ner", "data.label_examples=2"], "data.label_examples adds rows for classification and multilabel; remove it for task=ner"),
        (["data.label_examples=2", "data.label_template=About it"], "data.label_template must hold {} where the label's name goes, got 'About it'"),
        (["data.label_examples=2", "data.label_descriptions={positive: ' '}"], "data.label_descriptions gives 'positive' no words"),
        (["data.label_examples=-1"], "data.label_examples must be at least 0, got -1"),
        (["data.label_examples=1", "data.label_descriptions={neutral: so-so}"], "data.label_descriptions names 'neutral', which is not a label"),
    ],
)  # fmt: skip
def test_bad_label_example_settings_exit_2_with_one_line(overrides, expect, tmp_path, capsys, monkeypatch):
    assert_train_refuses(overrides, expect, tmp_path, capsys, monkeypatch)


def test_the_files_rows_alone_leave_out_what_loading_makes_up(small_split_files):
    config = DataConfig(**data_file_settings(small_split_files, True), augment=["word_swap"], label_examples=2)
    files_only = load_text_classification_data(config.without_made_rows(), seed=0)
    assert (
        files_only.splits["train"].to_dict()
        == load_text_classification_data(DataConfig(**data_file_settings(small_split_files, True)), seed=0)
        .splits["train"]
        .to_dict()
    )
    assert config.without_made_rows().train_file == config.train_file and config.label_examples == 2


def test_descriptions_keyed_as_the_file_writes_whole_number_labels_still_apply(tmp_path):
    """Labels "1.0"/"0.0" now read as "1"/"0": descriptions keyed "1.0" were refused (regression, same day)."""
    from nlp_transfer.config import DataConfig
    from nlp_transfer.data import load_text_classification_data

    train = tmp_path / "train.csv"
    train.write_text("text,label\ngood,1.0\nbad,0.0\nfine,1.0\nawful,0.0\n", encoding="utf-8")
    config = DataConfig(
        train_file=str(train),
        validation_file=str(train),
        label_examples=1,
        label_descriptions={"1.0": "positive", "0.0": "negative"},
    )
    data = load_text_classification_data(config)
    made = data.splits["train"]["text"][-2:]
    assert data.label_examples == 2 and any("positive" in text for text in made) and any("negative" in text for text in made)
