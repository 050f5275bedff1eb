"""Self-training: which pseudo-labels are kept, where they go, and a teacher-student run that learns and resumes."""

import json

import numpy as np
import pytest

from nlp_transfer.config import load_config
from nlp_transfer.data.pseudo_labels import PseudoLabel, class_shares, select_pseudo_labels, write_pseudo_labels
from nlp_transfer.data.text_rows import load_text_classification_data
from nlp_transfer.errors import ConfigError, DataError
from tests.conftest import REPO, synthetic_sentiment, tiny_overrides, write_csv

LABELS = ["negative", "positive"]


def test_only_confident_predictions_are_kept_most_confident_first_in_text_order():
    texts = [f"t{i}" for i in range(6)]
    probabilities = np.array([[0.95, 0.05], [0.6, 0.4], [0.05, 0.95], [0.02, 0.98], [0.91, 0.09], [0.5, 0.5]])
    kept = select_pseudo_labels(texts, probabilities, LABELS, threshold=0.9)
    assert [(p.text, p.label) for p in kept] == [("t0", "negative"), ("t2", "positive"), ("t3", "positive"), ("t4", "negative")]
    assert all(p.score >= 0.9 for p in kept)
    capped = select_pseudo_labels(texts, probabilities, LABELS, threshold=0.9, max_per_class=1)
    assert [p.text for p in capped] == ["t0", "t3"]  # the most confident of each class, back in text order


def test_balance_keeps_the_labelled_class_shares_limited_by_the_scarcest_class():
    rng = np.random.default_rng(0)
    positive = rng.uniform(0.9, 1.0, 40)  # 40 confident positives, 10 confident negatives
    negative = rng.uniform(0.9, 1.0, 10)
    probabilities = np.concatenate([np.stack([1 - positive, positive], 1), np.stack([negative, 1 - negative], 1)])
    texts = [f"t{i}" for i in range(50)]
    even = select_pseudo_labels(texts, probabilities, LABELS, threshold=0.9, class_shares={"negative": 0.5, "positive": 0.5})
    counts = {name: sum(p.label == name for p in even) for name in LABELS}
    assert counts == {"negative": 10, "positive": 10}
    kept_positive = sorted(p.score for p in even if p.label == "positive")
    assert kept_positive == sorted(positive)[-10:]  # the ten most confident positives
    skewed = select_pseudo_labels(texts, probabilities, LABELS, threshold=0.9, class_shares={"negative": 0.2, "positive": 0.8})
    assert {name: sum(p.label == name for p in skewed) for name in LABELS} == {"negative": 10, "positive": 40}
    none_confident = select_pseudo_labels(
        texts[:40], probabilities[:40], LABELS, threshold=0.9, class_shares=class_shares(LABELS)
    )
    assert none_confident == []  # no confident negative: keeping positives alone would unbalance the training set


def test_pseudo_labels_join_the_training_split_only(tmp_path):
    train = write_csv(tmp_path / "train.csv", synthetic_sentiment(60, 1))
    pseudo = tmp_path / "pseudo.jsonl"
    write_pseudo_labels(pseudo, [PseudoLabel("superb great film", "positive", 0.97), PseudoLabel("awful plot", "negative", 0.93)])
    plain = load_config(None, [f"data.train_file={train}"])
    with_pseudo = load_config(None, [f"data.train_file={train}", f"data.pseudo_labeled_file={pseudo}"])
    before, after = load_text_classification_data(plain.data), load_text_classification_data(with_pseudo.data)
    assert after.splits["validation"]["text"] == before.splits["validation"]["text"]  # the hold-out is unchanged
    assert after.splits["train"]["text"] == [*before.splits["train"]["text"], "superb great film", "awful plot"]
    assert after.splits["train"]["label"][-2:] == ["positive", "negative"] and after.pseudo_labeled == 2


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"text": "fine", "label": "neutral"}', "pseudo.jsonl:2: label 'neutral' is not one of"),
        ("not json", "pseudo.jsonl:2: expected"),
    ],
)
def test_a_bad_pseudo_label_file_names_its_line(tmp_path, line, message):
    train = write_csv(tmp_path / "train.csv", synthetic_sentiment(40, 1))
    pseudo = tmp_path / "pseudo.jsonl"
    pseudo.write_text('{"text": "great", "label": "positive"}\n' + line + "\n", encoding="utf-8")
    config = load_config(None, [f"data.train_file={train}", f"data.pseudo_labeled_file={pseudo}"])
    with pytest.raises(DataError, match=message):
        load_text_classification_data(config.data)


