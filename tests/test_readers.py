"""Readers: formats, options, and a clear file:line error for each kind of bad input."""

import json
import re
from pathlib import Path

import pytest

from nlp_transfer.config import DataConfig
from nlp_transfer.data import load_text_classification_data, read_records
from nlp_transfer.data.labels import map_integer_label_column, whole_number_text
from nlp_transfer.errors import DataError
from tests.conftest import shared_dataset


def data(**kwargs) -> DataConfig:
    return DataConfig(**kwargs)


def test_csv_tsv_json_jsonl_give_the_same_rows(tmp_path):
    rows = [("good film", "pos"), ("bad, really bad", "neg"), ('a "quoted" word', "pos")]
    (tmp_path / "a.csv").write_text(
        'text,label\ngood film,pos\n"bad, really bad",neg\n"a ""quoted"" word",pos\n', encoding="utf-8"
    )
    (tmp_path / "a.tsv").write_text("text\tlabel\n" + "".join(f"{t}\t{lab}\n" for t, lab in rows), encoding="utf-8")
    (tmp_path / "a.jsonl").write_text("".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in rows), encoding="utf-8")
    (tmp_path / "a.json").write_text(json.dumps({"data": [{"text": t, "label": lab} for t, lab in rows]}), encoding="utf-8")
    for name in ("a.csv", "a.tsv", "a.jsonl", "a.json"):
        loaded = load_text_classification_data(data(train_file=str(tmp_path / name), validation_split=0.34))
        texts = sorted(list(loaded.splits["train"]["text"]) + list(loaded.splits["validation"]["text"]))
        assert texts == sorted(t for t, _ in rows), name
        assert loaded.labels == ["neg", "pos"]


def test_header_false_and_named_columns_and_delimiter(tmp_path):
    path = tmp_path / "e.txt"
    path.write_text("i feel great;joy\ni am scared;fear\nso happy today;joy\nterrified of it;fear\n", encoding="utf-8")
    named = load_text_classification_data(data(train_file=str(path), format="csv", delimiter=";", header=["text", "label"]))
    assert named.labels == ["fear", "joy"]
    numbered = load_text_classification_data(
        data(train_file=str(path), format="csv", delimiter=";", header=False, text_column="0", label_column="1")
    )
    assert numbered.labels == ["fear", "joy"]


def test_a_whole_number_label_is_the_same_label_in_csv_and_json(tmp_path):
    """A csv's "1.0" stayed the label "1.0" while a JSON file's 1.0 became "1": a test file of one was refused."""
    train, test = tmp_path / "train.csv", tmp_path / "test.json"
    train.write_text("text,label\ngood,1.0\nbad,0.0\nfine,1.0\nawful,0.0\n", encoding="utf-8")
    test.write_text('[{"text": "nice", "label": 1.0}, {"text": "poor", "label": 0}]', encoding="utf-8")
    loaded = load_text_classification_data(data(train_file=str(train), test_file=str(test), validation_split=0.5), seed=0)
    assert loaded.labels == ["0", "1"] and list(loaded.splits["test"]["label"]) == ["1", "0"]
    named = load_text_classification_data(data(train_file=str(train), labels=["neg", "pos"], validation_split=0.5), seed=0)
    assert sorted([*named.splits["train"]["label"], *named.splits["validation"]["label"]]) == ["neg", "neg", "pos", "pos"]
    assert map_integer_label_column(["1", "0", ["1"]], ["0.0", "1.0"]) == ["1.0", "0.0", ["1.0"]]  # an older run's names
    # the digits as written: through a float, labels past 2**53 rounded and two of them merged (regression, same day)
    assert whole_number_text("12345678901234567891.0") == "12345678901234567891" and whole_number_text("-0.0") == "0"
    assert whole_number_text("2.50") == "2.50" and whole_number_text("01") == "01"


