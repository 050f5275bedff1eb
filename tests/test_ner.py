"""NER: CoNLL/JSONL readers, scheme normalisation, subword alignment, windows, metrics and spans."""

import json
import random

import datasets
import numpy as np
import pytest

from nlp_transfer.config import DataConfig, load_config
from nlp_transfer.data.conll import read_conll, to_iob2
from nlp_transfer.data.tagged_rows import load_token_classification_data
from nlp_transfer.errors import DataError
from nlp_transfer.evaluation import entity_metrics
from nlp_transfer.tasks.token_classification import build_token_classification_task, split_words, word_windows
from tests.conftest import REPO, shared_dataset, tiny_overrides


def test_reads_conll2003_as_published():
    tagged = read_conll(str(shared_dataset("conll2003", "valid.txt")), token_column=0, tag_column=3)
    assert len(tagged.sentences) == 3250
    assert tagged.scheme == "iob2"
    assert all(s.tokens[0] != "-DOCSTART-" for s in tagged.sentences)
    first = tagged.sentences[0]
    assert first.tokens[:2] == ["CRICKET", "-"] and first.tags[0] == "O"
    kinds = {t[2:] for s in tagged.sentences for t in s.tags if t != "O"}
    assert kinds == {"PER", "ORG", "LOC", "MISC"}


def test_scheme_normalisation():
    assert to_iob2(["I-PER", "I-PER", "O", "I-LOC", "B-LOC"], "iob1") == ["B-PER", "I-PER", "O", "B-LOC", "B-LOC"]
    assert to_iob2(["S-PER", "B-ORG", "I-ORG", "E-ORG", "O"], "bioes") == ["B-PER", "B-ORG", "I-ORG", "I-ORG", "O"]
    assert to_iob2(["B-PER", "I-PER", "O"], "iob2") == ["B-PER", "I-PER", "O"]


def test_detects_and_converts_iob1_and_bioes_files(tmp_path):
    (tmp_path / "iob1.conll").write_text("John I-PER\nSmith I-PER\nin O\nRome I-LOC\n", encoding="utf-8")
    (tmp_path / "bioes.conll").write_text("John B-PER\nSmith E-PER\nin O\nRome S-LOC\n", encoding="utf-8")
    for name in ("iob1.conll", "bioes.conll"):
        tagged = read_conll(str(tmp_path / name))
        assert tagged.sentences[0].tags == ["B-PER", "I-PER", "O", "B-LOC"], name


MALFORMED = [
    ("cols.conll", "EU NNP B-ORG\nrejects VBZ O\nGerman JJ\n", {}, r"cols.conll:3: expected 3 columns"),
    ("tag.conll", "EU B-ORG\nrejects X-VERB\n", {}, r"tag.conll:2: tag 'X-VERB' is not in the IOB/BIOES scheme"),
    ("token.conll", "EU\tB-ORG\n\tO\n", {}, r"token.conll:2: empty token"),
    ("seen.conll", "EU\tO\nrejects\tO\n\tO\n", {}, r"seen.conll:3: empty token"),  # its tag already checked
    ("width.conll", "EU NNP O\nrejects VBZ O\nGerman O\n", {}, r"width.conll:3: expected 3 columns"),
    ("empty.conll", "\n\n", {}, r"empty.conll: the file is empty"),
    ("docs.conll", "-DOCSTART- -X- O\n\n", {}, r"docs.conll: no tagged sentences"),
    ("iob1.conll", "John I-PER\n", {"tag_scheme": "iob2"}, r"iob1.conll:1: the tags are not IOB2"),
    ("bioes.conll", "a O\n\nRome S-LOC\n", {"tag_scheme": "iob1"}, r"bioes.conll:3: the tags are not IOB1 .*auto or bioes"),
    ("cr.conll", "John B-PER\rruns O\r\rBad X-1\r", {}, r"cr.conll:4: tag 'X-1'"),  # \r alone ends a line (was one line)
    ("one.conll", "John\n", {}, r"one.conll:1: expected a token and a tag"),
    ("col.conll", "John B-PER\n", {"tag_column": 5}, r"col.conll:1: no column 5"),
    ("bad.jsonl", '{"tokens": ["a", "b"], "tags": ["O"]}\n', {}, r"bad.jsonl:1: 2 tokens but 1 tags"),
    ("badtag.jsonl", '{"tokens": ["a"], "tags": ["B_PER"]}\n', {}, r"badtag.jsonl:1: tag 'B_PER'"),
    ("latin.conll", "Caf\xe9 B-ORG\n".encode("latin-1"), {}, r"latin.conll:1: byte 0xe9 cannot be decoded"),
]