def test_a_number_in_a_pseudo_label_file_is_read_as_the_label_it_spells_or_refused_plainly(tmp_path):
    """Planted fault: ``1`` against the labels ['0', '1'] said "label 1 is not one of the run's labels ['0', '1']"."""
    rows = [(text, {"negative": "0", "positive": "1"}[label]) for text, label in synthetic_sentiment(40, 1)]
    train = write_csv(tmp_path / "train.csv", rows)
    pseudo = tmp_path / "pseudo.jsonl"
    pseudo.write_text('{"text": "a fine film", "label": 1}\n', encoding="utf-8")
    config = load_config(None, [f"data.train_file={train}", f"data.pseudo_labeled_file={pseudo}"])
    assert load_text_classification_data(config.data).splits["train"]["label"][-1] == "1"
    huge = tmp_path / "huge.jsonl"  # float() of it overflowed: a traceback in place of the refusal
    huge.write_text('{"text": "a fine film", "label": 1' + "0" * 400 + "}\n", encoding="utf-8")
    config = load_config(None, [f"data.train_file={train}", f"data.pseudo_labeled_file={huge}"])
    with pytest.raises(DataError, match=r"huge\.jsonl:1: label 10+ is a number, and pseudo-label files name labels"):
        load_text_classification_data(config.data)
    named = write_csv(tmp_path / "named.csv", synthetic_sentiment(40, 1))
    config = load_config(None, [f"data.train_file={named}", f"data.pseudo_labeled_file={pseudo}"])
    with pytest.raises(DataError, match=r"pseudo\.jsonl:1: label 1 is a number, and pseudo-label files name labels"):
        load_text_classification_data(config.data)


def test_a_hand_made_pseudo_label_file_holding_test_texts_is_warned_about(tmp_path, caplog):
    """Planted fault: labels made elsewhere that include test texts joined the training split without a word, while
    the same rows in the training file were warned about (the test score then measures memory)."""
    train = write_csv(tmp_path / "train.csv", synthetic_sentiment(40, 1))
    test_rows = synthetic_sentiment(30, 3)
    test = write_csv(tmp_path / "test.csv", test_rows)
    pseudo = tmp_path / "made_elsewhere.jsonl"
    write_pseudo_labels(pseudo, [PseudoLabel(text, label, 1.0) for text, label in test_rows[:7]])
    config = load_config(None, [f"data.train_file={train}", f"data.test_file={test}", f"data.pseudo_labeled_file={pseudo}"])
    with caplog.at_level("WARNING"):
        load_text_classification_data(config.data)
    assert "test.csv: 7 of its 30 texts (23.3%) are also training texts (" in caplog.text
    assert "made_elsewhere.jsonl" in caplog.text


def test_self_training_is_refused_for_other_tasks():
    with pytest.raises(ConfigError, match=r"data\.unlabeled_file is for task=classification"):
        load_config(None, ["task=ner", "data.train_file=x.conll", "data.unlabeled_file=u.txt"])
    with pytest.raises(ConfigError, match=r"data\.pseudo_labeled_file and data\.unlabeled_file both set"):  # was ignored
        load_config(None, ["data.train_file=x.csv", "data.unlabeled_file=u.txt", "data.pseudo_labeled_file=p.jsonl"])


def test_a_cap_per_class_keeps_the_class_shares():
    """max_per_class=20 over 34/102 confident labels at shares 25/75 kept 20/20: the cap now applies before the shares."""
    rng = np.random.default_rng(1)
    negative, positive = rng.uniform(0.9, 1.0, 34), rng.uniform(0.9, 1.0, 102)
    probabilities = np.concatenate([np.stack([negative, 1 - negative], 1), np.stack([1 - positive, positive], 1)])
    texts = [f"t{i}" for i in range(136)]
    shares = {"negative": 0.25, "positive": 0.75}
    kept = select_pseudo_labels(texts, probabilities, LABELS, threshold=0.9, class_shares=shares, max_per_class=20)
    assert {name: sum(p.label == name for p in kept) for name in LABELS} == {"negative": 6, "positive": 20}


