"""training.long_text=windows: every token is seen, window logits pool per document, and a label at the end is learnt."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import datasets
import numpy as np
import pytest
from transformers import AutoTokenizer

from nlp_transfer.config import TrainingConfig, load_config
from nlp_transfer.errors import ConfigError
from nlp_transfer.inference import load_run, predict
from nlp_transfer.pipeline import run_training
from nlp_transfer.tasks import build_classification_task
from nlp_transfer.tasks.windows import CONFIG_KEY, DOCUMENT_COLUMN, Windows, WindowSettings, encode_windows, pool_windows
from nlp_transfer.training.accelerator import make_accelerator
from nlp_transfer.training.evaluation import evaluate_model
from tests.conftest import FILLER, NEGATIVE, POSITIVE, tiny_overrides, write_csv

LABELS = ["negative", "positive"]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def words_seen(tokenizer, windows: Windows) -> set[str]:
    """The words of every window, read back from its tokens (wordpieces merged)."""
    seen: set[str] = set()
    for ids in windows.columns["input_ids"]:
        seen.update(tokenizer.decode(ids, skip_special_tokens=True).split())
    return seen


def long_text(tokenizer, n_words: int) -> tuple[str, list[str]]:
    """A text of ``n_words`` distinct words that are one token each (so a word is seen when its token is)."""
    vocab = sorted(word for word in tokenizer.get_vocab() if word.isalpha() and word.islower() and len(word) >= 5)
    words = [word for word in vocab[::7] if tokenizer.tokenize(word) == [word]][:n_words]
    assert len(words) == n_words
    return " ".join(words), words


@pytest.mark.parametrize("stride", [0, 1, 5, 12])
def test_every_word_of_a_long_text_is_seen_by_some_window(tokenizer, stride):
    text, words = long_text(tokenizer, 120)
    windows = encode_windows(tokenizer, [text, "short one"], max_length=24, stride=stride)
    assert windows.documents[-1] == 1 and windows.documents.count(0) > 5  # many windows, then the short text's one
    assert set(words) <= words_seen(tokenizer, windows)
    content = [ids[1:-1] for ids, doc in zip(windows.columns["input_ids"], windows.documents, strict=True) if doc == 0]
    for before, after in itertools.pairwise(content):  # each window repeats exactly `stride` tokens
        assert after[:stride] == before[len(before) - stride :]
    assert max(len(ids) for ids in windows.columns["input_ids"]) <= 24


def test_the_coverage_check_catches_windows_that_skip_tokens(tokenizer):
    """Planted faults: plain truncation, and windows with one missing (a step longer than a window), lose words."""
    text, words = long_text(tokenizer, 120)
    truncated = tokenizer([text], truncation=True, max_length=24)
    assert not set(words) <= words_seen(tokenizer, Windows(dict(truncated), [0]))
    windows = encode_windows(tokenizer, [text], max_length=24, stride=0)
    skipped = {key: values[:2] + values[3:] for key, values in windows.columns.items()}
    assert not set(words) <= words_seen(tokenizer, Windows(skipped, windows.documents[:-1]))


def test_window_logits_pool_per_document_by_mean_and_max():
    logits = np.array([[4.0, 0.0], [-2.0, 1.0], [0.0, 3.0], [1.0, 1.0], [-1.0, 5.0]], dtype=np.float32)
    documents = [0, 0, 1, 2, 2]
    mean = pool_windows(logits, documents, 3, "mean")
    np.testing.assert_allclose(mean, [[1.0, 0.5], [0.0, 3.0], [0.0, 3.0]])
    maximum = pool_windows(logits, documents, 3, "max")
    np.testing.assert_allclose(maximum, [[4.0, 1.0], [0.0, 3.0], [1.0, 5.0]])
    assert mean.dtype == np.float32 and mean.shape == (3, 2)
    with pytest.raises(ValueError):
        pool_windows(logits, [0, 0, 2, 2, 2], 3, "mean")  # document 1 has no window


def documents_counted(metrics: dict) -> int:
    """The number of rows the metrics scored: the sum of the confusion matrix."""
    return int(np.asarray(metrics["confusion_matrix"]["matrix"]).sum())


def windows_task(model_dir: str, pooling: str = "mean"):
    return build_classification_task(
        model=model_dir, labels=LABELS, max_length=16, windows=WindowSettings(stride=4, pooling=pooling)
    )


def test_evaluation_counts_documents_not_windows(tiny_model_dir):
    task = windows_task(tiny_model_dir)
    text, _ = long_text(task.tokenizer, 40)
    data = datasets.Dataset.from_dict({"text": [text, "bad", "great film"], "label": ["positive", "negative", "positive"]})
    rows = task.preprocess(data, "validation")
    documents = rows[DOCUMENT_COLUMN]
    assert len(rows) > 3 and sorted(set(documents)) == [0, 1, 2]
    assert rows["labels"] == [[1, 0, 1][d] for d in documents]
    assert task.truncated == {"validation": 1, "validation_windows": len(rows)}
    # document 0: one strongly negative window outvoted by its other windows in the mean (positive, correct)
    logits = np.array([[2.0, 0.0] if i == 0 else [0.0, 1.0] for i in range(len(rows))], dtype=np.float32)
    logits[documents.index(1)] = [0.0, 2.0]  # the short negative text: wrong
    assert len(rows) >= 3 + 2  # document 0 has at least three windows, so its mean is positive
    metrics = task.compute_metrics(logits, np.asarray(rows["labels"]), rows)
    assert documents_counted(metrics) == 3
    assert metrics["accuracy"] == pytest.approx(2 / 3)
    # the max pools document 0 to its strong negative window: now only document 2 is right
    maximum = windows_task(tiny_model_dir, "max").compute_metrics(logits, np.asarray(rows["labels"]), rows)
    assert maximum["accuracy"] == pytest.approx(1 / 3) and documents_counted(maximum) == 3
    accelerator = make_accelerator(TrainingConfig(), log=False)
    model_metrics = evaluate_model(task.build_model(), rows, task, accelerator, batch_size=2)
    assert documents_counted(model_metrics) == 3


def test_default_truncate_is_the_plain_tokenizer_path(tiny_model_dir):
    task = build_classification_task(model=tiny_model_dir, labels=LABELS, max_length=16)
    text, _ = long_text(task.tokenizer, 40)
    assert task.windows is None and not hasattr(task.build_model().config, CONFIG_KEY)
    rows = task.preprocess(datasets.Dataset.from_dict({"text": [text, "bad"], "label": ["positive", "negative"]}), "train")
    expected = task.tokenizer([text, "bad"], truncation=True, max_length=16)
    assert rows["input_ids"] == expected["input_ids"] and DOCUMENT_COLUMN not in rows.column_names
    assert task.truncated == {"train": 1}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"task": "ner"}, "training.long_text=windows is for task=classification and multilabel"),
        ({"strategy": "frozen"}, "set transfer.cache_features=false"),
        ({"strategy": "contrastive"}, "choose another strategy"),
        ({"training.window_stride": 200}, "training.window_stride must be at most half"),
    ],
)
def test_windows_are_refused_where_they_cannot_work(extra, message):
    overrides = [f"{k}={v}" for k, v in {"data.train_file": "x.csv", "training.long_text": "windows", **extra}.items()]
    with pytest.raises(ConfigError, match=message) as err:
        load_config(None, overrides)
    assert "\n" not in str(err.value)
    load_config(None, ["data.train_file=x.csv", "training.long_text=windows", "strategy=frozen", "transfer.cache_features=false"])


def label_at_end(n: int, seed: int) -> list[tuple[str, str]]:
    """Texts of 40 to 50 filler words whose label word comes last: beyond 24 tokens, so truncation never sees it."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = LABELS[i % 2]
        filler = [rng.choice(FILLER) for _ in range(rng.randint(40, 50))]
        rows.append((" ".join([*filler, rng.choice(POSITIVE if label == "positive" else NEGATIVE)]), label))
    return rows


