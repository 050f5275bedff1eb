"""The one path from a DataConfig to splits: document-level NER hold-out, counted tag repairs, few-shot sampling."""

import json
import logging
import random
from collections import Counter

import pytest

from nlp_transfer.config import DataConfig
from nlp_transfer.data.loading import hold_out
from nlp_transfer.data.tagged_rows import load_token_classification_data
from nlp_transfer.data.text_rows import load_text_classification_data
from nlp_transfer.errors import DataError
from tests.conftest import tiny_overrides, write_csv


def write_documents(path, sizes: list[int]) -> int:
    """A CoNLL file of documents with ``sizes`` sentences each; returns the number of sentences."""
    parts = []
    for doc, size in enumerate(sizes):
        parts.append("-DOCSTART- -X- O\n")
        parts.extend(f"Name{doc}x{i} B-PER\nspoke O\n" for i in range(size))
    path.write_text("\n".join(parts), encoding="utf-8")
    return sum(sizes)


def sentence_documents(data, split: str) -> set[str]:
    return {tokens[0].split("x")[0] for tokens in data.splits[split]["tokens"]}


def test_ner_hold_out_keeps_documents_whole(tmp_path):
    rng = random.Random(0)
    sizes = [rng.randint(1, 9) for _ in range(40)]
    total = write_documents(tmp_path / "train.conll", sizes)
    config = DataConfig(train_file=str(tmp_path / "train.conll"), validation_split=0.2)
    first = load_token_classification_data(config, seed=3)
    train, validation = sentence_documents(first, "train"), sentence_documents(first, "validation")
    assert train and validation and not train & validation
    assert set(first.splits["train"]["document"]).isdisjoint(first.splits["validation"]["document"])
    assert len(first.splits["train"]) + len(first.splits["validation"]) == total
    assert abs(len(first.splits["validation"]) / total - 0.2) < 0.05
    assert "whole documents" in first.sources["validation"]
    again = load_token_classification_data(config, seed=3)
    other = load_token_classification_data(config, seed=4)
    assert list(again.splits["validation"]["tokens"]) == list(first.splits["validation"]["tokens"])
    assert sentence_documents(other, "validation") != validation


def test_json_document_field_groups_the_hold_out(tmp_path):
    lines = [{"tokens": [f"w{doc}", "x"], "tags": ["B-LOC", "O"], "document": f"d{doc}"} for doc in range(10) for _ in range(3)]
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    data = load_token_classification_data(DataConfig(train_file=str(tmp_path / "t.jsonl"), validation_split=0.3), seed=1)
    held = {tokens[0] for tokens in data.splits["validation"]["tokens"]}
    assert len(data.splits["validation"]) == 9 and len(held) == 3
    assert held.isdisjoint(tokens[0] for tokens in data.splits["train"]["tokens"])


def test_one_document_falls_back_to_a_sentence_split():
    rows = list(range(20))
    train, validation = hold_out(rows, 0.25, seed=0, groups=[7] * 20)
    assert len(validation) == 5 and sorted(train + validation) == rows
    assert train == sorted(train) and validation == sorted(validation)  # file order kept
    assert hold_out(rows, 0.25, seed=0, groups=None) == (train, validation)


def test_group_hold_out_leaves_a_document_for_training():
    train, validation = hold_out(list(range(5)), 0.9, seed=0, groups=[0, 0, 0, 0, 1])
    assert train and validation


STRAYS = "John B-PER\nSmith I-PER\nmet O\nMary I-PER\nin O\nParis I-LOC\n\nRome B-LOC\nBerlin I-ORG\n\nOslo B-LOC\nis O\n"