def test_first_training_rows_of_one_class_are_refused(tmp_path):
    """data.train_size over a file sorted by label trained on its first class alone, without a word."""
    rows = sorted(synthetic_sentiment(40, 1), key=lambda row: row[1])
    train = write_csv(tmp_path / "train.csv", rows)
    config = load_config(None, [f"data.train_file={train}", f"data.validation_file={train}", "data.train_size=10"])
    with pytest.raises(DataError, match=r"data\.train_size=10: the first 10 training rows .* hold 1 class"):
        load_text_classification_data(config.data)


def test_unlabelled_texts_that_a_labelled_split_holds_are_left_out(tmp_path):
    """A validation or test text pseudo-labelled and trained on would make its score a seen example's."""
    from nlp_transfer.self_training import labelled_splits, unlabeled_texts_apart_from_labelled

    train = write_csv(tmp_path / "train.csv", synthetic_sentiment(60, 1))
    test = write_csv(tmp_path / "test.csv", synthetic_sentiment(30, 3))
    config = load_config(None, [f"data.train_file={train}", f"data.test_file={test}", "data.validation_split=0.25"])
    splits = labelled_splits(config)
    held = [splits["validation"]["text"][0], splits["test"]["text"][0], splits["train"]["text"][0]]
    new = ["a text no split holds", "another unseen review"]
    unlabeled = tmp_path / "unlabeled.csv"
    lines = [(held[0], ""), ("", ""), (new[0], ""), (f"  {held[1]} ", ""), (held[2], ""), (new[1], ""), (f"{new[0]} ", "")]
    write_csv(unlabeled, lines)
    config = load_config(None, [f"data.train_file={train}", f"data.test_file={test}", f"data.unlabeled_file={unlabeled}"])
    texts, left_out, repeated = unlabeled_texts_apart_from_labelled(config, splits)
    # the blank cell skipped, the three labelled texts left out, and the repeat of new[0] (planted fault: each copy
    # was pseudo-labelled and trained on, and copies filled a class's share under balance)
    assert texts == new and left_out == 3 and repeated == 1
    everything = tmp_path / "labelled.txt"
    everything.write_text("\n".join(held) + "\n", encoding="utf-8")
    config = load_config(None, [f"data.train_file={train}", f"data.test_file={test}", f"data.unlabeled_file={everything}"])
    with pytest.raises(DataError, match="every text is also in a labelled split"):
        unlabeled_texts_apart_from_labelled(config, splits)


@pytest.mark.parametrize("kind", ["missing", "binary", "json_list"])
def test_a_bad_unlabelled_file_is_refused_before_overwrite_removes_the_earlier_run(tmp_path, capsys, monkeypatch, kind):
    from nlp_transfer.cli import main

    bad = {"missing": tmp_path / "nope.txt", "binary": tmp_path / "texts.txt", "json_list": tmp_path / "texts.jsonl"}[kind]
    if kind == "binary":
        bad.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    elif kind == "json_list":
        bad.write_text('{"text": "fine"}\n{"text": null}\n{"text": ["a", "b"]}\n', encoding="utf-8")
    earlier = tmp_path / "run"
    earlier.mkdir()
    (earlier / "config.yaml").write_text("task: classification\n", encoding="utf-8")
    (earlier / "model.safetensors").write_bytes(b"an earlier run's weights")
    monkeypatch.chdir(REPO)
    code = main(["train", "tests/bad_inputs/good.yaml", f"data.unlabeled_file={bad}", f"output_dir={earlier}", "--overwrite"])
    err = capsys.readouterr().err.strip()
    expected = {"missing": "no such file", "binary": "binary file", "json_list": "texts.jsonl:3: the text is a JSON list"}
    assert code == 2 and err.count("\n") == 0 and expected[kind] in err, err
    assert (earlier / "model.safetensors").read_bytes() == b"an earlier run's weights"


@pytest.fixture(scope="module")
def self_trained(tmp_path_factory, tiny_model_dir):
    """A teacher on 40 labelled rows, one round of pseudo-labels on 400 unlabelled texts, a student on both."""
    from nlp_transfer.pipeline import run_training

    base = tmp_path_factory.mktemp("self-training")
    train = write_csv(base / "train.csv", synthetic_sentiment(60, 1))
    test = write_csv(base / "test.csv", synthetic_sentiment(200, 3))
    unlabeled = synthetic_sentiment(400, 2)
    (base / "unlabeled.txt").write_text("\n".join(text for text, _ in unlabeled) + "\n", encoding="utf-8")
    overrides = tiny_overrides(
        tiny_model_dir,
        base / "run",
        **{
            "data.train_file": train,
            "data.test_file": test,
            "data.validation_split": 0.3,
            "data.unlabeled_file": base / "unlabeled.txt",
            "self_training.threshold": 0.9,
            "training.epochs": 10,
            "training.learning_rate": 3e-3,
            "training.eval_strategy": "steps",  # the teacher's first perfect epoch is still unsure: evaluate late
            "training.eval_steps": 30,
        },
    )
    result = run_training(load_config(None, overrides))
    return result, base, dict(unlabeled)


