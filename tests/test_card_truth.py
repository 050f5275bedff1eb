"""What a pushed run's card and files say must be what the run did: its data, its settings, its long inputs, its rerun."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from nlp_transfer.config import load_config
from nlp_transfer.hub.card import _hyperparameters, build_model_card
from nlp_transfer.run_info import RunInfo
from tests.conftest import synthetic_sentiment, tiny_overrides, write_csv


def _run_dir(folder: Path, info: dict, config: dict | None = None, metrics: dict | None = None) -> Path:
    """A run directory holding only the records a card is written from."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "run_info.json").write_text(json.dumps(info), encoding="utf-8")
    (folder / "config.yaml").write_text(yaml.safe_dump(config or {}), encoding="utf-8")
    (folder / "metrics.json").write_text(json.dumps(metrics or {}), encoding="utf-8")
    return folder


def _model_index_datasets(card: str) -> dict[str, str]:
    """split -> dataset name of the card's model-index."""
    meta = yaml.safe_load(card.split("---")[1])
    return {r["dataset"]["split"]: r["dataset"]["name"] for r in meta["model-index"][0]["results"]}


def _data_table(card: str) -> list[str]:
    return re.search(r"## Training data\n\n(.*?)\n## Training procedure", card, re.S).group(1).splitlines()


def test_a_kept_teacher_records_the_test_split_it_scored(tmp_path, tiny_model_dir, monkeypatch):
    """A teacher that labels nothing stays the model and scores the test file, but its run_info kept no test rows nor
    test file: the card filed the test metrics under train.csv and the uploaded run_info had no sha256 of test.csv."""
    from nlp_transfer import self_training
    from nlp_transfer.pipeline import run_training

    train = write_csv(tmp_path / "train.csv", synthetic_sentiment(60, 1))
    test = write_csv(tmp_path / "test.csv", synthetic_sentiment(50, 3))
    (tmp_path / "unlabeled.txt").write_text("\n".join(t for t, _ in synthetic_sentiment(30, 2)) + "\n", encoding="utf-8")
    unsure = lambda teacher_dir, texts, batch_size: (np.full((len(texts), 2), 0.5), ["negative", "positive"])  # noqa: E731
    monkeypatch.setattr(self_training, "teacher_probabilities", unsure)
    extra = {"data.train_file": train, "data.test_file": test, "data.validation_split": 0.3, "data.max_eval_samples": 40}
    extra |= {"data.unlabeled_file": tmp_path / "unlabeled.txt"}
    run_training(load_config(None, tiny_overrides(tiny_model_dir, tmp_path / "run", **extra)))

    info = RunInfo.read(tmp_path / "run")
    assert info.self_training["stopped_at_round"] == 1
    assert info.examples["test"] == 40  # the rows scored: data.max_eval_samples of the file's 50
    assert info.data_files["test_file"]["path"] == str(test) and len(info.data_files["test_file"]["sha256"]) == 64
    card = str(build_model_card(tmp_path / "run", repo_id="alice/kept"))
    assert _model_index_datasets(card)["test"] == "test.csv"
    assert "| test | test.csv | 40 |" in _data_table(card)
    assert "Round 1 did not train: its teacher kept no pseudo-label" in card


def test_a_split_without_a_recorded_file_is_not_credited_to_the_training_file(tmp_path):
    """The model-index named train.csv for any split it did not know; only a held-out validation split comes from it."""
    metrics = {"validation": {"accuracy": 0.8}, "test": {"accuracy": 0.7}}
    train = {"train_file": {"path": "/data/train.csv", "bytes": 1, "sha256": "0" * 64}}
    info = {"task": "classification", "labels": ["a", "b"], "data_files": train}
    names = _model_index_datasets(str(build_model_card(_run_dir(tmp_path / "local", info, metrics=metrics), repo_id="a/b")))
    assert names == {"validation": "train.csv (held-out part)", "test": "custom data"}
    info["data_files"] = {"train_file": {"name": "stanfordnlp/sst2"}}  # a Hub dataset: its splits are the dataset's
    names = _model_index_datasets(str(build_model_card(_run_dir(tmp_path / "hub", info, metrics=metrics), repo_id="a/b")))
    assert names["test"] == "stanfordnlp/sst2"


