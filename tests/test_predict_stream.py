"""predict --input streams: a file is read lazily, predicted a chunk at a time, and written as it goes.

The memory test measures the peak of Python allocations (tracemalloc) while a small and a ten times larger file
go through ``nlp-transfer predict``: reading the whole file first, as predict did before, makes the peak grow
with the file; streaming keeps it that of one chunk.
"""

import io
import json
import random
import tracemalloc

import pytest

from nlp_transfer.cli import main
from nlp_transfer.errors import DataError
from nlp_transfer.inference import iter_texts, load_run, predict_texts, read_texts
from tests.conftest import FILLER, NEGATIVE, POSITIVE


@pytest.fixture(scope="module")
def loaded(tmp_path_factory, tiny_model_dir):
    """A saved classifier (the tiny random BERT with a two-label head) and the model and task loaded from it."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    run = tmp_path_factory.mktemp("stream") / "run"
    labels = {0: "negative", 1: "positive"}
    model = AutoModelForSequenceClassification.from_pretrained(
        tiny_model_dir, num_labels=2, id2label=labels, label2id={v: k for k, v in labels.items()}
    )
    model.save_pretrained(run)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(run)
    return run, *load_run(run, device="cpu")


@pytest.fixture()
def preloaded(loaded, monkeypatch):
    """predict gets the already loaded model, so what is measured is the reading and predicting alone."""
    run, model, task = loaded
    monkeypatch.setattr("nlp_transfer.inference.load_backend", lambda *args, **kwargs: (model, task))
    monkeypatch.setattr("nlp_transfer.inference.load_run", lambda *args, **kwargs: (model, task))  # the old path
    return run, model, task


def sentences(n: int, seed: int = 0, words: int = 12) -> list[str]:
    """``n`` sentences of ``words`` words."""
    rng = random.Random(seed)
    vocabulary = FILLER + POSITIVE + NEGATIVE
    return [" ".join(rng.choices(vocabulary, k=words)) for _ in range(n)]


class CountingSink:
    """A stdout that keeps nothing: it counts the lines written to it."""

    def __init__(self) -> None:
        self.lines = 0

    def write(self, text: str) -> int:
        self.lines += text.count("\n")
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def peak_while_predicting(monkeypatch, path, chunk_size: int = 32) -> tuple[int, int]:
    """The peak of traced Python memory during ``nlp-transfer predict RUN --input PATH``, and the lines written."""
    sink = CountingSink()
    with monkeypatch.context() as patch:
        patch.setattr("sys.stdout", sink)
        patch.setattr("sys.stderr", CountingSink())
        tracemalloc.start()
        try:
            assert main(["predict", "run", "--input", str(path), "--chunk-size", str(chunk_size)]) == 0
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    return peak, sink.lines


def test_memory_stays_flat_as_the_file_grows(preloaded, tmp_path, monkeypatch):
    small, large = tmp_path / "small.txt", tmp_path / "large.txt"
    small.write_text("\n".join(sentences(60, words=150)) + "\n", encoding="utf-8")  # long lines: many bytes, few rows
    large.write_text("\n".join(sentences(600, seed=1, words=150)) + "\n", encoding="utf-8")
    peak_while_predicting(monkeypatch, small)  # first call: imports and caches are not the file's memory
    small_peak, small_lines = peak_while_predicting(monkeypatch, small)
    large_peak, large_lines = peak_while_predicting(monkeypatch, large)
    assert (small_lines, large_lines) == (60, 600)
    tracemalloc.start()
    texts = read_texts(str(large))  # what reading the whole file holds: the growth a non-streaming predict shows
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert len(texts) == 600 and held > large.stat().st_size
    print(f"peak {small_peak:,} -> {large_peak:,} bytes; reading the large file whole holds {held:,}")
    # what still differs is garbage of reference cycles in the model's forward passes, waiting for the collector
    assert large_peak - small_peak < held / 4, (small_peak, large_peak, held)


def test_streamed_lines_match_predict_in_order_with_progress(preloaded, tmp_path, capsys):
    _, model, task = preloaded
    texts = sentences(50, seed=2)
    rows = "\n".join(json.dumps({"id": i, "text": t}) for i, t in enumerate(texts))
    (tmp_path / "in.jsonl").write_text(rows + "\n", encoding="utf-8")
    assert main(["predict", "run", "--input", str(tmp_path / "in.jsonl"), "--chunk-size", "7"]) == 0
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines()]
    expected = predict_texts(model, task, texts)
    assert [row["text"] for row in lines] == texts
    for ours, theirs in zip(lines, expected, strict=True):
        assert ours["label"] == theirs["label"] and ours["score"] == pytest.approx(theirs["score"], abs=1e-5)
    assert "predicted 50 texts" in captured.err and "texts/s" in captured.err


def test_tables_are_read_a_row_at_a_time(tmp_path):
    (tmp_path / "in.tsv").write_text("id\ttext\n1\tfirst\n2\tsecond\n", encoding="utf-8")
    assert list(iter_texts(str(tmp_path / "in.tsv"))) == ["first", "second"]
    (tmp_path / "in.csv").write_text('text,id\n"a, quoted text",1\n\nplain,2\n', encoding="utf-8")
    assert list(iter_texts(str(tmp_path / "in.csv"))) == ["a, quoted text", "plain"]
    (tmp_path / "bad.jsonl").write_text('{"text": "one"}\n{"text": "two"}\n{broken\n', encoding="utf-8")
    texts = iter_texts(str(tmp_path / "bad.jsonl"))
    assert [next(texts), next(texts)] == ["one", "two"]  # the broken third line is not read yet
    with pytest.raises(DataError, match=r"bad.jsonl:3: invalid JSON"):
        next(texts)


def test_a_missing_column_fails_before_any_output(preloaded, tmp_path, capsys):
    (tmp_path / "in.csv").write_text("review\ngreat\n", encoding="utf-8")
    assert main(["predict", "run", "--input", str(tmp_path / "in.csv")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "no column 'text'" in captured.err and "--text-column" in captured.err


@pytest.mark.parametrize(("name", "content"), [("in.csv", "text\n"), ("in.csv", "text\n\n  \n"), ("in.txt", "\n  \n")])
def test_an_input_file_without_texts_is_named(preloaded, tmp_path, capsys, name, content):
    """A header-only or blank --input file is refused with its own name, not a generic 'nothing to predict'."""
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    assert main(["predict", "run", "--input", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and f"{path}: no text to predict" in captured.err, captured.err
    assert len(captured.err.strip().splitlines()) == 1


def test_rows_read_from_a_file_or_stdin_carry_their_line_so_skipped_blanks_do_not_misalign(
    preloaded, tmp_path, capsys, monkeypatch
):
    """Blank rows are skipped, so each output row says which input line it answers; arguments carry no line."""
    (tmp_path / "ids.csv").write_text("id,text\n1,good\n2,\n3,bad\n", encoding="utf-8")
    assert main(["predict", "run", "--input", str(tmp_path / "ids.csv")]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(row["line"], row["text"]) for row in rows] == [(2, "good"), (4, "bad")]
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"one\n\n  \ntwo\n")))
    assert main(["predict", "run"]) == 0
    assert [(r["line"], r["text"]) for r in map(json.loads, capsys.readouterr().out.splitlines())] == [(1, "one"), (4, "two")]
    assert main(["predict", "run", "an argument"]) == 0
    assert "line" not in json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(("name", "body"), [("in.txt", b"good film\n"), ("in.jsonl", b'{"text": "good film"}\n')])
def test_a_byte_order_mark_is_dropped_in_every_format(preloaded, tmp_path, capsys, name, body):
    """A UTF-8 BOM stayed in a .txt text (shifting NER offsets) and broke a .jsonl; csv already dropped it."""
    (tmp_path / name).write_bytes(b"\xef\xbb\xbf" + body)
    assert main(["predict", "run", "--input", str(tmp_path / name)]) == 0
    assert json.loads(capsys.readouterr().out)["text"] == "good film"


def test_a_jsonl_row_without_the_text_key_is_named_and_export_dir_needs_the_onnx_backend(preloaded, tmp_path, capsys):
    (tmp_path / "in.jsonl").write_text('{"text": "good"}\n{"body": "x"}\n', encoding="utf-8")
    assert main(["predict", "run", "--input", str(tmp_path / "in.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "in.jsonl:2: no key 'text' in this row" in err and "--text-column" not in err, err
    assert main(["predict", "run", "hello", "--export-dir", str(tmp_path)]) == 2
    assert "add --backend onnx" in capsys.readouterr().err


def test_a_csv_row_over_several_lines_carries_the_line_it_starts_on(preloaded, tmp_path, capsys):
    (tmp_path / "in.csv").write_text('id,text\n1,good\n2,"multi\nline text"\n3,bad\n', encoding="utf-8")
    assert main(["predict", "run", "--input", str(tmp_path / "in.csv")]) == 0
    assert [json.loads(line)["line"] for line in capsys.readouterr().out.splitlines()] == [2, 3, 5]


def test_predict_reads_a_table_as_training_reads_it(tmp_path):
    """A GLUE-style TSV whose text opens a quote it never closes (predict glued every later row into one text), a
    csv with a field longer than csv's default limit (predict refused it), and a csv quote that never closes."""
    from nlp_transfer.config import DataConfig
    from nlp_transfer.data.text_rows import read_text_classification_file

    glue = tmp_path / "glue.tsv"
    glue.write_text('sentence\tlabel\n"hello world is great\t1\nplain awful\t0\nother fine\t1\n', encoding="utf-8")
    long = tmp_path / "long.csv"
    long.write_text("text,label\n" + "a" * 180_000 + ",1\nshort,0\n", encoding="utf-8")
    for path, column in ((glue, "sentence"), (long, "text")):
        trained = read_text_classification_file(str(path), DataConfig(text_column=column), multi_label=False)
        assert list(iter_texts(str(path), text_column=column)) == list(trained["text"])
    unclosed = tmp_path / "unclosed.csv"
    unclosed.write_text('text\n"one, two\nthree\nfour\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"unclosed\.csv:2: a quote opened in this row never closes"):
        list(iter_texts(str(unclosed)))


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        ("text\nhello, world is great\n", r"in\.csv:2: expected 1 fields separated by ',', found 2\. Quote fields"),
        ("id,text\n1,fine\n2,good,extra\n", r"in\.csv:3: expected 2 fields separated by ',', found 3"),
        ("id,text\n1\n", r"in\.csv:2: expected 2 fields separated by ',', found 1"),
        ("\ntext,text\na,b\n", r"in\.csv:2: duplicate column name\(s\) \['text'\] in the header"),
    ],
    ids=["unquoted-comma", "extra-field", "missing-field", "duplicate-header"],
)
def test_a_table_row_whose_fields_do_not_match_the_header_is_refused_as_training_refuses_it(tmp_path, content, pattern):
    """predict cut a text at an unquoted comma and kept the first piece, took rows with extra fields, and read the
    first of two columns of the same name; training refuses each of these, and now predict names the line too."""
    path = tmp_path / "in.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=pattern):
        list(iter_texts(str(path)))