def test_a_round_keeps_confident_balanced_labels_and_the_student_learns(self_trained):
    result, base, truth = self_trained
    run = base / "run"
    rounds = result.info["self_training"]["rounds"]
    assert [r["round"] for r in rounds] == [0, 1] and result.info["self_training"]["unlabeled_texts"] == 400
    chosen = [json.loads(line) for line in (run / "self_training/pseudo_labels_round_1.jsonl").read_text().splitlines()]
    assert len(chosen) == rounds[1]["pseudo_labels"] >= 40
    assert all(row["score"] >= 0.9 for row in chosen)
    counts = rounds[1]["pseudo_labels_per_class"]
    assert abs(counts["positive"] - counts["negative"]) <= 1  # the labelled rows are half and half
    assert np.mean([truth[row["text"]] == row["label"] for row in chosen]) >= 0.8  # the teacher learned
    assert result.info["pseudo_labeled_examples"] == len(chosen)
    assert result.info["examples"]["train"] == rounds[0]["examples"]["train"] + len(chosen)
    assert result.metrics["test"]["accuracy"] >= 0.75  # the student learned (chance: 0.5)


def test_only_the_last_round_scores_the_test_split_and_teachers_keep_no_weights(self_trained):
    _, base, _ = self_trained
    run = base / "run"
    teacher = run / "self_training/round_0"
    assert "test" not in json.loads((teacher / "metrics.json").read_text())
    assert not list(teacher.glob("*.safetensors")) and (teacher / "run_info.json").is_file()
    assert (run / "model.safetensors").is_file() and "test" in json.loads((run / "metrics.json").read_text())
    assert "unlabeled_file" in (run / "config.yaml").read_text()  # the run's own config, not the last round's


def test_resume_reuses_finished_rounds(self_trained, tiny_model_dir, monkeypatch):
    """Round 0 finished and round 1's labels written: a resumed run trains round 1 only, on the same labels."""
    from nlp_transfer import self_training
    from nlp_transfer.config import load_config as load
    from nlp_transfer.pipeline import run_training

    _, base, _ = self_trained
    run = base / "run"
    config = load(run / "config.yaml")
    labels_before = (run / "self_training/pseudo_labels_round_1.jsonl").read_text()
    (run / "metrics.json").unlink()  # killed before the last round's files moved up: the run is not complete
    round_0_written = (run / "self_training/round_0/metrics.json").stat().st_mtime_ns
    trained = []
    real_train = self_training.train_round

    def counting(config, round_dir, *args, **kwargs):
        trained.append(round_dir.name)
        return real_train(config, round_dir, *args, **kwargs)

    monkeypatch.setattr(self_training, "train_round", counting)
    monkeypatch.setattr(self_training, "teacher_probabilities", lambda *a: pytest.fail("the labels were already chosen"))
    teacher_weights = run / "self_training/round_0/model.safetensors"
    teacher_weights.write_bytes(b"stopped after the labels were written, before the weights were deleted")
    result = run_training(config, resume=True)
    assert not teacher_weights.exists()  # the resumed run deletes them (they stayed for good)
    assert trained == ["round_0", "round_1"]  # round_0 is read back (its metrics.json), not retrained
    assert (run / "self_training/round_0/metrics.json").stat().st_mtime_ns == round_0_written
    assert (run / "self_training/pseudo_labels_round_1.jsonl").read_text() == labels_before
    assert result.metrics["test"]["accuracy"] >= 0.75