def test_integer_labels_index_data_labels(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("sentence\tlabel\nnice one \t1\nawful \t0\nlovely \t1\nbad \t0\n", encoding="utf-8")
    loaded = load_text_classification_data(
        data(train_file=str(path), text_column="sentence", labels=["negative", "positive"], validation_split=0.5), seed=0
    )
    assert loaded.labels == ["negative", "positive"]
    everything = dict(zip(loaded.splits["train"]["text"], loaded.splits["train"]["label"], strict=True))
    everything.update(zip(loaded.splits["validation"]["text"], loaded.splits["validation"]["label"], strict=True))
    assert everything == {"nice one": "positive", "awful": "negative", "lovely": "positive", "bad": "negative"}


def test_multilabel_lists_and_delimited_strings(tmp_path):
    (tmp_path / "m.csv").write_text(
        'text,labels\nlate and overcharged,"billing|shipping"\nlove it,praise\nno tag here,\n', encoding="utf-8"
    )
    (tmp_path / "m.jsonl").write_text(
        '{"text": "late and overcharged", "labels": ["shipping", "billing"]}\n{"text": "love it", "labels": ["praise"]}\n',
        encoding="utf-8",
    )
    csv_data = load_text_classification_data(
        data(train_file=str(tmp_path / "m.csv"), validation_file=str(tmp_path / "m.csv"), label_column="labels"), multi_label=True
    )
    assert csv_data.labels == ["billing", "praise", "shipping"]
    assert list(csv_data.splits["train"]["label"]) == [["billing", "shipping"], ["praise"], []]
    json_data = load_text_classification_data(
        data(train_file=str(tmp_path / "m.jsonl"), validation_file=str(tmp_path / "m.jsonl"), label_column="labels"),
        multi_label=True,
    )
    assert next(iter(json_data.splits["train"]["label"])) == ["billing", "shipping"]


def test_multilabel_json_list_cells_are_lists_and_non_labels_in_a_list_are_refused(tmp_path):
    """A csv cell holding a JSON list (pandas writes list columns so) is that list, not one label per combination;
    a null, boolean or fraction inside a list is refused with its line instead of becoming the label 'None'."""
    (tmp_path / "m.csv").write_text(
        'text,labels\nlate and overcharged,"[""shipping"", ""billing""]"\nlove it,"[""praise""]"\nodd,[draft]\n',
        encoding="utf-8",
    )
    options = {"validation_file": str(tmp_path / "m.csv"), "label_column": "labels"}
    loaded = load_text_classification_data(data(train_file=str(tmp_path / "m.csv"), **options), multi_label=True)
    assert loaded.labels == ["[draft]", "billing", "praise", "shipping"]  # a bracketed name that is no JSON stays a name
    assert list(loaded.splits["train"]["label"]) == [["billing", "shipping"], ["praise"], ["[draft]"]]
    for bad, shown in (("null", "None"), ("true", "True"), ("0.5", "0.5")):
        (tmp_path / "n.jsonl").write_text(
            f'{{"text": "a", "labels": ["praise"]}}\n{{"text": "b", "labels": ["billing", {bad}]}}\n', encoding="utf-8"
        )
        with pytest.raises(DataError, match=rf"n.jsonl:2: label column 'labels' holds the list .*whose item {shown} is not"):
            load_text_classification_data(data(train_file=str(tmp_path / "n.jsonl"), **options), multi_label=True)


def test_multilabel_cells_pandas_writes_as_python_lists_are_lists(tmp_path):
    """pandas writes a list column to csv as Python reprs (['good', 'bad']); each combination became one class."""
    (tmp_path / "m.csv").write_text(
        "text,labels\nfine but slow,\"['good', 'bad']\"\nsuperb,['good']\nawful,\"['bad']\"\nodd,\"['x', 1]\"\n"
        'quoted,"[""don\'t"", \'x\']"\n',
        encoding="utf-8",
    )
    options = {"validation_file": str(tmp_path / "m.csv"), "label_column": "labels"}
    loaded = load_text_classification_data(data(train_file=str(tmp_path / "m.csv"), **options), multi_label=True)
    rows = list(loaded.splits["train"]["label"])
    assert rows[:3] == [["bad", "good"], ["good"], ["bad"]]
    assert rows[3] == ["['x', 1]"]  # only a list of strings is read so; anything else stays one label as written
    assert rows[4] == ["don't", "x"]


def test_a_wrapped_json_row_error_names_the_rows_line_not_the_first_bracket(tmp_path):
    """{"meta": {"tags": [...]}, "data": [...]}: line numbers were counted from the first "[", the tags list."""
    rows = [{"text": f"row {i}", "label": "pos" if i % 2 else "neg"} for i in range(6)]
    rows[4]["label"] = None
    path = tmp_path / "wrapped.json"
    path.write_text(json.dumps({"meta": {"tags": ["a", "b"], "n": [1]}, "data": rows}, indent=2), encoding="utf-8")
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if '"row 4"' in text) - 1  # its "{"
    with pytest.raises(DataError, match=rf"wrapped\.json:{line}: label column 'label' holds None"):
        load_text_classification_data(data(train_file=str(path)))
    records = read_records(str(path), format="json", delimiter=None, header=True, encoding="utf-8")
    assert [r.line for r in records] == [line + 4 * (i - 4) for i in range(6)]  # each object spans 4 lines


