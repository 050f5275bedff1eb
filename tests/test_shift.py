"""nlp-transfer shift: the domain classifier separates different corpora and not halves of one; vocabulary figures;
a run's label shift; the CLI's JSON, files and one-line errors."""

import csv
import json
import random

import numpy as np
import pytest

from nlp_transfer.cli import main
from nlp_transfer.config import load_config
from nlp_transfer.inference import predict
from nlp_transfer.pipeline import run_training
from nlp_transfer.shift import (
    domain_classifier,
    domain_shift,
    label_shift,
    proxy_a_distance,
    tokenizer_view,
    vocabulary_overlap,
    words,
)
from nlp_transfer.shift.command import default_output_dir
from nlp_transfer.shift.domain import shared_copies
from nlp_transfer.shift.embed import load_encoder
from nlp_transfer.shift.measure import draw_sample
from tests.conftest import shared_dataset, synthetic_sentiment, tiny_overrides, write_csv


def shift_cli(capfd, *args):
    """``nlp-transfer shift ARGS`` in this process: (exit code, stdout, stderr), captured at the file descriptors."""
    code = main(["shift", *map(str, args)])
    captured = capfd.readouterr()
    return code, captured.out, captured.err


def write_lines(path, texts):
    path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- the measures on known answers


def test_words_are_lower_cased_and_keep_inner_apostrophes():
    assert words("Don't STOP, it's 2 o'clock_now!") == ["don't", "stop", "it's", "2", "o'clock", "now"]


def test_vocabulary_overlap_on_a_hand_made_pair():
    figures = vocabulary_overlap(["the cat sat", "The cat ran"], ["the dog sat", "a dog"])
    # types: {the, cat, sat, ran} and {the, dog, sat, a}: 2 shared of 6
    assert figures["jaccard_word_types"] == pytest.approx(2 / 6)
    # target tokens: the dog sat a dog; dog twice and a once are unseen in the source
    assert figures["target_tokens_unseen_in_source"] == pytest.approx(3 / 5)
    assert figures["target_types_unseen_in_source"] == pytest.approx(2 / 4)
    same = vocabulary_overlap(["a b c"], ["c b a"])
    assert same["jaccard_word_types"] == 1.0 and same["target_tokens_unseen_in_source"] == 0.0