def test_a_run_stopped_while_its_last_round_moves_up_is_completed_by_resume(self_trained, tmp_path, monkeypatch):
    """Killed between moving the last round's files up: the folder held metrics.json and no model, --resume called it
    complete and predict no model; or config and run_info were the last round's. Resume now finishes the move."""
    import os
    import shutil

    from nlp_transfer import self_training
    from nlp_transfer.pipeline import run_training

    _, base, _ = self_trained
    run = tmp_path / "run"
    shutil.copytree(base / "run", run)
    finished = json.loads((run / "run_info.json").read_text())
    last = run / "self_training" / "round_1"
    last.mkdir(exist_ok=True)
    for name in ("model.safetensors", "metrics.json"):  # these had not moved up yet
        os.replace(run / name, last / name)
    round_info = {k: v for k, v in finished.items() if k != "self_training"}
    (run / "run_info.json").write_text(json.dumps(round_info))  # the last round's, moved up but not yet completed
    (run / self_training.FINISHING).write_text(json.dumps({"last_round": "round_1", "summary": finished["self_training"]}))
    monkeypatch.setattr(self_training, "train_round", lambda *a, **k: pytest.fail("every round had finished"))
    from nlp_transfer.errors import UserError

    with pytest.raises(UserError, match=r"training\.learning_rate changed"):  # finished with other settings: refused
        run_training(load_config(run / "config.yaml", [f"output_dir={run}", "training.learning_rate=0.5"]), resume=True)
    assert (run / self_training.FINISHING).is_file()
    result = run_training(load_config(run / "config.yaml", [f"output_dir={run}"]), resume=True)
    assert (run / "model.safetensors").is_file() and (run / "metrics.json").is_file() and not list(last.iterdir())
    assert not (run / self_training.FINISHING).exists()
    assert result.info["self_training"] == finished["self_training"]
    assert result.metrics == json.loads((base / "run" / "metrics.json").read_text())


def test_a_round_without_any_confident_pseudo_label_says_so(tmp_path, monkeypatch, capsys):
    """Seen on SST-2 (BENCHMARKS.md, nineteenth session): a silent empty round retrains the labelled-only model."""
    from types import SimpleNamespace

    from nlp_transfer import self_training

    unsure = np.array([[0.6, 0.4], [0.3, 0.7], [0.55, 0.45]])
    monkeypatch.setattr(self_training, "teacher_probabilities", lambda *args: (unsure, ["negative", "positive"]))
    config = load_config(None, ["data.train_file=x.csv", "self_training.threshold=0.9"])
    state = SimpleNamespace(is_main_process=True, wait_for_everyone=lambda: None, print=print)
    path = tmp_path / "pseudo_labels_round_1.jsonl"
    record = self_training.pseudo_label_round(config, tmp_path, ["a", "b", "c"], None, path, state)
    assert record["pseudo_labels"] == 0
    assert "warning: no pseudo-label reached self_training.threshold=0.9" in capsys.readouterr().out
    monkeypatch.setattr(
        self_training, "teacher_probabilities", lambda *args: (unsure * 0 + [[0.95, 0.05]], ["negative", "positive"])
    )
    path.unlink()
    self_training.pseudo_label_round(config, tmp_path, ["a", "b", "c"], None, path, state)
    assert "warning" not in capsys.readouterr().out