def test_repaired_gold_tags_are_counted_per_split_and_warned_once_per_file(tmp_path, caplog):
    (tmp_path / "train.conll").write_text(STRAYS, encoding="utf-8")
    # a B- after O makes it an IOB2 file with a stray I- (a file of I- tags alone is IOB1, where that is no repair)
    (tmp_path / "test.conll").write_text("the O\nUN I-ORG\n\nsaw O\nAnna B-PER\n", encoding="utf-8")
    (tmp_path / "valid.conll").write_text("Anna B-PER\nKarenina I-PER\n", encoding="utf-8")
    config = DataConfig(
        train_file=str(tmp_path / "train.conll"),
        validation_file=str(tmp_path / "valid.conll"),
        test_file=str(tmp_path / "test.conll"),
    )
    with caplog.at_level(logging.WARNING, logger="nlp_transfer.data.conll"):
        data = load_token_classification_data(config)
    assert data.repaired_tags == {"train": 3, "validation": 0, "test": 1}
    assert data.splits["train"][0]["tags"] == ["B-PER", "I-PER", "O", "B-PER", "O", "B-LOC"]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2
    assert warnings[0].startswith(f"{tmp_path / 'train.conll'}: 3 I- tags that began an entity were read as B-")
    assert warnings[1].startswith(f"{tmp_path / 'test.conll'}: 1 I- tags")


def test_repaired_counts_follow_the_held_out_sentences(tmp_path):
    (tmp_path / "train.conll").write_text(STRAYS, encoding="utf-8")
    data = load_token_classification_data(DataConfig(train_file=str(tmp_path / "train.conll"), validation_split=0.34), seed=0)
    assert sum(data.repaired_tags.values()) == 3 and set(data.repaired_tags) == {"train", "validation"}


def test_hold_out_of_one_row_is_refused():
    with pytest.raises(DataError, match="fewer than 2 rows"):
        hold_out([1], 0.5, seed=0)


# ----------------------------------------------------------------------------- few-shot sampling (data.per_class)

SENTIMENT_CONFIG = "recipes/configs/sentiment/minilm_full.yaml"


def write_labelled(path, labels: list[str]):
    """A CSV whose row i reads ``row i`` and carries ``labels[i]``."""
    write_csv(path, [(f"row {i}", label) for i, label in enumerate(labels)])
    return path


def shuffled_labels(counts: dict[str, int], seed: int = 0) -> list[str]:
    labels = [name for name, count in counts.items() for _ in range(count)]
    random.Random(seed).shuffle(labels)
    return labels


def expected_sample(texts: list[str], labels: list[str], per_class: int, seed: int) -> list[str]:
    """The protocol written out: per class in sorted order, Random(seed).sample of its rows in file order."""
    kept: list[int] = []
    for name in sorted(set(labels)):
        kept += random.Random(seed).sample([i for i, label in enumerate(labels) if label == name], per_class)
    return [texts[i] for i in sorted(kept)]


def test_per_class_keeps_a_seeded_sample_of_each_class_in_file_order(tmp_path):
    labels = shuffled_labels({"pos": 25, "neg": 20, "neu": 9})
    train = write_labelled(tmp_path / "train.csv", labels)
    validation = write_labelled(tmp_path / "validation.csv", ["pos", "neg", "neu"] * 3)
    texts = [f"row {i}" for i in range(len(labels))]

    def load(per_class, sample_seed, seed=42):
        config = DataConfig(train_file=str(train), validation_file=str(validation), per_class=per_class, sample_seed=sample_seed)
        return load_text_classification_data(config, seed=seed)

    data = load(4, 3)
    assert list(data.splits["train"]["text"]) == expected_sample(texts, labels, 4, 3)
    assert sorted(Counter(data.splits["train"]["label"]).values()) == [4, 4, 4]
    assert data.sources["train"] == f"4 per class (sample seed 3) of {train}"
    assert len(data.splits["validation"]) == 9  # a validation file is never sampled
    assert list(load(4, 3, seed=7).splits["train"]["text"]) == list(data.splits["train"]["text"])  # not the run's seed
    assert list(load(4, 4).splits["train"]["text"]) != list(data.splits["train"]["text"])
    # a fresh generator per class: without the 'neg' rows, 'neu' and 'pos' keep exactly the same examples
    without_neg = [(text, label) for text, label in zip(texts, labels, strict=True) if label != "neg"]
    write_csv(train, without_neg)
    write_labelled(validation, ["pos", "neu"])
    assert list(load(4, 3).splits["train"]["text"]) == [t for t in data.splits["train"]["text"] if t in dict(without_neg)]