@pytest.fixture(scope="module")
def end_label_runs(tiny_model_dir, tmp_path_factory):
    """The same tiny run on label-at-the-end texts, once truncated and once with windows."""
    root = tmp_path_factory.mktemp("long-text")
    files = {
        split: write_csv(root / f"{split}.csv", label_at_end(n, seed))
        for split, n, seed in (("train", 240, 1), ("validation", 60, 2), ("test", 100, 3))
    }
    runs = {}
    for mode in ("truncate", "windows"):
        extra = {f"data.{split}_file": path for split, path in files.items()}
        extra.update({"training.epochs": 8, "training.learning_rate": 2e-3, "training.max_length": 24})
        extra.update({"training.long_text": mode, "training.window_stride": 4, "training.eval_batch_size": 128})
        runs[mode] = run_training(load_config(None, tiny_overrides(tiny_model_dir, root / mode, **extra)))
    return runs


def test_windows_learn_a_label_that_only_the_end_of_the_text_carries(end_label_runs):
    windows, truncate = end_label_runs["windows"], end_label_runs["truncate"]
    assert windows.metrics["test"]["accuracy"] >= 0.8  # 100 balanced held-out documents: chance is 0.5
    assert truncate.metrics["test"]["accuracy"] <= 0.65  # it never sees the label word
    assert documents_counted(windows.metrics["test"]) == 100  # documents, not windows
    counts = windows.info["truncated_texts"]
    assert counts["test"] == 100 and counts["test_windows"] >= 300  # every text is long: 3 or more windows each
    assert windows.info["examples"]["test"] == 100