def test_rounds_stop_at_a_teacher_without_pseudo_labels_and_it_scores_the_test(tmp_path, tiny_model_dir, monkeypatch):
    """Round 2's teacher (round 1) labels nothing: round 1 stays the run's model and scores the test split once.

    Before this, round 2 trained on the labelled rows alone and silently replaced round 1 by round 0's model again.
    """
    from nlp_transfer import self_training
    from nlp_transfer.pipeline import run_training

    train = write_csv(tmp_path / "train.csv", synthetic_sentiment(60, 1))
    test = write_csv(tmp_path / "test.csv", synthetic_sentiment(100, 3))
    unlabeled = synthetic_sentiment(80, 2)
    (tmp_path / "unlabeled.txt").write_text("\n".join(text for text, _ in unlabeled) + "\n", encoding="utf-8")
    truth = np.array([[0.02, 0.98] if label == "positive" else [0.97, 0.03] for _, label in unlabeled])
    answers = iter([truth, np.full_like(truth, 0.5)])  # round 1's teacher is sure of every text, round 2's of none
    monkeypatch.setattr(self_training, "teacher_probabilities", lambda *args: (next(answers), ["negative", "positive"]))
    trained = []
    real_train = self_training.train_round
    monkeypatch.setattr(
        self_training,
        "train_round",
        lambda config, round_dir, *a, **k: trained.append(round_dir.name) or real_train(config, round_dir, *a, **k),
    )
    extra = {"data.train_file": train, "data.test_file": test, "data.validation_split": 0.3, "data.max_eval_samples": 60}
    extra |= {"data.unlabeled_file": tmp_path / "unlabeled.txt", "self_training.rounds": 2, "training.epochs": 6}
    result = run_training(
        load_config(None, tiny_overrides(tiny_model_dir, tmp_path / "run", **extra, **{"training.learning_rate": 3e-3}))
    )

    run = tmp_path / "run"
    summary = result.info["self_training"]
    assert trained == ["round_0", "round_1"] and summary["stopped_at_round"] == 2
    assert (run / "self_training/pseudo_labels_round_2.jsonl").read_text() == ""
    assert [r["round"] for r in summary["rounds"]] == [0, 1] and summary["rounds"][1]["pseudo_labels"] == 80
    assert summary["stopping_round"]["round"] == 2 and summary["stopping_round"]["pseudo_labels"] == 0  # was not recorded
    assert result.info["examples"]["train"] == summary["rounds"][0]["examples"]["train"] + 80  # round 1's student
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["validation"] == summary["rounds"][1]["validation"]
    assert metrics["test"] == result.metrics["test"] and result.metrics["test"]["accuracy"] >= 0.75
    assert sum(map(sum, metrics["test"]["confusion_matrix"]["matrix"])) == 60  # data.max_eval_samples (it scored 100)
    assert (run / "model.safetensors").is_file() and (run / "confusion_matrix_test.png").is_file()
    assert not list((run / "self_training/round_0").glob("*.safetensors"))
    assert not (run / "data_files.json").exists()  # the run's data record, which --resume checks, goes with the finish


def test_overwrite_gives_the_earlier_run_back_when_round_0_fails_and_keeps_a_finished_round_for_resume(
    tmp_path, tiny_model_dir, capsys, monkeypatch
):
    """--overwrite of a self-training run moves the earlier run aside only while nothing resumable exists."""
    from nlp_transfer.cli import main
    from nlp_transfer.errors import UserError
    from nlp_transfer.output_dir import replaced_path
    from nlp_transfer.transfer.full import FullFineTuning

    train = write_csv(tmp_path / "train.csv", synthetic_sentiment(40, 1))
    (tmp_path / "unlabeled.txt").write_text("\n".join(t for t, _ in synthetic_sentiment(50, 2)) + "\n", encoding="utf-8")
    earlier = tmp_path / "run"
    earlier.mkdir()
    (earlier / "config.yaml").write_text("task: classification\n", encoding="utf-8")
    (earlier / "model.safetensors").write_bytes(b"an earlier run's weights")
    overrides = tiny_overrides(
        tiny_model_dir,
        earlier,
        **{"data.train_file": train, "data.validation_split": 0.25, "data.unlabeled_file": tmp_path / "unlabeled.txt"},
    )
    monkeypatch.chdir(REPO)

    def planted(*args, **kwargs):
        raise UserError("planted failure")

    with monkeypatch.context() as patch:
        patch.setattr(FullFineTuning, "train", planted)
        assert main(["train", "recipes/configs/sentiment/minilm_full.yaml", *overrides, "--overwrite"]) == 2
    assert "planted" in capsys.readouterr().err
    assert sorted(p.name for p in earlier.iterdir()) == ["config.yaml", "model.safetensors"]
    assert (earlier / "model.safetensors").read_bytes() == b"an earlier run's weights" and not replaced_path(earlier).exists()

    with monkeypatch.context() as patch:  # round 0 finishes, then the pseudo-labelling fails: the run stays to resume
        patch.setattr("nlp_transfer.self_training.pseudo_label_round", planted)
        assert main(["train", "recipes/configs/sentiment/minilm_full.yaml", *overrides, "--overwrite"]) == 2
    assert (earlier / "self_training/round_0/metrics.json").is_file()
    assert (replaced_path(earlier) / "model.safetensors").read_bytes() == b"an earlier run's weights"
    assert main(["train", "recipes/configs/sentiment/minilm_full.yaml", *overrides, "--resume"]) == 0
    assert (earlier / "metrics.json").is_file() and (earlier / "run_info.json").is_file()
    assert not replaced_path(earlier).exists()  # the finished run no longer needs the earlier one