def test_per_class_samples_what_the_held_out_validation_leaves(tmp_path):
    labels = shuffled_labels({"pos": 30, "neg": 30}, seed=1)
    train = write_labelled(tmp_path / "train.csv", labels)
    full = load_text_classification_data(DataConfig(train_file=str(train), validation_split=0.2), seed=5)
    few = load_text_classification_data(DataConfig(train_file=str(train), validation_split=0.2, per_class=6), seed=5)
    assert list(few.splits["validation"]["text"]) == list(full.splits["validation"]["text"])  # validation never shrinks
    assert len(few.splits["validation"]) == 12
    rest_texts, rest_labels = list(full.splits["train"]["text"]), list(full.splits["train"]["label"])
    assert list(few.splits["train"]["text"]) == expected_sample(rest_texts, rest_labels, 6, 0)
    assert few.sources["train"] == f"6 per class (sample seed 0) of {train}"


def test_train_size_keeps_the_first_rows_the_held_out_validation_leaves(tmp_path):
    """compare --train-sizes N: N training rows and the same validation at every N (max_train_samples cut the rows
    before the hold-out, so size 20 trained on 18 rows and ranked on 2 that changed with the size)."""
    from nlp_transfer.errors import DataError

    train = write_labelled(tmp_path / "train.csv", shuffled_labels({"pos": 30, "neg": 30}, seed=1))
    full = load_text_classification_data(DataConfig(train_file=str(train), validation_split=0.2), seed=5)
    for size in (5, 20):
        part = load_text_classification_data(DataConfig(train_file=str(train), validation_split=0.2, train_size=size), seed=5)
        assert list(part.splits["validation"]["text"]) == list(full.splits["validation"]["text"])
        assert list(part.splits["train"]["text"]) == list(full.splits["train"]["text"])[:size]
        assert part.sources["train"] == f"{train} (first {size:,} training rows)"
    with pytest.raises(DataError, match=r"data\.train_size=49: .* has 48 training rows once validation is held out"):
        load_text_classification_data(DataConfig(train_file=str(train), validation_split=0.2, train_size=49), seed=5)


def test_max_eval_samples_caps_a_held_out_validation_and_leaves_training_as_it_was(tmp_path):
    """data.max_eval_samples=5 without a validation file kept all 12 held-out rows; the docs promise the first 5."""
    train = write_labelled(tmp_path / "train.csv", shuffled_labels({"pos": 30, "neg": 30}, seed=1))
    full = load_text_classification_data(DataConfig(train_file=str(train), validation_split=0.2), seed=5)
    capped = load_text_classification_data(DataConfig(train_file=str(train), validation_split=0.2, max_eval_samples=5), seed=5)
    assert len(full.splits["validation"]) == 12
    assert list(capped.splits["validation"]["text"]) == list(full.splits["validation"]["text"])[:5]
    assert list(capped.splits["train"]["text"]) == list(full.splits["train"]["text"])  # the dropped rows stay out
    assert capped.sources["validation"].endswith("(first 5 rows)")


def test_multilabel_per_class_gives_every_label_at_least_that_many_rows(tmp_path):
    rng = random.Random(2)
    names = ["billing", "delivery", "refund", "account"]
    row_labels = [sorted(rng.sample(names, rng.choice([1, 1, 2, 3]))) for _ in range(80)]
    train = write_labelled(tmp_path / "train.csv", ["|".join(labels) for labels in row_labels])
    config = DataConfig(train_file=str(train), validation_file=str(train), per_class=5, sample_seed=11)
    data = load_text_classification_data(config, multi_label=True)
    kept: set[int] = set()
    for name in sorted(names):  # per label in sorted order, among the rows no earlier label kept
        candidates = [i for i, labels in enumerate(row_labels) if name in labels and i not in kept]
        kept |= set(random.Random(11).sample(candidates, min(5, len(candidates))))
    assert list(data.splits["train"]["text"]) == [f"row {i}" for i in sorted(kept)]
    counts = Counter(label for labels in data.splits["train"]["label"] for label in labels)
    assert set(counts) == set(names) and min(counts.values()) >= 5
    assert len(data.splits["train"]) <= 5 * len(names)
    assert data.sources["train"] == f"at least 5 per label (sample seed 11) of {train}"