def test_seeded_stratified_split_is_reproducible(tmp_path):
    lines = "".join(f"text number {i},{'a' if i % 2 else 'b'}\n" for i in range(100))
    (tmp_path / "s.csv").write_text("text,label\n" + lines, encoding="utf-8")
    first = load_text_classification_data(data(train_file=str(tmp_path / "s.csv"), validation_split=0.2), seed=3)
    again = load_text_classification_data(data(train_file=str(tmp_path / "s.csv"), validation_split=0.2), seed=3)
    other = load_text_classification_data(data(train_file=str(tmp_path / "s.csv"), validation_split=0.2), seed=4)
    assert list(first.splits["validation"]["text"]) == list(again.splits["validation"]["text"])
    assert list(first.splits["validation"]["text"]) != list(other.splits["validation"]["text"])
    assert len(first.splits["validation"]) == 20
    assert sorted(first.splits["validation"]["label"]).count("a") == 10


@pytest.mark.parametrize("delimiter", [",", "\t"], ids=["csv", "tsv"])
def test_a_field_longer_than_csvs_default_limit_reads(tmp_path, delimiter):
    long_text = ("lorem " * 40_000)[:200_000]  # a long document: over csv's default field limit of 131,072
    path = tmp_path / ("long.csv" if delimiter == "," else "long.tsv")
    path.write_text(f"text{delimiter}label\n{long_text}{delimiter}pos\nshort{delimiter}neg\n", encoding="utf-8")
    loaded = load_text_classification_data(data(train_file=str(path), validation_file=str(path)))
    assert [len(t) for t in loaded.splits["train"]["text"]] == [200_000, 5]