@pytest.mark.parametrize(("name", "content", "options", "pattern"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_files_name_file_and_line(tmp_path, name, content, options, pattern):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    with pytest.raises(DataError, match=pattern):
        load_token_classification_data(DataConfig(train_file=str(path), **options))


def test_unseen_tag_in_validation(tmp_path):
    (tmp_path / "train.conll").write_text("John B-PER\nruns O\n\nMary B-PER\n", encoding="utf-8")
    (tmp_path / "val.conll").write_text("Mary B-PER\nvisited O\nRome B-LOC\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"val.conll:3: tag 'B-LOC' was not seen"):  # the tag's own line
        load_token_classification_data(
            DataConfig(train_file=str(tmp_path / "train.conll"), validation_file=str(tmp_path / "val.conll"))
        )


def test_trailing_tabs_form_feeds_and_unicode_line_separators_are_no_line_breaks_or_columns(tmp_path):
    """A trailing tab adds no empty column; form feeds, U+0085 and U+2028 end no line (splitlines() broke at them,
    splitting sentences and shifting every later line number) and split no columns."""
    (tmp_path / "tabs.conll").write_text("John\tB-PER\t\nruns\tO\n\nMary\tB-PER\nsings\tO\t\n", encoding="utf-8")
    tabs = read_conll(str(tmp_path / "tabs.conll"))
    assert [s.tags for s in tabs.sentences] == [["B-PER", "O"], ["B-PER", "O"]]
    (tmp_path / "ff.conll").write_text("John B-PER\nruns O\f\nAb\x85cd O\nx\u2028y O\n\nBad X-1\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"ff.conll:6: tag 'X-1'"):
        read_conll(str(tmp_path / "ff.conll"))
    (tmp_path / "ff.conll").write_text("John B-PER\nruns O\f\nAb\x85cd O\nx\u2028y O\n", encoding="utf-8")
    [sentence] = read_conll(str(tmp_path / "ff.conll")).sentences
    assert sentence.tokens == ["John", "runs", "Ab\x85cd", "x\u2028y"] and sentence.tags == ["B-PER", "O", "O", "O"]


def test_ner_data_labels_must_be_iob2_pairs():
    """Files are read as IOB2 whatever their scheme: a BIOES or bare tag, or a B- without its I-, in data.labels is
    refused at config time (it trained an epoch, then failed in seqeval or in preprocessing)."""
    from nlp_transfer.config import load_config
    from nlp_transfer.errors import ConfigError

    base = ["task=ner", "data.train_file=t.conll"]
    for labels, message in (
        ("[O,B-PER,I-PER,S-PER,E-PER]", "lists 'S-PER', which is not an IOB2 tag"),
        ("[O,B-PER,I-PER,DATE]", "lists 'DATE', which is not an IOB2 tag"),
        ("[O,B-PER,I-PER,B-MISC]", "lists 'B-MISC' without 'I-MISC'"),
    ):
        with pytest.raises(ConfigError, match=message):
            load_config(None, [*base, f"data.labels={labels}"])
    assert load_config(None, [*base, "data.labels=[O,B-PER,I-PER]"]).data.labels == ["O", "B-PER", "I-PER"]


def test_jsonl_tokens_and_tags(tmp_path):
    rows = [{"tokens": ["Ada", "Lovelace", "wrote"], "tags": ["B-PER", "I-PER", "O"]}, {"tokens": ["Paris"], "tags": ["S-LOC"]}]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    data = load_token_classification_data(
        DataConfig(train_file=str(tmp_path / "d.jsonl"), validation_file=str(tmp_path / "d.jsonl"))
    )
    assert data.labels == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    assert list(data.splits["train"]["tags"])[1] == ["B-LOC"]


@pytest.fixture()
def task(tiny_model_dir):
    return build_token_classification_task(model=tiny_model_dir, labels=["O", "B-LOC", "I-LOC", "B-PER", "I-PER"], max_length=16)


def encode(task, tokens, tags):
    return task.preprocess(datasets.Dataset.from_dict({"tokens": [tokens], "tags": [tags]}))


def test_first_subword_carries_the_label(task):
    tokens = ["Pneumonoultramicroscopic", "Zoë", "visited", "Łódź", "!"]
    tags = ["O", "B-PER", "O", "B-LOC", "O"]
    row = encode(task, tokens, tags)[0]
    pieces = task.tokenizer.convert_ids_to_tokens(row["input_ids"])
    assert len(pieces) > len(tokens) + 2  # the long word and the Polish city split into several pieces
    labelled = [(p, task.labels[label]) for p, label in zip(pieces, row["labels"], strict=True) if label != -100]
    assert [tag for _, tag in labelled] == tags
    assert labelled[1][0] == "zoe"  # uncased vocabulary strips the accent
    assert all(w == -1 or 0 <= w < len(tokens) for w in row["word_ids"])


def test_label_all_subwords_turns_b_into_i(task):
    task.label_all_subwords = True
    row = encode(task, ["Pneumonoultramicroscopic", "rocks"], ["B-LOC", "O"])[0]
    tags = [task.labels[label] for label in row["labels"] if label != -100]
    pieces = len(task.tokenizer("Pneumonoultramicroscopic", add_special_tokens=False)["input_ids"])
    assert pieces > 1
    assert tags == ["B-LOC"] + ["I-LOC"] * (pieces - 1) + ["O"]


def test_long_sentences_are_windowed_without_losing_words(task):
    tokens = [random.Random(0).choice(["alpha", "beta", "Gamma", "delta"]) for _ in range(60)] + ["Paris"]
    tags = ["O"] * 60 + ["B-LOC"]
    dataset = encode(task, tokens, tags)
    assert len(dataset) > 1
    assert set(dataset["sentence_id"]) == {0}
    covered = sorted(w for row in dataset["first_word_ids"] for w in row if w >= 0)
    assert covered == list(range(len(tokens)))
    assert all(len(ids) <= 16 for ids in dataset["input_ids"])
    assert task.truncated["windowed_sentences"] == 1  # counted for the run report
    assert word_windows([3, 3, 3, 20, 1], budget=6) == [(0, 2), (2, 3), (3, 4), (4, 5)]


def test_split_words_offsets_and_punctuation():
    words, spans = split_words("Dr. Zoë Müller-Smith (CEO) left São Paulo, 2024!")
    assert words == ["Dr", ".", "Zoë", "Müller", "-", "Smith", "(", "CEO", ")", "left", "São", "Paulo", ",", "2024", "!"]
    text = "Dr. Zoë Müller-Smith (CEO) left São Paulo, 2024!"
    assert all(text[s:e] == w for w, (s, e) in zip(words, spans, strict=True))


def test_modifier_characters_stay_with_their_word_and_every_word_gets_a_tag(task):
    """A decomposed accent, an emoji's variation selector or a soft hyphen is no word of its own: in raw text a lone
    soft hyphen is no word at all (the tokenizer deletes it). A given word the tokenizer reads as nothing (a lone soft
    hyphen as a CoNLL token) is read as the unknown token, so the metrics never lose it."""
    text = "Jose\u0301 loves \u2764\ufe0f Lisbon \u00ad ."
    words, spans = split_words(text)
    assert words == ["Jose\u0301", "loves", "\u2764\ufe0f", "Lisbon", "."]
    assert all(text[s:e] == w for w, (s, e) in zip(words, spans, strict=True))
    assert task.tokenizer("\u00ad", add_special_tokens=False)["input_ids"] == []  # the tokenizer drops it
    conll_words = ["Jose\u0301", "loves", "\u2764\ufe0f", "Lisbon", "\u00ad", "."]
    rows = task.encode_words([conll_words])
    assert sorted(w for w in rows["first_word_ids"][0] if w >= 0) == list(range(len(conll_words)))
    rows = task.encode_words([words])
    assert sorted(w for w in rows["first_word_ids"][0] if w >= 0) == list(range(len(words)))
    logits = np.full((1, len(rows["input_ids"][0]), len(task.labels)), -5.0)
    for position, word in enumerate(rows["first_word_ids"][0]):
        if word >= 0:
            logits[0, position, task.labels.index({0: "B-PER", 3: "B-LOC"}.get(word, "O"))] = 5.0
    [result] = task.postprocess(logits, rows, [text], [spans])
    assert [(e["text"], e["type"]) for e in result["entities"]] == [("Jose\u0301", "PER"), ("Lisbon", "LOC")]


def test_a_word_with_a_soft_hyphen_or_joiner_inside_is_one_word_as_the_tokenizer_reads_it(task):
    text = "Angela Mer\u00adkel and Bj\u200dorn spoke"
    words, spans = split_words(text)
    assert words == ["Angela", "Mer\u00adkel", "and", "Bj\u200dorn", "spoke"]
    assert all(text[s:e] == w for w, (s, e) in zip(words, spans, strict=True))
    assert task.tokenizer.tokenize(text)[:3] == ["angela", "mer", "##kel"]  # the tokenizer's own word boundaries
    assert split_words("Lisbon \u00ad .")[0] == ["Lisbon", "."]  # a lone soft hyphen: deleted by the tokenizer, no word
    # a decomposed accent inside a word splits it no more than its composed form does (NFD text gave other entities)
    for name in ("S\u00e9gol\u00e8ne Royal", "Se\u0301gole\u0300ne Royal", "Marti\u0301nez", "Rene\u0301e"):
        words, spans = split_words(name)
        assert words == name.split() and all(name[s:e] == w for w, (s, e) in zip(words, spans, strict=True))


def test_entity_metrics_hand_computed():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O"]]
    metrics = entity_metrics(pred, gold)
    # 3 gold entities, 3 predicted, 2 correct
    assert metrics["precision"] == pytest.approx(2 / 3)
    assert metrics["recall"] == pytest.approx(2 / 3)
    assert metrics["per_type"]["LOC"]["recall"] == 0.0
    assert metrics["per_type"]["PER"]["f1"] == 1.0
    assert metrics["accuracy"] == pytest.approx(5 / 6)
    # an I- that begins an entity is scored as B- for the entities, but the word's tag as predicted was wrong
    raw = [["I-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    repaired = entity_metrics([["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]], gold, raw=raw)
    assert repaired["f1"] == 1.0 and repaired["accuracy"] == pytest.approx(5 / 6)


def test_postprocess_builds_character_spans(task):
    text = "Zoë Müller met Ada in São Paulo."
    words, spans = split_words(text)
    rows = task.encode_words([words])
    import numpy as np

    width = len(rows["input_ids"][0])
    logits = np.full((1, width, len(task.labels)), -5.0)
    wanted = {0: "B-PER", 1: "I-PER", 3: "I-PER", 5: "B-LOC", 6: "I-LOC"}  # a stray I-PER starts an entity
    for position, word in enumerate(rows["first_word_ids"][0]):
        if word >= 0:
            logits[0, position, task.labels.index(wanted.get(word, "O"))] = 5.0
    [result] = task.postprocess(logits, rows, [text], [spans])
    assert [(e["text"], e["type"]) for e in result["entities"]] == [("Zoë Müller", "PER"), ("Ada", "PER"), ("São Paulo", "LOC")]
    assert all(text[e["start"] : e["end"]] == e["text"] and 0.9 < e["score"] <= 1 for e in result["entities"])


def test_tiny_model_learns_synthetic_entities(tiny_model_dir, tmp_path, capsys):
    from nlp_transfer.pipeline import run_training

    rng = random.Random(0)
    people, places = (
        ["Alice", "Bruno", "Chen", "Dmitri", "Esther", "Farid"],
        ["Lisbon", "Oslo", "Quito", "Hanoi", "Dakar", "Perth"],
    )
    filler = ["we", "met", "in", "yesterday", "and", "then", "went", "to", "with", "the", "market"]

    def sentences(n):
        out = []
        for _ in range(n):
            words = rng.sample(filler, 4)
            tags = ["O"] * 4
            words.insert(rng.randint(0, 4), "@P")
            words.insert(rng.randint(0, 5), "@L")
            tags = ["B-PER" if w == "@P" else "B-LOC" if w == "@L" else "O" for w in words]
            words = [rng.choice(people) if w == "@P" else rng.choice(places) if w == "@L" else w for w in words]
            out.append("\n".join(f"{w} {t}" for w, t in zip(words, tags, strict=True)))
        return "\n\n".join(out) + "\n"

    stray = "we O\nmet O\nAlice I-PER\n\n"  # a stray I- that begins an entity: read as B-, and counted
    (tmp_path / "train.conll").write_text(stray + sentences(300), encoding="utf-8")
    (tmp_path / "val.conll").write_text(sentences(60), encoding="utf-8")
    config = load_config(
        None,
        tiny_overrides(
            tiny_model_dir,
            tmp_path / "run",
            **{
                "task": "ner",
                "data.train_file": tmp_path / "train.conll",
                "data.validation_file": tmp_path / "val.conll",
                "training.epochs": 8,
                "training.learning_rate": 3e-3,
            },
        ),
    )
    result = run_training(config)
    # the majority tag (O) finds no entity: F1 0
    assert result.metrics["validation"]["f1"] >= 0.8
    info = json.loads((tmp_path / "run" / "config.json").read_text())
    assert info["architectures"] == ["BertForTokenClassification"]
    assert result.info["repaired_tags"] == {"train": 1, "validation": 0}
    assert json.loads((tmp_path / "run" / "run_info.json").read_text())["repaired_tags"]["train"] == 1
    # predict --min-score marks each entity (it was ignored for NER): none abstains at 0, all do above their score
    from nlp_transfer.cli import main

    for threshold, expected in (("0", False), ("1", True)):
        capsys.readouterr()
        assert main(["predict", str(tmp_path / "run"), "--min-score", threshold, "we met Alice in Oslo"]) == 0
        entities = json.loads(capsys.readouterr().out)["entities"]
        assert entities and all(e["abstain"] is expected for e in entities), entities


def test_ner_configs_validate():
    for path in sorted((REPO / "recipes" / "configs" / "ner").glob("*.yaml")):
        assert load_config(path).task == "ner"


def test_docstart_lines_number_the_documents(tmp_path):
    text = "-DOCSTART- O\n\nA B-PER\n\nb O\n\n-DOCSTART- O\n\nC B-LOC\n\n-DOCSTART- O\n\nd O\n"
    (tmp_path / "docs.conll").write_text(text, encoding="utf-8")
    assert [s.document for s in read_conll(str(tmp_path / "docs.conll")).sentences] == [0, 0, 1, 2]
    lines = [
        {"tokens": ["a"], "tags": ["O"], "document": "x"},
        {"tokens": ["b"], "tags": ["O"], "document": "x"},
        {"tokens": ["c"], "tags": ["O"], "document": "y"},
    ]
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    data = load_token_classification_data(
        DataConfig(train_file=str(tmp_path / "docs.jsonl"), validation_file=str(tmp_path / "docs.jsonl"))
    )
    assert list(data.splits["train"]["document"]) == [0, 0, 1]


def test_document_context_frames_sentences_without_tagging_it(task):
    task.max_length = 64
    task.document_context = 6
    sentences = [["alpha", "beta", "gamma"], ["Paris", "is", "big"], ["delta", "epsilon"], ["Rome"]]
    tags = [["O"] * 3, ["B-LOC", "O", "O"], ["O", "O"], ["B-LOC"]]
    documents = [0, 0, 0, 1]  # the last sentence is another document: never context for the others
    dataset = task.preprocess(datasets.Dataset.from_dict({"tokens": sentences, "tags": tags, "document": documents}))
    middle = dataset[1]
    words = task.tokenizer.decode(middle["input_ids"], skip_special_tokens=True).split()
    assert words[0] == "alpha" and words[-1] == "epsilon"  # framed by its neighbours on both sides
    assert "rome" not in words
    tagged = [task.labels[label] for label in middle["labels"] if label != -100]
    assert tagged == ["B-LOC", "O", "O"]  # only the sentence's own words carry labels
    assert sorted(w for w in middle["first_word_ids"] if w >= 0) == [0, 1, 2]
    assert dataset[3]["input_ids"] == task.tokenizer("Rome")["input_ids"]  # alone in its document
    # the budget per side is in subwords: with 2 only the nearest words fit
    task.document_context = 2
    narrow = task.preprocess(datasets.Dataset.from_dict({"tokens": sentences, "tags": tags, "document": documents}))[1]
    assert task.tokenizer.decode(narrow["input_ids"], skip_special_tokens=True).split() == [
        "beta",
        "gamma",
        "paris",
        "is",
        "big",
        "delta",
        "epsilon",
    ]


def test_document_context_respects_max_length_and_scores_each_word_once(task):
    task.document_context = 32
    rng = random.Random(1)
    sentences = [[rng.choice(["alpha", "beta", "Gamma", "delta"]) for _ in range(rng.randint(3, 30))] for _ in range(12)]
    tags = [["O"] * len(s) for s in sentences]
    dataset = task.preprocess(datasets.Dataset.from_dict({"tokens": sentences, "tags": tags, "document": [0] * 12}))
    assert all(len(ids) <= task.max_length for ids in dataset["input_ids"])
    scored = {}
    for sentence_id, firsts in zip(dataset["sentence_id"], dataset["first_word_ids"], strict=True):
        for word in firsts:
            if word >= 0:
                scored.setdefault(sentence_id, []).append(word)
    assert {k: sorted(v) for k, v in scored.items()} == {i: list(range(len(s))) for i, s in enumerate(sentences)}


def test_ner_without_validation_file_holds_out_sentences(tmp_path):
    text = "\n\n".join(f"Name{i} B-PER\nsmiled O" for i in range(20)) + "\n"
    (tmp_path / "train.conll").write_text(text, encoding="utf-8")
    data = load_token_classification_data(DataConfig(train_file=str(tmp_path / "train.conll"), validation_split=0.2), seed=3)
    assert len(data.splits["train"]) == 16 and len(data.splits["validation"]) == 4
    seen = {tuple(t) for split in ("train", "validation") for t in data.splits[split]["tokens"]}
    assert len(seen) == 20
