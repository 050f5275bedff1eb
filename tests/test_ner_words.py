"""NER words as predict reads them: CJK ideographs, control characters, each text its own document; Hub and IOB1 tags."""

import importlib
import logging

import datasets
import numpy as np
import pytest
from transformers import AutoTokenizer

import nlp_transfer.data.loading as loading
from nlp_transfer.config import DataConfig
from nlp_transfer.data.conll import read_conll
from nlp_transfer.data.tagged_rows import load_token_classification_data
from nlp_transfer.errors import DataError
from nlp_transfer.inference import predict_texts
from nlp_transfer.tasks.token_classification import build_token_classification_task, entity_spans, split_words

#: the module itself (the package exports a function of the same name)
predict_module = importlib.import_module("nlp_transfer.inference.predict")
LABELS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]

#: texts whose words split_words must find as the BERT tokenizer's own normalizer and pre-tokenizer do
BERT_TEXTS = [
    "王明在北京工作",
    "我在上海见到李山.",
    "Tokyo東京ab 𠀀𠀁",  # an ideograph of extension B
    "Peter\x07Blackburn met Anna\x1fLee",  # control characters: deleted by the tokenizer, no word boundary
    "x\x0cy z\x85w",  # form feed and NEL are controls to BERT, though Python counts them as spaces
    "ひらがな 한국어 Mer\u00adkel",  # kana and hangul are no ideographs: runs of letters
    "Report ends.\n\x0c\nAngela met \x07 Tim \u00ad here",  # alone between spaces: deleted, no word (no [UNK])
]


def _checked(text):
    words, spans = split_words(text)
    assert all(text[s:e] == w for w, (s, e) in zip(words, spans, strict=True)), (text, words, spans)
    return words


@pytest.fixture()
def task(tiny_model_dir):
    return build_token_classification_task(model=tiny_model_dir, labels=LABELS, max_length=16)


def test_each_cjk_ideograph_is_a_word_as_in_character_per_line_data():
    assert _checked("王明在北京工作") == list("王明在北京工作")
    assert _checked("Tokyo東京ab, 2024") == ["Tokyo", "東", "京", "ab", ",", "2024"]
    assert _checked("北\u200d京") == ["北\u200d", "京"]  # an invisible joiner stays with the ideograph before it
    assert _checked("豈 丽") == ["豈", "丽"]  # compatibility ideographs (U+F900, U+2F800)


def test_control_characters_join_the_word_they_are_in():
    assert _checked("Peter\x07Blackburn") == ["Peter\x07Blackburn"]
    assert _checked("a\x0cb c") == ["a\x0cb", "c"]
    assert _checked("Lisbon \x07 .") == ["Lisbon", "."]  # alone between spaces: deleted by the tokenizer, no word
    assert _checked("end.\n\x0c\nNext") == ["end", ".", "Next"]  # a page break between paragraphs


def test_split_words_finds_the_bert_tokenizers_words(tiny_model_dir):
    backend = AutoTokenizer.from_pretrained(tiny_model_dir).backend_tokenizer
    for text in BERT_TEXTS:
        theirs = backend.pre_tokenizer.pre_tokenize_str(backend.normalizer.normalize_str(text))
        assert len(_checked(text)) == len(theirs), (text, split_words(text)[0], theirs)


def test_no_entity_is_only_invisible_characters_nor_starts_or_ends_with_one():
    text = "\x07 Smith \u00ad met \x07 in Oslo \u00ad"
    words, spans = split_words(text)
    assert words == ["Smith", "met", "in", "Oslo"]  # the lone invisible runs are no words
    tags = ["B-PER", "O", "O", "B-LOC"]
    scores = [0.9, 0.9, 0.9, 0.7]
    entities = entity_spans(text, tags, scores, spans)
    assert [(e["text"], e["type"], e["score"]) for e in entities] == [("Smith", "PER", 0.9), ("Oslo", "LOC", 0.7)]
    assert all(text[e["start"] : e["end"]] == e["text"] for e in entities)
    inside = "Anna \u00ad Lee"
    [entity] = entity_spans(inside, ["B-PER", "I-PER"], [1.0, 0.5], split_words(inside)[1])
    assert entity["text"] == inside and entity["score"] == pytest.approx(0.75)  # inside an entity's span it stays


def _captured_rows(monkeypatch, task, texts):
    """The model inputs predict_texts builds for ``texts`` (the model is never run)."""
    seen = {}

    def fake_logits(model, task, rows, **options):
        seen.update(rows)
        return np.zeros((len(rows["input_ids"]), max(map(len, rows["input_ids"])), len(task.labels)))

    monkeypatch.setattr(predict_module, "batched_logits", fake_logits)
    predict_texts(None, task, texts)
    return seen