@pytest.mark.parametrize(
    ("counts", "overrides", "expect"),
    [
        (
            {"pos": 12, "neg": 5},
            ["data.per_class=8"],
            "class 'neg' has 5 training rows, fewer than data.per_class=8; lower data.per_class or add examples",
        ),
        ({"pos": 12, "neg": 12, "neu": 1}, ["data.per_class=1"], "class 'neu' has 1 training row(s); data.per_class needs"),
        ({"pos": 12, "neg": 12}, ["data.per_class=0"], "data.per_class must be at least 1 (or null), got 0"),
        ({"pos": 12, "neg": 12}, ["data.per_class=4", "task=ner"], "data.per_class samples classification and multilabel"),
        (
            {"pos": 12, "neg": 12},
            ["data.per_class=4", "data.max_train_samples=20"],
            "data.per_class=4 and data.max_train_samples=20 both choose the training rows",
        ),
        (
            {"pos": 12, "neg": 12},
            ["data.per_class=4", "data.train_size=20"],
            "data.per_class=4 and data.train_size=20 both choose the training rows",
        ),
        ({"pos": 12, "neg": 12}, ["data.train_size=25"], "data.train_size=25: "),
    ],
)
def test_bad_per_class_is_one_message_and_exit_code_2(counts, overrides, expect, tmp_path, tiny_model_dir, capsys):
    from nlp_transfer.cli import main

    train = write_labelled(tmp_path / "train.csv", shuffled_labels(counts))
    out = tmp_path / "run"
    data = {"data.train_file": train, "data.validation_file": train, "data.test_file": "null"}
    code = main(["train", SENTIMENT_CONFIG, *tiny_overrides(tiny_model_dir, out, **data), *overrides])
    message = capsys.readouterr().err.strip()
    assert code == 2 and expect in message, message
    assert message.startswith("error: ") and "\n" not in message and "Traceback" not in message
    assert not out.exists()


def test_integer_labels_index_label_names_only_when_no_name_is_an_integer(tmp_path):
    """data.labels [negative, positive] reads SST-2's 0/1 as ids; star ratings [1..5] keep a stray 0 a label (it was
    read as id 0, "1"), and evaluate of a run trained on "1", "2", "10" refuses a "0" (it scored it as class "1")."""
    from nlp_transfer.data.labels import check_known_labels, map_integer_label_column
    from nlp_transfer.errors import DataError

    assert map_integer_label_column(["0", "1", "positive"], ["negative", "positive"]) == ["negative", "positive", "positive"]
    assert map_integer_label_column(["0", "5"], ["1", "2", "3", "4", "5"]) == ["0", "5"]
    with pytest.raises(DataError, match=r"e\.csv:1: label '0' is not one of the labels the run was trained on"):
        check_known_labels(map_integer_label_column(["0"], ["1", "2", "10"]), [1], ["1", "2", "10"], "e.csv", known_from="run")
    stars = write_labelled(tmp_path / "stars.csv", ["1", "2", "3", "4", "5", "0"])
    config = DataConfig(train_file=str(stars), validation_file=str(stars), labels=["1", "2", "3", "4", "5"])
    with pytest.raises(DataError, match=r"label '0' is not in data\.labels"):
        load_text_classification_data(config)