def test_tokenizer_view_counts_unknown_tokens_pieces_and_lengths(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    view, lengths = tokenizer_view(tokenizer, ["hello world", "unaffable \u2603"])
    # hello | world ; una ##ffa ##ble [UNK] (the snowman is no word, and unknown to the uncased WordPiece vocabulary)
    assert lengths == [2, 4]
    assert view["unknown_tokens"] == 1 and view["unknown_token_rate"] == pytest.approx(1 / 6)
    assert view["subwords_per_word"] == pytest.approx(6 / 4)  # the texts' tokens over their 4 whitespace words
    assert view["length_tokens"]["median"] == 3.0


def test_label_shift_total_variation():
    moved = label_shift(["a", "a", "b", "b"], ["a", "b", "b", "b"], ["a", "b"])
    assert moved["source_shares"] == {"a": 0.5, "b": 0.5} and moved["target_shares"] == {"a": 0.25, "b": 0.75}
    assert moved["total_variation"] == pytest.approx(0.25)
    assert label_shift(["a", "b"], ["b", "a"], ["a", "b"])["total_variation"] == 0.0
    assert label_shift(["a", "a"], ["b", "b"], ["a", "b"])["total_variation"] == 1.0


def test_domain_classifier_on_separable_and_identical_clouds():
    rng = np.random.default_rng(0)
    assert proxy_a_distance(0.0) == 2.0 and proxy_a_distance(0.5) == 0.0
    apart = domain_classifier(rng.normal(0, 1, (100, 8)), rng.normal(4, 1, (100, 8)))
    assert apart.accuracy == 1.0 and apart.proxy_a_distance == 2.0 and len(apart.fold_accuracies) == 5
    alike = domain_classifier(rng.normal(0, 1, (200, 8)), rng.normal(0, 1, (200, 8)))
    assert abs(alike.proxy_a_distance) < 0.4


def test_texts_both_sides_hold_stay_in_one_fold():
    """The same set twice cannot be told apart (0); split across folds, every copy was called the other side (-2)."""
    rng = np.random.default_rng(0)
    cloud = rng.normal(0, 1, (100, 8))
    same = domain_classifier(cloud, cloud.copy())
    assert same.accuracy == 0.5 and same.proxy_a_distance == 0.0  # each pair held out together: one copy right
    shared = rng.normal(0, 1, (50, 8))
    overlapping = domain_classifier(
        np.concatenate([shared, rng.normal(0, 1, (50, 8))]), np.concatenate([shared, rng.normal(3, 1, (50, 8))])
    )
    assert 0.6 < overlapping.accuracy < 0.9  # half shared, half far apart: between chance and certainty
    # a text embedded in another batch (other padding) differs in the 7th decimal: grouped by the texts, it is one text
    noisy = cloud + rng.normal(0, 1e-7, cloud.shape)
    assert abs(domain_classifier(cloud, noisy).proxy_a_distance) < 0.2  # rounded: most copies held together
    names = [f"text {i}" for i in range(100)]
    assert domain_classifier(cloud, noisy, texts=names + names).proxy_a_distance == 0.0


def test_fewer_distinct_texts_than_folds_on_both_sides_score_0_and_one_text_is_refused():
    """Four distinct texts, each on both sides: StratifiedGroupKFold could not make 5 folds of 4 groups and the
    command ended in a traceback; one text repeated on both sides has nothing to tell apart."""
    from nlp_transfer.errors import DataError

    rng = np.random.default_rng(0)
    texts = [f"text {i % 4}" for i in range(40)]
    features = rng.normal(0, 1, (4, 8))[[i % 4 for i in range(40)]]
    few = domain_classifier(features, features.copy(), texts=texts + texts)
    assert few.proxy_a_distance == 0.0 and len(few.fold_accuracies) == 4
    with pytest.raises(DataError, match="one and the same text only"):
        domain_classifier(features[:1].repeat(30, 0), features[:1].repeat(30, 0), texts=["one"] * 60)


def test_multi_label_total_variation_stays_within_one():
    """Shares of multi-label predictions count a text once per label: as they were, the distance reached 1.5."""
    assert label_shift([["a", "b", "c"]] * 10, [[]] * 10, ["a", "b", "c"])["total_variation"] == pytest.approx(1.0)
    assert label_shift([["a", "b"]] * 4, [["a"], ["b"]] * 2, ["a", "b"])["total_variation"] == pytest.approx(0.0)
    assert label_shift([["a"]] * 4, [["b"]] * 4, ["a", "b"])["total_variation"] == pytest.approx(1.0)
    # half the texts losing their label moved half the mass (it read 0: only labelled mass was compared)
    lost = label_shift([["good"], []] * 10, [["good"]] * 20, ["good", "bad"])
    assert lost["total_variation"] == pytest.approx(0.5) and lost["most_moved_label"] == "good"
    assert label_shift([["a"], ["b"]], [["b"], ["a"]], ["a", "b"])["most_moved_label"] is None  # nothing moved


def test_copies_one_side_holds_are_no_group_and_copies_to_the_model_are_one():
    """A side of one repeated text crashed (all its rows in one fold group); texts an uncased model reads alike
    ('GREAT' and 'great', two spacings) fell in different folds with opposite labels (PAD -1.6 for the same texts)."""
    rng = np.random.default_rng(0)
    cloud = rng.normal(0, 1, (60, 8))
    repeated = domain_classifier(
        np.repeat(cloud[:1], 40, axis=0), cloud, texts=["great movie"] * 40 + [str(i) for i in range(60)]
    )
    assert repeated.accuracy > 0.9  # one text against sixty others: told apart
    texts = [f"text {i}" for i in range(60)]
    same_to_model = domain_classifier(cloud, cloud.copy(), texts=texts + [t.upper() for t in texts])
    assert same_to_model.proxy_a_distance == 0.0
    groups = shared_copies(np.array([[1.0], [1.0], [2.0], [2.0]]), np.array([0, 0, 0, 1]))
    assert groups[0] != groups[1] and groups[2] == groups[3]  # copies within one side stay apart


# ----------------------------------------------------------------------------- real corpora, real model


def sst2_sentences():
    with shared_dataset("sst2", "train.tsv").open(encoding="utf-8", newline="") as handle:
        return [row["sentence"].strip() for row in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)]


def trec_questions():
    lines = shared_dataset("trec", "train.txt").read_text(encoding="latin-1").splitlines()
    return [line.split(" ", 1)[1].strip() for line in lines if " " in line]  # drop the COARSE:fine label


def test_shift_separates_two_corpora_and_not_two_halves_of_one():
    sentences, questions = sst2_sentences(), trec_questions()
    random.Random(0).shuffle(sentences)
    random.Random(1).shuffle(questions)
    encoder = load_encoder()  # the packaged all-MiniLM-L6-v2
    different = domain_shift(sentences[:150], questions[:150], encoder=encoder, sample=150)
    halves = domain_shift(sentences[:150], sentences[150:300], encoder=encoder, sample=150)
    assert different.domain_classifier_accuracy > 0.85, different.to_dict()
    assert different.proxy_a_distance > 1.4
    assert abs(halves.proxy_a_distance) < 0.5, halves.to_dict()
    assert different.proxy_a_distance - halves.proxy_a_distance > 1.0
    assert different.vocabulary["jaccard_word_types"] < halves.vocabulary["jaccard_word_types"]