BAD_INPUTS = [
    ("empty.csv", b"", {}, r"empty.csv: the file is empty"),
    ("header_only.csv", b"text,label\n", {}, r"header_only.csv: no data rows"),
    (
        "latin.csv",
        "text,label\nok,pos\ncaf\u00e9 au lait,neg\n".encode("latin-1"),
        {},
        r"latin.csv:3: byte 0xe9 cannot be decoded as utf-8.*data.encoding",
    ),
    ("cols.csv", b"review,label\nok,pos\n", {}, r"cols.csv: no column 'text' for data.text_column.*\['review', 'label'\]"),
    ("fields.csv", b"text,label\nok,pos\ntoo,many,fields\n", {}, r"fields.csv:3: expected 2 fields.*found 3"),
    ("emptytext.csv", b"text,label\nok,pos\n  ,neg\n", {}, r"emptytext.csv:3: empty text"),
    ("nolabel.csv", b"text,label\nok,pos\nfine,\n", {}, r"nolabel.csv:3: empty label"),
    ("delimiters.csv", b"text,label\nok,pos\n,\nfine,neg\n", {}, r"delimiters.csv:3: empty text"),  # was skipped
    (
        "one_row.json",
        b'{"text": "a", "label": ["x", "y"]}',
        {},
        r"one_row.json: .*found one object with keys \['text', 'label'\]",
    ),
    ("bad.jsonl", b'{"text": "a", "label": "x"}\n{"text": "b", "label": \n', {}, r"bad.jsonl:2: invalid JSON"),
    ("list.jsonl", b'["a", "x"]\n', {}, r"list.jsonl:1: expected a JSON object per line"),
    ("bad.json", b'[{"text": "a", "label": "x"},\n {"text": ]', {}, r"bad.json:2: invalid JSON"),
    ("notext.jsonl", b'{"text": 5, "label": "x"}\n', {}, r"notext.jsonl:1: text column 'text' holds 5"),
    ("data.parquet", b"x", {}, r"data.parquet: cannot tell the format"),
    ("dup.csv", b"text,text\na,b\n", {}, r"dup.csv:1: duplicate column name"),
    ("one_label.csv", b"text,label\na,x\nb,x\n", {"validation_split": 0.5}, r"1 distinct label"),
    ("quote.csv", b'text,label\n"unclosed,pos\n', {}, r"quote.csv:2: a quoted field that starts on this row never closes"),
    ("folder.csv", None, {}, r"folder.csv: a folder, not a data file"),
    ("most.csv", b"text,label\na,x\nb,y\nc,x\nd,y\n", {"validation_split": 0.999}, r"data.validation_split=0.999 cannot"),
]