def test_the_data_table_tells_the_files_rows_from_the_rows_the_run_added(tmp_path):
    """`train | train.csv | 900` credited 600 augmented copies to train.csv; per-class samples, label-name rows and
    pseudo-labels went unsaid too."""
    files = {"train_file": {"path": "/d/train.csv"}, "validation_file": {"path": "/d/val.csv"}}
    base = {"task": "classification", "labels": ["a", "b"], "data_files": files}
    augmented = {**base, "examples": {"train": 900, "validation": 100}}
    augmented["augmented_examples"] = {"word_dropout": 300, "word_swap": 300}
    table = _data_table(str(build_model_card(_run_dir(tmp_path / "aug", augmented), repo_id="a/b")))
    assert table[2:5] == [
        "| train | train.csv | 300 |",
        "| train | word_dropout copies of rows from the file (`data.augment`) | 300 |",
        "| train | word_swap copies of rows from the file (`data.augment`) | 300 |",
    ]
    assert "The training split held 900 rows in all." in table

    few = {**base, "examples": {"train": 20, "validation": 100}, "label_examples": 4}
    table = _data_table(str(build_model_card(_run_dir(tmp_path / "few", few, {"data": {"per_class": 8}}), repo_id="a/b")))
    assert "| train | train.csv, a sample of 8 rows per class (`data.per_class`, `data.sample_seed` 0) | 16 |" in table
    assert "| train | rows written from the label names (`data.label_examples`) | 4 |" in table

    rounds = [{"round": 0, "dir": "/r/round_0"}, {"round": 1, "dir": "/r/round_1", "pseudo_labels": 150}]
    summary = {"unlabeled_file": "/d/unlab.txt", "unlabeled_texts": 150, "threshold": 0.5, "rounds": rounds}
    selftrained = {**base, "examples": {"train": 450}, "pseudo_labeled_examples": 150, "self_training": summary}
    card = str(build_model_card(_run_dir(tmp_path / "self", selftrained), repo_id="a/b"))
    assert "| train | train.csv | 300 |" in _data_table(card)
    assert "| train | texts of unlab.txt labelled by the round-0 model (self-training, `data.unlabeled_file`) | 150 |" in card
    assert "2 round(s) trained, each a fresh model; this is round 1's model." in card

    odd = {**base, "examples": {"train": 10}, "label_examples": 40}  # more added rows than rows: shown as recorded
    assert "| train | train.csv | 10 |" in _data_table(str(build_model_card(_run_dir(tmp_path / "odd", odd), repo_id="a/b")))


