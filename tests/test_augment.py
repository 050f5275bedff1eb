"""data.augment: seeded augmenters, nearest neighbours in the embeddings, training rows only, recorded, refused where wrong."""

import random
from collections import Counter
from dataclasses import dataclass

import pytest
import torch
from safetensors.torch import save_file

from nlp_transfer.config import DataConfig
from nlp_transfer.data import augment, load_text_classification_data
from nlp_transfer.data.augment import (
    NeighbourIndex,
    augment_rows,
    input_embeddings,
    neighbour_tokens,
    vocabulary_words,
    word_dropout,
    word_swap,
)
from nlp_transfer.errors import UserError
from tests.conftest import assert_train_refuses, data_file_settings, run_on_small_splits


@dataclass
class Row:
    text: str
    label: object
    line: int


def sentences(n: int, seed: int = 0, length: int = 12) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(f"w{rng.randrange(50)}" for _ in range(length)) for _ in range(n)]


# ----------------------------------------------------------------------------- the word augmenters


def test_same_seed_same_texts_and_each_augmenter_has_its_own_stream():
    rows = [Row(text, "pos", i) for i, text in enumerate(sentences(30))]
    options = {"copies": 2, "rate": 0.2}
    first, added = augment_rows(rows, ["word_dropout", "word_swap"], seed=7, **options)
    again, _ = augment_rows(rows, ["word_dropout", "word_swap"], seed=7, **options)
    other, _ = augment_rows(rows, ["word_dropout", "word_swap"], seed=8, **options)
    swap_alone, _ = augment_rows(rows, ["word_swap"], seed=7, **options)
    assert [r.text for r in first] == [r.text for r in again]
    assert [r.text for r in first] != [r.text for r in other]
    assert [r.text for r in first[-60:]] == [r.text for r in swap_alone[30:]]  # word_dropout did not shift word_swap's draws
    assert added == {"word_dropout": 60, "word_swap": 60} and len(first) == 30 + 120
    assert first[:30] == rows  # the originals come first, unchanged


def test_labels_are_copied_and_the_source_line_kept():
    rows = [Row("a b c d", ["billing", "shipping"], 3)]
    out, _ = augment_rows(rows, ["word_swap"], copies=1, rate=0.5, seed=0)
    assert out[1].label == ["billing", "shipping"] and out[1].label is not rows[0].label and out[1].line == 3


def test_word_dropout_never_empties_a_text_and_removes_about_the_rate():
    rng = random.Random(0)
    texts = sentences(400, length=20)
    kept = [len(word_dropout(text, rng, rate=0.2).split()) for text in texts]
    assert 0.17 < 1 - sum(kept) / (20 * len(texts)) < 0.23
    assert all(len(word_dropout("one two three", rng, rate=0.99).split()) >= 1 for _ in range(200))
    assert word_dropout("alone", rng, rate=0.99) == "alone"


def test_word_swap_keeps_the_words_and_swaps_some():
    rng = random.Random(0)
    texts = sentences(100)
    swapped = [word_swap(text, rng, rate=0.1) for text in texts]
    assert all(Counter(a.split()) == Counter(b.split()) for a, b in zip(texts, swapped, strict=True))
    assert sum(a != b for a, b in zip(texts, swapped, strict=True)) > 80  # a swap of two equal words changes nothing
    assert word_swap("alone", rng, rate=0.5) == "alone"


# ----------------------------------------------------------------------------- nearest neighbours


VOCAB = ["[PAD]", "[CLS]", "good", "great", "Good", "bad", "##ly", ",", "fine", "a", "42", "movie"]
VECTORS = [
    [1, 0, 0],  # [PAD]: special
    [1, 0, 0],  # [CLS]: special
    [1, 0, 0],  # good
    [0.9, 0.1, 0],  # great: cosine 0.994 with good
    [1, 0.01, 0],  # Good: a case form of good, never its neighbour
    [0.5, 0.5, 0],  # bad: 0.707
    [1, 0, 0.001],  # ##ly: a word-inner piece
    [1, 0, 0],  # ,: punctuation
    [0.7, 0.2, 0.1],  # fine: 0.953
    [1, 0, 0],  # a: one letter
    [1, 0, 0],  # 42: no letters
    [0, 0, 1],  # movie: orthogonal
]


def hand_made_index(k: int = 3) -> NeighbourIndex:
    return NeighbourIndex(torch.tensor(VECTORS, dtype=torch.float32), VOCAB, k=k, special=["[PAD]", "[CLS]"])


def test_nearest_neighbours_of_known_vectors():
    index = hand_made_index()
    assert index.neighbours("good") == ["great", "fine", "bad"]
    assert index.neighbours("GOOD") == ["great", "fine", "bad"]  # read as its lowercase form
    assert index.neighbours("Good") == ["great", "fine", "bad"]  # a cased vocabulary word of its own
    assert index.neighbours("nonsense") == [] and index.neighbours(",") == [] and index.neighbours("ly") == []
    assert hand_made_index(k=2).neighbours("great") == ["Good", "good"]  # only the word's own case forms are left out
    assert set(index.words) == {"good", "great", "Good", "bad", "fine", "movie"}