@pytest.mark.parametrize(("name", "content", "options", "pattern"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_gets_one_clear_error(tmp_path, name, content, options, pattern):
    path = tmp_path / name
    if content is None:  # a folder where the file goes
        path.mkdir()
    else:
        path.write_bytes(content)
    with pytest.raises(DataError, match=pattern):
        load_text_classification_data(data(train_file=str(path), **options))


def test_unseen_label_in_validation_names_file_and_line(tmp_path):
    (tmp_path / "train.csv").write_text("text,label\na,pos\nb,neg\n", encoding="utf-8")
    (tmp_path / "val.csv").write_text("text,label\nc,pos\nd,neutral\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"val.csv:3: label 'neutral' was not seen in the training data"):
        load_text_classification_data(data(train_file=str(tmp_path / "train.csv"), validation_file=str(tmp_path / "val.csv")))


def test_missing_file_and_wrong_encoding_name(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_text_classification_data(data(train_file=str(tmp_path / "missing.csv")))
    (tmp_path / "a.csv").write_text("text,label\na,b\n", encoding="utf-8")
    with pytest.raises(DataError, match="unknown encoding 'utf-99'"):
        load_text_classification_data(data(train_file=str(tmp_path / "a.csv"), encoding="utf-99"))


def test_latin1_reads_with_the_encoding_option(tmp_path):
    path = tmp_path / "l.csv"
    path.write_bytes("text,label\ncaf\u00e9,a\nth\u00e9,b\n".encode("latin-1"))
    loaded = load_text_classification_data(data(train_file=str(path), encoding="latin-1", validation_file=str(path)))
    assert "café" in list(loaded.splits["train"]["text"])


def test_hub_dataset_offline_gets_a_clear_message(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match="Hub dataset 'stanfordnlp/sst2' cannot be reached"):
        load_text_classification_data(data(train_file="stanfordnlp/sst2", format="hub"))


def test_real_sst2_tsv_reads_as_published():
    train = shared_dataset("sst2", "train.tsv")
    records = read_records(str(train), format="tsv", delimiter=None, header=True, encoding="utf-8")
    assert len(records) == 67349
    assert set(records[0].fields) == {"sentence", "label"}
    loaded = load_text_classification_data(
        data(
            train_file=str(train),
            validation_file=str(shared_dataset("sst2", "dev.tsv")),
            text_column="sentence",
            labels=["negative", "positive"],
            max_train_samples=500,
        )
    )
    assert len(loaded.splits["validation"]) == 872
    assert set(loaded.splits["validation"]["label"]) == {"negative", "positive"}
    assert not any(t != t.strip() for t in loaded.splits["train"]["text"])


def test_real_emotion_reads_as_published():
    loaded = load_text_classification_data(
        data(
            train_file=str(shared_dataset("emotion", "train.txt")),
            validation_file=str(shared_dataset("emotion", "val.txt")),
            format="csv",
            delimiter=";",
            header=["text", "label"],
        )
    )
    assert loaded.labels == ["anger", "fear", "joy", "love", "sadness", "surprise"]
    assert len(loaded.splits["train"]) == 16000
    assert len(loaded.splits["validation"]) == 2000


def test_project_data_is_clean():
    repo = Path(__file__).resolve().parent.parent
    for folder, column, multi in (("sentiment", "label", False), ("topics", "label", False), ("support_tickets", "labels", True)):
        base = repo / "data" / folder
        loaded = load_text_classification_data(
            data(
                train_file=str(base / "train.csv"),
                validation_file=str(base / "validation.csv"),
                test_file=str(base / "test.csv"),
                label_column=column,
            ),
            multi_label=multi,
        )
        texts = [t for split in loaded.splits.values() for t in split["text"]]
        assert len(texts) == len(set(texts)), f"duplicate texts in data/{folder}"
        assert len(loaded.splits["train"]) >= 250


TSV = {"format": "tsv", "delimiter": None, "header": True, "encoding": "utf-8"}


def test_tsv_fields_may_be_quoted_across_tabs_and_lines(tmp_path):
    """A quoted TSV field holds tabs and line breaks (the Amazon reviews); a plain TSV whose text opens with an
    unclosed quote still reads, with the quote as a character (the GLUE convention)."""
    quoted = tmp_path / "quoted.tsv"
    quoted.write_text('sentence\tlabel\n"Title line\n\tbody with a tab"\t1\nplain one\t0\n', encoding="utf-8")
    rows = read_records(str(quoted), **TSV)
    assert [(r.line, r.fields["sentence"], r.fields["label"]) for r in rows] == [
        (2, "Title line\n\tbody with a tab", "1"),
        (4, "plain one", "0"),
    ]
    plain = tmp_path / "plain.tsv"
    plain.write_text('text\tlabel\n"so-called" hero\tpos\n" unclosed quote here\tneg\nfine\tpos\n', encoding="utf-8")
    assert [r.fields["text"] for r in read_records(str(plain), **TSV)] == [
        '"so-called" hero',
        '" unclosed quote here',
        "fine",
    ]


def test_amazon_reviews_read_as_published():
    """The four Amazon domains: 1,700 train and 300 dev reviews each, multi-line quoted fields, balanced 0/1 labels."""
    for domain in ("books", "dvd", "electronics", "kitchen"):
        for split, size in (("train.tsv", 1700), ("dev.tsv", 300)):
            rows = read_records(str(shared_dataset("amazon_multidomain", domain, split)), **TSV)
            assert len(rows) == size, (domain, split)
            assert sorted({r.fields["label"] for r in rows}) == ["0", "1"]
            assert sum("\n" in r.fields["sentence"] for r in rows) > size / 2  # title and body on separate lines


def test_a_line_separator_inside_a_jsonl_string_or_a_text_line_does_not_cut_it(tmp_path):
    """json.dumps(..., ensure_ascii=False) writes U+2028 and U+0085 raw; str.splitlines cut the line there and the
    valid file was refused ("Unterminated string starting at at column 10")."""

    from nlp_transfer.data.readers import read_jsonl
    from nlp_transfer.data.texts import read_texts

    rows = [{"text": "first\u2028half", "label": "a"}, {"text": "next\u0085line", "label": "b"}]
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    assert [r.fields for r in read_jsonl(str(path), encoding="utf-8")] == rows
    (tmp_path / "texts.txt").write_text("one\u2028text\r\ntwo\n", encoding="utf-8")
    assert read_texts(str(tmp_path / "texts.txt")) == ["one\u2028text", "two"]


def test_mix_ups_between_formats_get_the_fix(tmp_path):
    """A header row under data.header=[...] was trained as a row of class 'label'; a gzip file was called an encoding
    problem; a JSON array or a pretty-printed document named .jsonl got no hint."""
    import gzip

    cases = {
        "hdr.csv": (b"text;label\ngood;pos\nbad;neg\n", {"delimiter": ";", "header": ["text", "label"]}, "set data.header=true"),
        "gz.csv": (gzip.compress(b"text,label\ngood,pos\n"), {}, "a gzip-compressed file. Decompress it first"),
        "arr.jsonl": (b'[{"text": "a", "label": "x"}]\n', {}, "A JSON array of objects is a .json file"),
        "pretty.jsonl": (b'[\n {"text": "a", "label": "x"}\n]\n', {}, "looks like one JSON document"),
    }
    for name, (body, options, message) in cases.items():
        (tmp_path / name).write_bytes(body)
        kind = "jsonl" if name.endswith("jsonl") else "csv"
        settings = {"delimiter": None, "header": True, "encoding": "utf-8", **options}
        with pytest.raises(DataError, match=re.escape(message)):
            read_records(str(tmp_path / name), format=kind, **settings)


def test_a_key_given_twice_in_one_json_object_is_refused_with_its_line(tmp_path):
    """JSON keeps the last of two equal keys: {"text": "great", "text": "awful"} trained on "awful" without a word."""
    from nlp_transfer.data.texts import iter_numbered_texts

    rows = '{"text": "great film", "label": "pos"}\n{"text": "great lovely", "text": "awful bad", "label": "pos"}\n'
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text(rows, encoding="utf-8")
    with pytest.raises(DataError, match=r"rows\.jsonl:2: an object gives the key 'text' twice"):
        read_records(str(jsonl), format="jsonl", delimiter=None, header=True, encoding="utf-8")
    with pytest.raises(DataError, match=r"rows\.jsonl:2: an object gives the key 'text' twice"):
        list(iter_numbered_texts(str(jsonl), text_column="text"))
    array = tmp_path / "rows.json"
    array.write_text("[" + ",".join(rows.strip().splitlines()) + "]", encoding="utf-8")
    with pytest.raises(DataError, match=r"rows\.json: an object gives the key 'text' twice"):
        read_records(str(array), format="json", delimiter=None, header=True, encoding="utf-8")


def test_a_json_number_or_boolean_where_a_text_goes_is_refused_as_training_refuses_it(tmp_path):
    """predict and adapt read 42 and true as the texts "42" and "True"; training refused them."""
    from nlp_transfer.data.texts import iter_numbered_texts

    path = tmp_path / "texts.jsonl"
    for value in ("42", "true", "1.5"):
        path.write_text(f'{{"text": "fine"}}\n{{"text": {value}}}\n', encoding="utf-8")
        with pytest.raises(DataError, match=rf"texts\.jsonl:2: the text is the JSON value {re.escape(value)}, not a string"):
            list(iter_numbered_texts(str(path)))


def test_a_multi_label_cell_of_one_whole_number_and_a_list_with_a_blank_item():
    """1.0 is the label 1 in every format (a bare JSON 1.0 was refused for multi-label); a blank list item was told to
    remove a stray '|' the file did not hold."""
    from nlp_transfer.data.labels import parse_multi_label

    assert parse_multi_label(1.0, "f.json:2", "labels", "|") == ["1"] == parse_multi_label(1, "f.json:2", "labels", "|")
    with pytest.raises(DataError, match=r"f\.json:2: an empty label inside \['good', ' '\]\. Remove the blank item"):
        parse_multi_label(["good", " "], "f.json:2", "labels", "|")
    with pytest.raises(DataError, match=r"holds 1\.5; expected a list"):
        parse_multi_label(1.5, "f.json:2", "labels", "|")