@pytest.mark.parametrize("name", ["in.txt", "in.csv", "in.jsonl"])
def test_an_undecodable_byte_names_its_line(tmp_path, name):
    """The byte sits past the first read buffer, so the text-mode reader's position is no help: the line is counted."""
    rows = [f'{{"text": "row {i}"}}' if name.endswith("jsonl") else f"row {i}" for i in range(3000)]
    header = "text\n" if name.endswith(".csv") else ""
    late = 2500 + (1 if header else 0)  # the line the bad byte is on
    body = (header + "\n".join(rows) + "\n").encode("utf-8").splitlines(keepends=True)
    body[late - 1] = body[late - 1].replace(b"row", b"r\xe9w")
    (tmp_path / name).write_bytes(b"".join(body))
    with pytest.raises(DataError, match=rf"{name}:{late}: byte 0xe9 cannot be decoded as utf-8\. Pass --encoding"):
        list(iter_texts(str(tmp_path / name)))


def test_a_text_file_with_nul_bytes_is_refused_as_binary(tmp_path):
    """predict read "great\\x00movie" as a text where train, shift and adapt refuse the file."""
    (tmp_path / "nul.txt").write_bytes(b"great\x00movie\nawful\n")
    for read in (iter_texts, read_texts):
        with pytest.raises(DataError, match=r"nul\.txt: looks like a binary file \(it has NUL bytes\)"):
            list(read(str(tmp_path / "nul.txt")))
    (tmp_path / "u16.txt").write_bytes("great movie\n".encode("utf-16"))  # NUL bytes are normal in UTF-16
    assert list(iter_texts(str(tmp_path / "u16.txt"), encoding="utf-16")) == ["great movie"]