def test_predict_frames_a_long_texts_windows_with_its_own_words_only(task, monkeypatch):
    task.document_context = 4
    long_text = " ".join(f"word{i % 7}" for i in range(30))  # several windows of max_length 16
    other = "Paris Rome Oslo"
    rows = _captured_rows(monkeypatch, task, [other, long_text])
    words = [split_words(other)[0], split_words(long_text)[0]]
    expected = task.encode_words(words, [0, 1])  # as evaluate reads each sentence: a document of its own
    assert rows["input_ids"] == expected["input_ids"] and rows["first_word_ids"] == expected["first_word_ids"]
    alone = task.encode_words(words)  # no context at all: the fault this guards against
    assert rows["input_ids"] != alone["input_ids"]
    decoded = [task.tokenizer.decode(ids, skip_special_tokens=True) for ids in rows["input_ids"]]
    assert decoded[0] == "paris rome oslo"  # a short text gets no other text's words
    assert all("paris" not in d and "rome" not in d for d in decoded[1:])


def _fake_hub(monkeypatch, names, tag_rows, feature=None):
    feature = feature or datasets.Sequence(datasets.ClassLabel(names=names))
    features = datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")), "ner_tags": feature})
    rows = {"tokens": [["Paris", "Hilton", "visited", "Paris"], ["Mona", "Lisa", "hangs"]], "ner_tags": tag_rows}
    split = datasets.Dataset.from_dict(rows, features=features)
    monkeypatch.setattr(loading, "_fetch_hub_dataset", lambda name, config: datasets.DatasetDict({"train": split}))
    return DataConfig(format="hub", train_file="org/tags", text_column="tokens", label_column="ner_tags", validation_split=0.5)


@pytest.mark.parametrize(
    ("names", "tag_rows", "feature", "pattern"),
    [
        (["O", "person", "location", "art"], [[1, 1, 0, 2], [3, 3, 0]], None, r"org/tags \[train\]:1: tag 'person' is not in"),
        (["O", "b-per", "i-per"], [[0, 0, 0, 0], [1, 2, 0]], None, r"org/tags \[train\]:2: tag 'b-per' is not in"),
        (None, [[0, 0, 0, 0], [3, 0, 0]], datasets.Sequence(datasets.Value("int64")), r"org/tags \[train\]:1: tag 0 is not"),
    ],
    ids=["plain-types", "lowercase", "numbers-without-names"],
)
def test_hub_tags_outside_the_scheme_are_refused_naming_dataset_split_and_row(monkeypatch, names, tag_rows, feature, pattern):
    config = _fake_hub(monkeypatch, names, tag_rows, feature)
    with pytest.raises(DataError, match=pattern + r".*IOB/BIOES scheme"):
        load_token_classification_data(config)


def test_hub_iob2_tags_still_load(monkeypatch):
    config = _fake_hub(monkeypatch, ["O", "B-PER", "I-PER", "B-ART", "I-ART"], [[1, 2, 0, 0], [3, 4, 0]])
    data = load_token_classification_data(config)
    assert data.labels == ["O", "B-ART", "I-ART", "B-PER", "I-PER"]


IOB1 = "John I-PER\nSmith I-PER\nmet O\nMary I-PER\n\nRome I-LOC\nParis B-LOC\nis O\n"
STRAY_IN_IOB2 = "John B-PER\nSmith I-PER\nmet O\nMary I-PER\n"


def test_an_iob1_file_is_no_repair_but_stray_i_tags_in_iob2_are(tmp_path, caplog):
    (tmp_path / "iob1.conll").write_text(IOB1, encoding="utf-8")
    (tmp_path / "stray.conll").write_text(STRAY_IN_IOB2, encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="nlp_transfer.data.conll"):
        iob1 = read_conll(str(tmp_path / "iob1.conll"))
    assert iob1.scheme == "iob1" and [s.tags for s in iob1.sentences] == [
        ["B-PER", "I-PER", "O", "B-PER"],
        ["B-LOC", "B-LOC", "O"],
    ]
    assert sum(s.repaired for s in iob1.sentences) == 0 and not caplog.records
    with caplog.at_level(logging.WARNING, logger="nlp_transfer.data.conll"):
        stray = read_conll(str(tmp_path / "stray.conll"))
    assert stray.sentences[0].tags == ["B-PER", "I-PER", "O", "B-PER"] and stray.sentences[0].repaired == 1
    assert [r.getMessage()[:60] for r in caplog.records] == [f"{tmp_path / 'stray.conll'}: 1 I- tags that began an entity"[:60]]