def test_the_uploaded_config_trains_again_without_pushing(tmp_path, monkeypatch):
    """The uploaded config kept hub.push: true and the author's repo_id: rerunning it asked for a token, then would
    have pushed into the author's repository. The token message told train users to pass a flag train lacks."""
    import huggingface_hub

    from nlp_transfer.errors import UserError
    from nlp_transfer.hub.files import _sanitized_config_yaml
    from nlp_transfer.hub.push import resolve_token

    config = {"data": {"train_file": "/d/train.csv"}, "hub": {"push": True, "repo_id": "alice/m", "license": "mit"}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    uploaded = _sanitized_config_yaml(tmp_path / "config.yaml")
    assert uploaded.decode().startswith("# hub.push and hub.repo_id are cleared in this copy")
    (tmp_path / "uploaded.yaml").write_bytes(uploaded)
    rerun = load_config(str(tmp_path / "uploaded.yaml"), [])
    assert (rerun.hub.push, rerun.hub.repo_id, rerun.hub.license) == (False, None, "mit")

    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    with pytest.raises(UserError) as refused:
        resolve_token()
    assert "pass --token" not in str(refused.value) and "`nlp-transfer push` also takes --token" in str(refused.value)


def test_a_ner_card_says_long_sentences_are_windowed_and_its_pipeline_reads_a_long_text_to_the_end(tmp_path, tiny_model_dir):
    """The NER card said long inputs were truncated (NER windows them), and its pipeline snippet, without a stride,
    silently dropped everything past the tokenizer's 512 tokens while predict tagged every word."""
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from nlp_transfer import predict
    from nlp_transfer.hub.usage import _model_usage

    labels = ["O", "B-PER", "I-PER"]
    model = AutoModelForTokenClassification.from_pretrained(
        tiny_model_dir, num_labels=3, id2label=dict(enumerate(labels)), label2id={k: i for i, k in enumerate(labels)}
    )
    with torch.no_grad():  # every word a person: the spans are then the words, whatever window reads them
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([0.0, 5.0, 0.0]))
    run = tmp_path / "run"
    model.save_pretrained(run)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(run)
    info = {"task": "ner", "strategy": "full", "labels": labels, "max_length": 64}
    _run_dir(run, info, {"task": "ner", "training": {"max_length": 64}})

    card = str(build_model_card(run, repo_id="alice/tagger"))
    assert "were truncated" not in card and "split into windows of whole words" in card
    code = re.search(r"```python\n(.*?)```", _model_usage("alice/tagger", RunInfo.read(run), "token-classification"), re.S)
    scope: dict = {}
    exec(code.group(1).split("classifier(")[0].replace('"alice/tagger"', repr(str(run))), scope)
    text = " ".join(["anna met bob in town"] * 150)  # 750 words, past the tokenizer's 512
    piped = sorted((e["start"], e["end"]) for e in scope["classifier"](text))
    [expected] = predict(run, [text])
    assert piped == sorted((e["start"], e["end"]) for e in expected["entities"]) and piped[-1][1] == len(text)


def test_the_card_lists_only_the_settings_its_task_reads():
    """Single-label and masked-LM cards listed training.threshold; classification cards listed transfer.case_vocab."""
    config = {
        "training": {"learning_rate": 1e-3, "threshold": 0.5, "label_all_subwords": False, "class_weights": "none"},
        "transfer": {"case_vocab": False},
    }
    shown = {
        task: {k for k, _ in _hyperparameters(config, task)} for task in ("classification", "multilabel", "ner", "masked-lm")
    }
    assert "training.threshold" not in shown["classification"] | shown["ner"] | shown["masked-lm"]
    assert "training.threshold" in shown["multilabel"]
    assert "transfer.case_vocab" in shown["ner"] and "transfer.case_vocab" not in shown["classification"] | shown["multilabel"]
    assert "training.label_all_subwords" in shown["ner"] and "training.label_all_subwords" not in shown["classification"]
    assert "training.learning_rate" in shown["masked-lm"] and "training.class_weights" not in shown["masked-lm"]


def test_the_data_table_of_a_cut_file_says_the_validation_rows_came_out_of_the_cut(tmp_path, tiny_model_dir):
    """data.max_train_samples cuts the file before the validation rows are held out of it: the card's count and its
    words must agree with what the run trained on (the sentence was never checked against a run)."""
    from nlp_transfer.pipeline import run_training

    train = write_csv(tmp_path / "train.csv", synthetic_sentiment(100, 1))
    extra = {"data.train_file": train, "data.max_train_samples": 40, "data.validation_split": 0.25}
    run_training(load_config(None, tiny_overrides(tiny_model_dir, tmp_path / "run", **extra)))

    info = RunInfo.read(tmp_path / "run")
    assert info.examples["train"] + info.examples["validation"] == 40
    table = _data_table(str(build_model_card(tmp_path / "run", repo_id="alice/cut")))
    cut = "train.csv, its first 40 rows (`data.max_train_samples`) less the validation rows held out of them"
    assert f"| train | {cut} | {info.examples['train']} |" in table, table
    assert f"| validation | held out from train | {info.examples['validation']} |" in table, table