def test_nul_bytes_on_standard_input_are_refused_like_a_file_with_them(monkeypatch):
    """A file with NUL bytes was refused, the same bytes piped in were predicted as "great\\u0000"."""
    import io
    import sys

    from nlp_transfer.cli.predict import stdin_texts
    from nlp_transfer.errors import UserError

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"fine\ngreat\x00\nawful\n")))
    with pytest.raises(UserError, match="standard input, line 2: it holds NUL bytes"):
        list(stdin_texts("utf-8"))


def test_a_tsv_whose_quote_swallows_a_tab_is_read_as_training_reads_it(tmp_path):
    """Training rereads such a TSV with quotes as plain characters; predict refused it (field count) after today's
    check, or read the quoted field whole before it."""
    from nlp_transfer.data.texts import iter_numbered_texts

    path = tmp_path / "glue.tsv"
    path.write_text('sentence\tlabel\n"hello\tpos"\nplain text\tneg\n', encoding="utf-8")
    assert list(iter_numbered_texts(str(path), text_column="sentence")) == [(2, '"hello'), (3, "plain text")]


def test_a_character_cut_short_at_the_end_of_the_file_names_its_line(tmp_path):
    """A file ending mid-character said only that it does not decode: the decoder was never told the file ended."""
    from nlp_transfer.data.texts import iter_numbered_texts
    from nlp_transfer.errors import DataError

    path = tmp_path / "cut.txt"
    path.write_bytes(b"great\nok\ncaf\xc3")
    with pytest.raises(DataError, match=r"cut\.txt:3: byte 0xc3 cannot be decoded as utf-8"):
        list(iter_numbered_texts(str(path)))