def test_a_round_stopped_before_its_first_checkpoint_resumes_and_changed_settings_are_refused(
    tmp_path, tiny_model_dir, capsys, monkeypatch
):
    """Round 1 stopped before its first checkpoint: --resume said "no complete checkpoint" and the advice (--overwrite)
    retrained round 0. Now the round starts again, and a resume with changed settings is refused between rounds too."""
    from nlp_transfer.cli import main
    from nlp_transfer.transfer.full import FullFineTuning

    train = write_csv(tmp_path / "train.csv", synthetic_sentiment(40, 1))
    (tmp_path / "unlabeled.txt").write_text("\n".join(t for t, _ in synthetic_sentiment(30, 2)) + "\n", encoding="utf-8")
    run = tmp_path / "run"
    overrides = tiny_overrides(
        tiny_model_dir,
        run,
        **{
            "data.train_file": train,
            "data.validation_split": 0.25,
            "data.unlabeled_file": tmp_path / "unlabeled.txt",
            "self_training.threshold": 0.5,  # two classes: every text is labelled, so round 1 trains
            "self_training.balance": "false",
        },
    )
    config = "recipes/configs/sentiment/minilm_full.yaml"
    monkeypatch.chdir(REPO)
    real, calls = FullFineTuning.train, []

    def stop_in_round_1(self, training_run):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C in round 1, before its first checkpoint
        return real(self, training_run)

    with monkeypatch.context() as patch:
        patch.setattr(FullFineTuning, "train", stop_in_round_1)
        assert main(["train", config, *overrides]) == 130
    assert "rerun with --resume" in capsys.readouterr().err  # it said "nothing to resume": round 0 had finished
    assert (run / "self_training/round_0/metrics.json").is_file() and (run / "self_training/round_1/config.yaml").is_file()
    assert main(["train", config, *overrides, "training.learning_rate=5e-4", "--resume"]) == 2
    assert "training.learning_rate" in capsys.readouterr().err
    unlabeled = (tmp_path / "unlabeled.txt").read_text(encoding="utf-8")
    (tmp_path / "unlabeled.txt").write_text("a new text\n" + unlabeled, encoding="utf-8")  # another file: mixed labels
    assert main(["train", config, *overrides, "--resume"]) == 2
    err = capsys.readouterr().err
    assert "data.unlabeled_file=" in err and "changed since the run started" in err, err
    (tmp_path / "unlabeled.txt").write_text(unlabeled, encoding="utf-8")
    assert main(["train", config, *overrides, "--resume"]) == 0, capsys.readouterr().err
    info = json.loads((run / "run_info.json").read_text())
    assert [r["round"] for r in info["self_training"]["rounds"]] == [0, 1] and (run / "metrics.json").is_file()


def test_only_the_last_round_of_a_hub_dataset_run_reads_its_test_split(tmp_path):
    """With data.format=hub every round scored the test split: only data.test_file was cleared for earlier rounds."""
    from nlp_transfer.self_training import round_config

    config = load_config(None, ["data.train_file=owner/set", "data.format=hub", "data.unlabeled_file=u.txt"])
    assert "test" in config.data.hub_splits
    assert "test" not in round_config(config, tmp_path, None, last=False).data.hub_splits
    assert round_config(config, tmp_path, None, last=True).data.hub_splits == config.data.hub_splits


def test_self_training_without_an_unlabelled_file_says_it_is_not_set():
    """Planted fault: the message said "data.unlabeled_file=None: no such file ... or set data.unlabeled_file=null"."""
    from nlp_transfer.self_training import read_unlabeled_texts

    with pytest.raises(DataError, match=r"data\.unlabeled_file is not set: self-training needs a file"):
        read_unlabeled_texts(load_config(None, ["data.train_file=x.csv"]))


def test_a_round_stopped_between_its_two_reports_trains_again_on_resume(tmp_path):
    """A round interrupted after metrics.json but before run_info.json was read back as finished: the resumed run
    ended with an empty run_info (no task, no labels) and the round's checkpoints left in the finished run."""
    from nlp_transfer.config import load_config
    from nlp_transfer.self_training import train_round

    round_dir = tmp_path / "rounds" / "round_0"
    round_dir.mkdir(parents=True)
    (round_dir / "metrics.json").write_text('{"validation": {"accuracy": 0.9}}', encoding="utf-8")
    calls = []
    config = load_config(None, [f"data.train_file={tmp_path / 'train.csv'}", f"output_dir={tmp_path}"])
    train_round(config, round_dir, None, lambda c, **kw: calls.append(kw), resume=True, last=False)
    assert calls == [{"resume": False, "overwrite": True}]  # trained again, not read back
