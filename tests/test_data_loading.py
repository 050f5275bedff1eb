"""The one path from a DataConfig to splits: document-level NER hold-out and counted tag repairs."""

import json
import logging
import random

import pytest

from nlp_transfer.config import DataConfig
from nlp_transfer.data.loading import hold_out, load_token_classification_data
from nlp_transfer.errors import DataError


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
    (tmp_path / "test.conll").write_text("the O\nUN I-ORG\n", encoding="utf-8")
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
