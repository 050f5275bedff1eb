"""nlp-transfer check: options refused before the run loads, which rows count as the fitting ones, multi-label slices."""

from types import SimpleNamespace

import numpy as np
import pytest

from nlp_transfer.check.command import CheckOptions, check_run, drift_figures, held_out_slices, same_rows
from nlp_transfer.check.run_calibration import Scored
from nlp_transfer.errors import UserError
from tests.test_cli import cli_in_process

SUITE = "tests: [{name: café, kind: label, label: positive, cases: ['a fine film']}]\n"


def test_bad_bins_are_refused_before_the_run_is_loaded(tmp_path, capsys):
    """--bins 0 failed only once the rows were scored; now it fails first (the missing run would fail next)."""
    with pytest.raises(UserError, match=r"^--bins 0: the calibration error needs at least 1 confidence bin"):
        check_run(tmp_path / "no-such-run", bins=0)
    code, _, err = cli_in_process(capsys, "check", tmp_path, "--bins", "-3")
    assert code == 2 and "--bins -3:" in err and err.count("\n") == 1, err


@pytest.mark.parametrize(
    ("encoding", "message"),
    [("latin-1", r"suite\.yaml:1: byte 0xe9 is not UTF-8; .*Re-save the suite file as UTF-8"), ("utf-16", r"UTF-16 text")],
)
def test_a_suite_that_is_not_utf8_is_one_line_before_the_run_is_loaded(tmp_path, capsys, encoding, message):
    """A latin-1 or UTF-16 suite raised UnicodeDecodeError (exit 1) after the model had loaded."""
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE, encoding=encoding)
    with pytest.raises(UserError, match=message):
        check_run(tmp_path / "no-such-run", suites=[str(suite)])
    code, _, err = cli_in_process(capsys, "check", tmp_path / "no-such-run", "--suite", suite)
    assert code == 2 and "Traceback" not in err and err.count("\n") == 1 and str(suite) in err, err
    suite.write_text(SUITE, encoding="utf-8-sig")  # a byte-order mark is still UTF-8
    with pytest.raises(UserError, match="no-such-run"):  # the suite is read; the missing run stops the check next
        check_run(tmp_path / "no-such-run", suites=[str(suite)])


def test_the_drift_file_is_read_with_its_encoding_before_the_run_is_loaded(tmp_path, monkeypatch, capsys):
    """--encoding never reached the drift file, and its message named the config key data.encoding."""
    drift = tmp_path / "drift.txt"
    drift.write_text("un café très bon\nune soirée ratée\n", encoding="latin-1")
    with pytest.raises(UserError, match=r"drift\.txt:1: .*--encoding") as caught:
        check_run(tmp_path / "no-such-run", drift=str(drift))
    assert "data.encoding" not in str(caught.value)
    with pytest.raises(UserError, match="no-such-run"):  # decoded as asked: only the missing run is left to refuse
        check_run(tmp_path / "no-such-run", drift=str(drift), drift_encoding="latin-1")
    seen = {}

    def fake_shift(run_dir, target, **options):
        seen.update(options)
        raise RuntimeError("stop")

    monkeypatch.setattr("nlp_transfer.shift.command.run_shift", fake_shift)
    with pytest.raises(RuntimeError, match="stop"):
        drift_figures(tmp_path, CheckOptions(drift=str(drift), drift_encoding="latin-1"))
    assert seen["encoding"] == "latin-1"
    # and from the command line: --encoding reaches the drift file (only the missing run is left to refuse)
    code, _, err = cli_in_process(capsys, "check", str(tmp_path / "no-such-run"), "--drift", str(drift), "--encoding", "latin-1")
    assert code == 2 and "no-such-run" in err and "decode" not in err, err
    code, _, err = cli_in_process(capsys, "check", str(tmp_path / "no-such-run"), "--drift", str(drift))
    assert code == 2 and "--encoding" in err, err


def scored(texts, labels, source="rows"):
    labels = np.asarray(labels)
    return Scored(np.zeros((len(texts), 2)), labels, source, list(texts), list(range(2, len(texts) + 2)))


def test_the_same_rows_are_the_same_text_and_label_pairs_in_any_order():
    """Texts alone decided it: a relabelled copy of validation counted as validation, a reordered one did not."""
    texts, labels = ["a", "b", "b", "c"], [0, 1, 0, 1]
    fit = scored(texts, labels)
    assert same_rows(fit, fit)
    assert same_rows(scored(texts[::-1], labels[::-1]), fit)  # reversed: the same rows
    assert not same_rows(scored(texts, [1 - y for y in labels]), fit)  # the same texts, every label flipped
    assert same_rows(scored(texts, [0, 0, 1, 1]), fit)  # the two "b" rows swap places: the same pairs
    assert not same_rows(scored(texts, [1, 1, 0, 0]), fit)  # as many of each label, on other texts
    assert not same_rows(scored(texts[:3], labels[:3]), fit)
    multi = np.array([[1, 0], [1, 1], [0, 0]])
    assert same_rows(scored(["x", "y", "z"][::-1], multi[::-1]), scored(["x", "y", "z"], multi))
    assert not same_rows(scored(["x", "y", "z"], multi[:, ::-1]), scored(["x", "y", "z"], multi))


def test_multi_label_label_slices_are_each_labels_recall():
    """Label slices of a multi-label run were exact-match accuracy per label combination (``bad|good``)."""
    task = SimpleNamespace(multi_label=True, threshold=0.5, labels=["bad", "good"])
    gold = np.array([[1, 0], [1, 1], [1, 1], [0, 1], [0, 0], [0, 0]])
    decided = np.array([[1, 1], [1, 0], [1, 1], [0, 1], [0, 0], [1, 0]])  # bad: found 3 of 3, good: 2 of 3
    rows = Scored(np.where(decided == 1, 4.0, -4.0), gold, "rows", ["a b", "c d", "e f", "g h", "i j", "k l"], None)
    report = held_out_slices(rows, task, None, None)
    assert report["by"]["label"] == {
        "(none)": {"count": 2, "accuracy": 0.5},
        "bad": {"count": 3, "accuracy": 1.0},
        "good": {"count": 3, "accuracy": pytest.approx(2 / 3)},
    }
    assert report["accuracy"] == pytest.approx(3 / 6) and report["rows"] == 6  # exact matches of whole rows
    single = SimpleNamespace(multi_label=False, labels=["neg", "pos"])
    logits = np.array([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0]])
    plain = held_out_slices(Scored(logits, np.array([0, 1, 1]), "rows", ["a", "b", "c"]), single, None, None)
    assert plain["by"]["label"] == {"neg": {"count": 1, "accuracy": 1.0}, "pos": {"count": 2, "accuracy": 0.5}}