def test_vocabulary_words_follow_the_word_marker_of_the_vocabulary():
    assert vocabulary_words(["▁good", "ly", "▁a", "▁fine"], set()) == ["good", None, None, "fine"]
    assert vocabulary_words(["good", "##ly", "[SEP]"], {"[SEP]"}) == ["good", None, None]


def test_neighbour_tokens_replaces_whole_words_keeping_case_and_punctuation(monkeypatch):
    monkeypatch.setattr(augment, "neighbour_index", lambda model: hand_made_index(k=1))
    rng = random.Random(0)
    assert neighbour_tokens("Good film, GOOD!", rng, rate=1.0, model="any") == "Great film, GREAT!"
    assert neighbour_tokens("(good) 42 ly", rng, rate=0.1, model="any") == "(great) 42 ly"
    assert neighbour_tokens("nothing known here", rng, rate=1.0, model="any") == "nothing known here"


def test_input_embeddings_read_alone_from_safetensors(tmp_path):
    matrix = torch.randn(12, 4)
    save_file({"bert.embeddings.position_embeddings.weight": torch.zeros(8, 4), "bert.embeddings.word_embeddings.weight": matrix},
              str(tmp_path / "model.safetensors"))  # fmt: skip
    assert torch.equal(input_embeddings(tmp_path), matrix)
    with pytest.raises(UserError, match="no safetensors file"):
        input_embeddings(tmp_path / "elsewhere")


# ----------------------------------------------------------------------------- loading and a run


@pytest.mark.parametrize("with_validation_file", [True, False])
def test_only_training_rows_grow_by_copies_times_rows(small_split_files, with_validation_file):
    files = data_file_settings(small_split_files, with_validation_file)
    plain = load_text_classification_data(DataConfig(**files), seed=3)
    augmented = load_text_classification_data(
        DataConfig(**files, augment=["word_dropout", "word_swap"], augment_copies=3, augment_rate=0.2), seed=3
    )
    n = len(plain.splits["train"])
    assert len(augmented.splits["train"]) == n + 2 * 3 * n
    assert augmented.augmented == {"word_dropout": 3 * n, "word_swap": 3 * n} and plain.augmented == {}
    train, plain_train = augmented.splits["train"].to_dict(), plain.splits["train"].to_dict()
    assert train["text"][:n] == plain_train["text"] and train["line"][n:] == plain_train["line"] * 6
    assert train["label"][n:] == plain_train["label"] * 6
    for split in ("validation", "test"):
        assert augmented.splits[split].to_dict() == plain.splits[split].to_dict()
    assert augmented.sources["train"].endswith(f" + {6 * n} augmented (word_dropout, word_swap x3)")


def test_a_run_records_the_added_rows(small_split_files, tiny_model_dir, tmp_path):
    extra = {"data.augment": "[word_dropout,neighbour_tokens]", "data.augment_copies": 2}
    result, saved = run_on_small_splits(tiny_model_dir, small_split_files, tmp_path / "run", **extra)
    assert saved["augmented_examples"] == {"word_dropout": 80, "neighbour_tokens": 80}
    assert saved["examples"] == {"train": 200, "validation": 20}
    assert result.info["augmented_examples"] == saved["augmented_examples"]


@pytest.mark.parametrize(
    ("overrides", "expect"),
    [
        (["data.augment=[word_drop]"], "data.augment: 'word_drop' is not one of word_dropout, word_swap, neighbour_tokens. Did you mean 'word_dropout'?"),
        (["task=ner", "data.augment=[word_swap]"], "data.augment alters texts for classification and multilabel; remove it for task=ner"),
        (["data.augment=[word_swap,word_swap]"], "data.augment lists 'word_swap' twice"),
        (["data.augment_copies=0"], "data.augment_copies must be at least 1, got 0"),
        (["data.augment_rate=0"], "data.augment_rate must be in (0, 1], got 0.0"),
    ],
)  # fmt: skip
def test_bad_augment_settings_exit_2_with_one_line(overrides, expect, tmp_path, capsys, monkeypatch):
    assert_train_refuses(overrides, expect, tmp_path, capsys, monkeypatch)


def test_neighbour_tokens_reads_a_model_folder_written_again_since_the_last_load(small_split_files, tiny_model_dir, tmp_path):
    """Planted fault: the index was cached by the folder's path, so a notebook that adapted a model into the same
    folder again kept augmenting with the old embeddings."""
    import shutil

    from safetensors.torch import load_file

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    config = DataConfig(**data_file_settings(small_split_files, True), augment=["neighbour_tokens"], augment_rate=0.5)
    load_text_classification_data(config, model=str(folder))
    before = augment.neighbour_index(str(folder)).neighbours("good")
    weights = load_file(str(folder / "model.safetensors"))
    key = next(k for k in weights if k.endswith("word_embeddings.weight"))
    weights[key] = torch.randn(weights[key].shape, generator=torch.Generator().manual_seed(1))
    save_file(weights, str(folder / "model.safetensors"))
    load_text_classification_data(config, model=str(folder))
    after = augment.neighbour_index(str(folder)).neighbours("good")
    assert after != before and after == augment.neighbour_index.__wrapped__(str(folder)).neighbours("good")