def test_every_class_keeps_a_training_row_and_a_one_class_training_set_is_refused(tmp_path):
    """A class of one row went to validation (the split cannot stratify it) and the classifier trained without it;
    data.labels skipped the two-class check, so one class of rows trained a classifier too."""
    from nlp_transfer.data.loading import hold_out
    from nlp_transfer.errors import DataError

    labels = ["a"] * 19 + ["b"]
    for seed in range(40):  # seeds whose unstratified split held the single "b" out kept it in training
        train, validation = hold_out(list(range(20)), 0.1, seed, labels)
        assert 19 in train and len(validation) >= 1
    skewed = write_labelled(tmp_path / "skew.csv", labels)
    data = load_text_classification_data(DataConfig(train_file=str(skewed), validation_split=0.1), seed=4)
    assert set(data.splits["train"]["label"]) == {"a", "b"}
    one = write_labelled(tmp_path / "one.csv", ["pos"] * 10)
    for given in (["pos"], ["neg", "pos"]):
        with pytest.raises(DataError, match=r"1 distinct label\(s\) \['pos'\] in the training rows; a classifier needs"):
            load_text_classification_data(DataConfig(train_file=str(one), validation_file=str(one), labels=given))


def test_a_multi_label_hold_out_keeps_a_training_row_of_every_label(tmp_path):
    """A label's only row went to the held-out validation split (multi-label skipped the keep-one rule): the run kept
    the label as an output trained on no positive row, and scored it in validation."""
    row_labels = ["a|b"] * 30 + ["rare"] + ["b"] * 29
    moved = 0
    for seed in range(30):
        train, validation = hold_out(list(range(60)), 0.3, seed, [labels.split("|") for labels in row_labels])
        assert 30 in train and validation, seed
        moved += len(validation) < 18  # the row chosen for validation went back to training
    assert moved, "no seed held the rare row out: the test checks nothing"
    ml = write_labelled(tmp_path / "ml.csv", row_labels)
    for seed in range(12):
        data = load_text_classification_data(DataConfig(train_file=str(ml), validation_split=0.3), multi_label=True, seed=seed)
        assert ["rare"] in list(data.splits["train"]["label"]), seed
    unique = write_labelled(tmp_path / "unique.csv", [f"common|tag{i}" for i in range(10)])
    with pytest.raises(DataError, match=r"each row it would hold out carries a label no other row has.*or more rows\."):
        load_text_classification_data(DataConfig(train_file=str(unique), validation_split=0.1), multi_label=True)


def test_texts_shared_with_training_and_labels_alike_but_for_case_are_warned_about(tmp_path, caplog):
    """Neither is an error, but neither was said: a test text also in training scores memory; 'Pos' and 'pos' are two
    classes. Clean data gets no warning."""
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    train.write_text("text,label\ngood film,pos\nawful,neg\nfine,Pos\ndull,neg\n", encoding="utf-8")
    test.write_text("text,label\ngood film,pos\nnew text,neg\nother,neg\nmore,pos\n", encoding="utf-8")
    config = DataConfig(train_file=str(train), validation_file=str(train), test_file=str(test))
    with caplog.at_level(logging.WARNING, logger="nlp_transfer.data.hygiene"):
        load_text_classification_data(config)
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings[0].startswith(f"{train}: the labels 'Pos', 'pos' differ only in case or spacing and train as 2")
    assert warnings[1].startswith(f"{train}: 4 of its 4 texts (100.0%) are also training texts")  # validation = train
    assert warnings[2].startswith(f"{test}: 1 of its 4 texts (25.0%) are also training texts ({train})")
    assert len(warnings) == 3
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="nlp_transfer.data.hygiene"):
        load_text_classification_data(config)  # read again (a self-training round, check after train): said once
    assert caplog.records == []
    clean = tmp_path / "clean.csv"
    clean.write_text("text,label\ngood film,pos\nawful,neg\nfine,pos\ndull,neg\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="nlp_transfer.data.hygiene"):
        load_text_classification_data(DataConfig(train_file=str(clean), test_file=str(test), validation_split=0.5))
    assert [r.getMessage()[:40] for r in caplog.records] == [f"{test}: 1 of its 4 texts"[:40]]