# ----------------------------------------------------------------------------- the command


@pytest.fixture()
def two_files(tmp_path):
    rng = random.Random(0)
    animals = ["cat", "dog", "horse", "bird", "cow"]
    tools = ["hammer", "saw", "drill", "wrench", "chisel"]
    source = [" ".join(rng.choices(animals, k=rng.randint(3, 8))) for _ in range(60)]
    target = [" ".join(rng.choices(tools, k=rng.randint(3, 8))) for _ in range(60)]
    return write_lines(tmp_path / "animals.txt", source), write_lines(tmp_path / "tools.txt", target)


def test_cli_json_is_one_object_and_the_report_files_go_beside_the_target(capfd, tiny_model_dir, two_files):
    source, target = two_files
    code, out, err = shift_cli(capfd, source, target, "--model", tiny_model_dir, "--json")
    assert code == 0, err
    report = json.loads(out)  # the whole of stdout is one JSON object
    assert out.strip().count("\n") == 0
    assert 0.0 <= report["domain_classifier_accuracy"] <= 1.0
    assert report["proxy_a_distance"] == pytest.approx(2 * (1 - 2 * (1 - report["domain_classifier_accuracy"])))
    assert report["texts"] == {"source": 60, "target": 60, "compared_per_side": 60}
    # no word is shared, so the vocabulary figures say so whatever the random model embeds
    assert report["vocabulary"]["jaccard_word_types"] == 0.0
    assert report["vocabulary"]["target_tokens_unseen_in_source"] == 1.0
    folder = default_output_dir(target)
    assert folder == target.parent / "tools-shift"
    assert json.loads((folder / "shift.json").read_text()) == report
    assert (folder / "shift.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_text_report_and_a_table_column(capfd, tiny_model_dir, tmp_path, two_files):
    source, _ = two_files
    table = write_csv(tmp_path / "reviews.csv", [(f"review number {i} of a drill", "x") for i in range(30)], ("body", "y"))
    code, out, err = shift_cli(
        capfd, source, table, "--model", tiny_model_dir, "--text-column", "body", "--output", tmp_path / "report"
    )
    assert code == 0, err
    assert "domain classifier accuracy" in out and "proxy A-distance" in out and "length in tokens" in out
    assert "compared: 30 texts a side" in out
    assert (tmp_path / "report" / "shift.json").is_file()


def bad_input(tmp_path, kind):
    """A target that cannot be compared, and a word its error message must contain."""
    if kind == "missing":
        return tmp_path / "nope.txt", "no such file"
    if kind == "empty":
        return write_lines(tmp_path / "empty.txt", ["", "  "]), "empty"
    if kind == "folder":
        (tmp_path / "texts").mkdir()
        return tmp_path / "texts", "not a saved run"
    if kind == "binary":
        path = tmp_path / "weights.bin"
        path.write_bytes(b"\x00\x01\x02binary\x00" * 50)
        return path, "binary"
    if kind == "no_column":
        return write_csv(tmp_path / "table.csv", [("a text", "x")] * 30, ("body", "y")), "--text-column"
    return write_lines(tmp_path / "few.txt", ["one text", "two texts", "three"]), "at least 20"


@pytest.mark.parametrize("kind", ["missing", "folder", "empty", "binary", "no_column", "too_few"])
def test_bad_target_is_one_line_and_exit_2(capfd, tmp_path, two_files, kind):
    target, expected = bad_input(tmp_path, kind)
    code, out, err = shift_cli(capfd, two_files[0], target, "--model", "/no/such/model")  # fails before any model loads
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and target.name in err and expected in err, err


def test_a_file_given_as_both_sides_is_compared_with_itself_and_a_bad_seed_is_one_line(capfd, tmp_path, tiny_model_dir):
    """The target was drawn with seed + 1: one file of more texts than --sample read as two samples (40 % of its words
    "unseen"); --seed -1 ended in scikit-learn's traceback after every text was embedded."""
    rng = random.Random(0)
    words = [f"w{i}" for i in range(400)]
    file = write_lines(tmp_path / "many.txt", [" ".join(rng.sample(words, 5)) for _ in range(200)])
    code, out, err = shift_cli(
        capfd, file, file, "--model", tiny_model_dir, "--sample", "40", "--json", "--output", tmp_path / "r"
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["vocabulary"]["jaccard_word_types"] == 1.0 and report["proxy_a_distance"] == 0.0
    with pytest.raises(SystemExit) as exit_:  # argparse's usage error
        shift_cli(capfd, file, file, "--model", "/no/such/model", "--seed", "-1")
    err = capfd.readouterr().err
    assert exit_.value.code == 2 and "--seed: must be at least 0" in err, err


def test_too_small_sample_is_refused(capfd, two_files):
    code, _, err = shift_cli(capfd, *two_files, "--sample", "5")
    assert code == 2 and "--sample 5" in err and "at least 20" in err


# ----------------------------------------------------------------------------- a run directory as the source


def test_a_run_as_source_reports_its_predicted_label_shift(capfd, tmp_path, tiny_model_dir):
    train = write_csv(tmp_path / "train.csv", synthetic_sentiment(120, 1))
    validation = write_csv(tmp_path / "validation.csv", synthetic_sentiment(40, 2))
    run_dir = tmp_path / "run"
    files = {"data.train_file": train, "data.validation_file": validation}
    run_training(load_config(None, tiny_overrides(tiny_model_dir, run_dir, **files)))
    capfd.readouterr()  # the training run's own output
    positive = [text for text, label in synthetic_sentiment(60, 3) if label == "positive"]
    target = write_lines(tmp_path / "positive.txt", positive)
    code, out, err = shift_cli(capfd, run_dir, target, "--json", "--output", tmp_path / "report")
    assert code == 0, err
    report = json.loads(out)
    assert report["model"] == str(run_dir) and report["texts"]["source"] == 120
    # both sides are cut to the target's 30 texts: the shares are those of predict on the same drawn texts
    assert report["texts"]["compared_per_side"] == len(positive) == 30
    source_sample = draw_sample([text for text, _ in synthetic_sentiment(120, 1)], 30, seed=0)
    expected = label_shift(
        [row["label"] for row in predict(run_dir, source_sample)],
        [row["label"] for row in predict(run_dir, positive)],
        ["negative", "positive"],
    )
    shift = report["label_shift"]
    assert shift["total_variation"] == pytest.approx(expected["total_variation"])
    assert shift["target_shares"] == pytest.approx(expected["target_shares"])


def test_an_ner_runs_source_texts_leave_out_its_held_out_validation(tmp_path):
    """An NER run as SOURCE read its whole training file: the validation sentences it held out were counted too."""
    from nlp_transfer.config import save_config
    from nlp_transfer.shift.sources import run_training_texts

    documents = [f"-DOCSTART- O\n\nDoc{d} B-PER\nspoke O\n\nDoc{d}b B-LOC\nwaited O\n" for d in range(10)]
    (tmp_path / "train.conll").write_text("\n".join(documents), encoding="utf-8")
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}", encoding="utf-8")
    save_config(load_config(None, ["task=ner", f"data.train_file={tmp_path / 'train.conll'}", "seed=3"]), run / "config.yaml")
    texts = run_training_texts(run)
    assert 0 < len(texts) < 20 and len(texts) % 2 == 0  # whole documents of two sentences went to validation


def test_a_runs_source_texts_leave_out_its_pseudo_labelled_file(tmp_path):
    """data.pseudo_labeled_file rows (often the target's own texts) were counted as the run's source texts."""
    from nlp_transfer.config import save_config
    from nlp_transfer.shift.sources import run_training_texts

    train = write_csv(tmp_path / "train.csv", synthetic_sentiment(40, 1))
    pseudo = tmp_path / "pseudo.jsonl"
    pseudo.write_text("".join(json.dumps({"text": f"target text {i}", "label": "positive"}) + "\n" for i in range(30)))
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}", encoding="utf-8")
    overrides = [f"data.train_file={train}", f"data.pseudo_labeled_file={pseudo}", "data.validation_split=0.25"]
    save_config(load_config(None, overrides), run / "config.yaml")
    texts = run_training_texts(run)
    assert len(texts) == 30 and not any(text.startswith("target text") for text in texts)


def test_a_line_of_a_text_file_stays_one_text_whatever_it_holds(tmp_path):
    """str.splitlines cut a line at U+2028 or a form feed: 3 lines counted 5 texts in shift (and in adapt)."""
    from nlp_transfer.adapt.texts import read_file_texts
    from nlp_transfer.config import DataConfig
    from nlp_transfer.shift.sources import read_text_file

    path = tmp_path / "texts.txt"
    path.write_text("one\u2028still the first\nsecond\fpage\nthird\n", encoding="utf-8")
    expected = ["one\u2028still the first", "second\fpage", "third"]
    assert read_text_file(path) == expected
    assert [t for t in read_file_texts(str(path), DataConfig(train_file=str(path)))[0] if t] == expected