def test_a_saved_windows_run_predicts_one_row_per_text_through_its_windows(end_label_runs):
    run_dir = Path(end_label_runs["windows"].output_dir)
    assert json.loads((run_dir / "config.json").read_text())[CONFIG_KEY] == {"mode": "windows", "stride": 4, "pooling": "mean"}
    _, task = load_run(run_dir, device="cpu")
    assert task.windows == WindowSettings(stride=4, pooling="mean") and task.max_length == 24
    texts = [text for text, _ in label_at_end(6, 9)] + ["great"]
    rows = predict(run_dir, texts, batch_size=4, device="cpu")
    assert [row["text"] for row in rows] == texts
    assert sum(row["label"] == label for row, (_, label) in zip(rows, label_at_end(6, 9), strict=False)) >= 5
    truncating = load_run(end_label_runs["truncate"].output_dir, device="cpu")[1]
    assert truncating.windows is None


def test_multilabel_windows_pool_per_label(tiny_model_dir):
    """Multi-label: with max pooling a label that one window finds is the document's; labels stay 0/1 rows per document."""
    task = build_classification_task(
        model=tiny_model_dir, labels=["billing", "shipping"], multi_label=True, max_length=16,
        windows=WindowSettings(stride=4, pooling="max"),
    )  # fmt: skip
    text, _ = long_text(task.tokenizer, 40)
    data = datasets.Dataset.from_dict({"text": [text, "late parcel"], "label": [["billing", "shipping"], ["shipping"]]})
    rows = task.preprocess(data, "validation")
    assert rows["labels"][0] == [1.0, 1.0] and rows["labels"][-1] == [0.0, 1.0]
    logits = np.full((len(rows), 2), -3.0, dtype=np.float32)
    logits[0, 0], logits[1, 1], logits[-1, 1] = 3.0, 3.0, 3.0  # document 0: billing in window 0, shipping in window 1
    assert task.compute_metrics(logits, np.asarray(rows["labels"]), rows)["subset_accuracy"] == 1.0
    mean_task = build_classification_task(
        model=tiny_model_dir, labels=["billing", "shipping"], multi_label=True, max_length=16, windows=WindowSettings(stride=4)
    )
    assert mean_task.compute_metrics(logits, np.asarray(rows["labels"]), rows)["subset_accuracy"] == 0.5


def test_the_card_of_a_windows_run_says_windows_not_truncation(end_label_runs):
    from nlp_transfer.hub import build_model_card

    windows = str(build_model_card(end_label_runs["windows"].output_dir, repo_id="a/windows", license="mit"))
    truncate = str(build_model_card(end_label_runs["truncate"].output_dir, repo_id="a/truncate", license="mit"))
    assert "read as overlapping windows" in windows and "were truncated in training" not in windows
    assert "were truncated in training" in truncate and "overlapping windows" not in truncate


def test_export_checks_a_windows_run_on_its_texts_not_truncated_rows(end_label_runs):
    """The export's self-check scores each validation text through its windows, pooled, as predict does."""
    from nlp_transfer.export.command import export_run

    result = end_label_runs["windows"]
    report = export_run(Path(result.output_dir))
    check = report["checks"]["model.onnx"]
    assert check["before"] == pytest.approx(result.metrics["validation"]["accuracy"])  # the run's own document score
    assert check["before"] >= 0.8  # truncated rows never see the label word: about 0.5
    assert check["label_agreement"] == 1.0 and check["drop_points"] == 0


def test_balanced_class_weights_count_the_windows_the_loss_trains_on(tiny_model_dir, tmp_path):
    """30 long positive texts and 30 short negative ones: the weights said 1:1 (texts) while the loss saw 6:1 windows."""
    from nlp_transfer.tasks.classification import classification_from_config

    rows = [(" ".join(["a fine long story"] * 12), "positive") for _ in range(30)] + [("bad", "negative")] * 30
    train = write_csv(tmp_path / "train.csv", rows)
    overrides = [f"model={tiny_model_dir}", f"data.train_file={train}", f"data.validation_file={train}"]
    overrides += ["training.class_weights=balanced", "training.max_length=16", "training.long_text=windows"]
    task, data = classification_from_config(load_config(None, overrides))
    windows = encode_windows(task.tokenizer, data.splits["train"]["text"][:], 16, task.windows.stride)
    per_class = np.bincount([task.label2id[data.splits["train"]["label"][d]] for d in windows.documents], minlength=2)
    expected = per_class.sum() / (2 * per_class)  # scikit-learn's balanced weights over the windows
    np.testing.assert_allclose(task.class_weights.numpy(), expected, rtol=1e-6)
    assert task.class_weights[task.label2id["negative"]] > 2 * task.class_weights[task.label2id["positive"]]
