"""docs/architecture.md's walkthroughs, done: a strategy and a task added from outside the package.

Neither touches ``pipeline.py`` or ``training/``: each is one class plus one registration, and a run
selects it by name in its config. If these tests need a change to the package, the seams have broken.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from sklearn.metrics import r2_score
from torch import nn
from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding

from nlp_transfer.config import RunConfig, load_config
from nlp_transfer.errors import ConfigError
from nlp_transfer.models import resolve_with_tokenizer
from nlp_transfer.pipeline import run_training
from nlp_transfer.tasks import TASKS, Task, build_task_and_data, register_task
from nlp_transfer.training.callbacks import TrainingCallback
from nlp_transfer.transfer import STRATEGIES, Strategy, register_strategy
from nlp_transfer.transfer.groups import ParamGroups, layerwise_groups, set_trainable
from nlp_transfer.transfer.layers import find_encoder_parts
from tests.conftest import synthetic_sentiment, tiny_overrides, write_csv

# --------------------------------------------------------------------------- a toy strategy: BitFit


class CountEpochs(TrainingCallback):
    """Records the epochs the loop announced (a strategy's callback)."""

    def __init__(self) -> None:
        self.epochs: list[int] = []

    def on_epoch_start(self, model: nn.Module, optimizer: Any, epoch: int) -> None:
        self.epochs.append(epoch)


@register_strategy
class BiasOnly(Strategy):
    """BitFit (Ben Zaken et al. 2022): only the bias terms and the task head train."""

    name = "toy_bitfit"
    trains_embeddings = False
    uses_layer_lr_decay = False
    last: BiasOnly | None = None

    def parameter_groups(self, model: nn.Module, *, learning_rate: float, weight_decay: float) -> ParamGroups:
        head = set(find_encoder_parts(model).head)
        names = [n for n, _ in model.named_parameters() if n in head or n.endswith(".bias")]
        set_trainable(model, set(names))
        return layerwise_groups(model, names, learning_rate=learning_rate, weight_decay=weight_decay)

    def callbacks(self, model: nn.Module) -> list[TrainingCallback]:
        self.counter = CountEpochs()
        BiasOnly.last = self
        return [self.counter]

    def run_info(self) -> dict[str, Any]:
        return {"pooling": "bitfit-cls", "bias_terms_only": True}  # a RunInfo field, and a fact of its own


def test_a_new_strategy_is_one_class_and_a_name(sentiment_files, tiny_model_dir, tmp_path, monkeypatch):
    assert STRATEGIES["toy_bitfit"] is BiasOnly
    out = tmp_path / "bitfit"
    config = load_config(
        None,
        [
            *tiny_overrides(tiny_model_dir, out, **{"training.epochs": 2, "training.learning_rate": 1e-2}),
            "strategy=toy_bitfit",
            f"data.train_file={sentiment_files['train']}",
            f"data.validation_file={sentiment_files['validation']}",
        ],
    )
    result = run_training(config)
    pretrained = load_file(str(Path(tiny_model_dir) / "model.safetensors"))
    trained = load_file(str(out / "model.safetensors"))
    changed = {n for n, w in pretrained.items() if not torch.equal(w, trained["bert." + n if "bert." + n in trained else n])}
    # the encoder's weight matrices are untouched; its biases moved (the pooler belongs to the head)
    assert changed and all(n.endswith(".bias") or n.startswith("pooler.") for n in changed)
    assert any(n.startswith("encoder.layer.") for n in changed)
    assert BiasOnly.last.counter.epochs == [0, 1]  # the strategy's callback ran before each epoch
    assert result.info["pooling"] == "bitfit-cls" and result.info["strategy"] == "toy_bitfit"
    saved = json.loads((out / "run_info.json").read_text())
    assert saved["strategy_facts"] == {"bias_terms_only": True}  # kept, not dropped for want of a field
    # a mechanics test: on the tiny random model biases alone learn little, so no accuracy is asserted here
    assert result.info["trainable_parameters"] < result.info["total_parameters"] / 10
    # check and export read the run's data from its config.yaml in a process that has not imported the strategy: it
    # stopped them ("strategy='toy_bitfit' is not one of ..."), though a saved model does not depend on it
    from nlp_transfer.config import load_saved_config

    monkeypatch.delitem(STRATEGIES, "toy_bitfit")
    with pytest.raises(ConfigError, match="strategy='toy_bitfit' is not one of"):
        load_config(out / "config.yaml")
    saved_config = load_saved_config(out / "config.yaml")
    assert saved_config.data.train_file == str(sentiment_files["train"]) and saved_config.strategy == "full"


def test_a_strategy_refuses_what_it_cannot_do_at_config_time(tmp_path):
    with pytest.raises(ConfigError, match=r"layer_lr_decay applies to .*not to strategy=toy_bitfit"):
        load_config(None, ["data.train_file=x.csv", "strategy=toy_bitfit", "transfer.layer_lr_decay=0.5"])


# --------------------------------------------------------------------------- a toy task: text regression


@dataclass
class RegressionTask(Task):
    """A score per text (a number, not a label): one output, mean-squared error, R^2."""

    name = "text-regression"
    default_metric = "r2"
    auto_class = AutoModelForSequenceClassification

    def model_config(self) -> dict[str, Any]:
        return {"num_labels": 1, "problem_type": "regression"}

    def preprocess(self, dataset: datasets.Dataset, split: str = "") -> datasets.Dataset:
        encoded = self.tokenizer(list(dataset["text"]), truncation=True, max_length=self.max_length)
        columns = {**encoded, "length": [len(ids) for ids in encoded["input_ids"]], "labels": list(dataset["score"])}
        return datasets.Dataset.from_dict(columns)

    def collator(self) -> Any:
        return DataCollatorWithPadding(self.tokenizer)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.mse_loss(logits.float().squeeze(-1), labels.float())

    def compute_metrics(self, logits: np.ndarray, labels: np.ndarray, dataset: Any = None) -> dict[str, Any]:
        return {"r2": float(r2_score(labels, logits[:, 0])), "mse": float(np.mean((logits[:, 0] - labels) ** 2))}


@dataclass
class ScoredTexts:
    """The data a task builder returns: splits, label names (none here) and where each split came from."""

    splits: dict[str, datasets.Dataset]
    labels: list[str]
    sources: dict[str, str]


def regression_from_config(config: RunConfig) -> tuple[RegressionTask, ScoredTexts]:
    splits, sources = {}, {}
    for split in ("train", "validation"):
        path = getattr(config.data, f"{split}_file")
        with open(path, encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        splits[split] = datasets.Dataset.from_dict(
            {"text": [r["text"] for r in rows], "score": [float(r["score"]) for r in rows]}
        )
        sources[split] = path
    resolved, tokenizer = resolve_with_tokenizer(config.model, max_length=config.training.max_length)
    task = RegressionTask(
        model_path=resolved.path,
        labels=["score"],
        tokenizer=tokenizer,
        model_name=resolved.name,
        max_length=config.training.max_length,
    )
    return task, ScoredTexts(splits, [], sources)


register_task("toy_regression", regression_from_config)


def careless_regression_from_config(config: RunConfig) -> tuple[RegressionTask, ScoredTexts]:
    """The builder above, leaving the task's max_length at its default (256) whatever the config says."""
    task, data = regression_from_config(config)
    task.max_length = 256
    return task, data


register_task("toy_regression_careless", careless_regression_from_config)


def scored_rows(n: int, seed: int) -> list[tuple[str, str]]:
    """The score of a text is +1 for a positive and -1 for a negative review: learnable by the tiny model."""
    return [(text, "1.0" if label == "positive" else "-1.0") for text, label in synthetic_sentiment(n, seed)]


def test_a_new_task_is_one_class_and_a_builder(tiny_model_dir, tmp_path, capsys):
    assert TASKS["toy_regression"] is regression_from_config
    train = write_csv(tmp_path / "train.csv", scored_rows(400, 1), header=("text", "score"))
    validation = write_csv(tmp_path / "validation.csv", scored_rows(100, 2), header=("text", "score"))
    out = tmp_path / "regression"
    config = load_config(
        None,
        [
            *tiny_overrides(tiny_model_dir, out, **{"training.epochs": 3, "training.learning_rate": 1e-3}),
            "task=toy_regression",
            f"data.train_file={train}",
            f"data.validation_file={validation}",
            "training.metric_for_best_model=mse",  # an error goes down: the run kept its worst epoch by it
        ],
    )
    result = run_training(config)
    assert result.metrics["validation"]["r2"] > 0.5  # well above the 0 of predicting the mean
    history = result.info["history"]
    assert result.info["best_step"] == min(history, key=lambda h: h["mse"])["step"]
    assert min(h["mse"] for h in history) < history[0]["mse"]  # the first epoch is not the best: the pick is tested
    out_text = capsys.readouterr().out  # its own metric names are shown (the lines were empty)
    assert re.search(r"\[eval\] epoch 1\.0 step \d+: mse=", out_text) and re.search(r"validation +r2=.* mse=", out_text)
    saved = AutoModelForSequenceClassification.from_pretrained(out)  # a plain Hugging Face model
    assert saved.config.num_labels == 1 and saved.config.problem_type == "regression"


def test_a_new_tasks_real_valued_targets_stay_real_through_cached_features(tiny_model_dir, tmp_path):
    """strategy=frozen caches the encoder's features; its collator made every target a whole number (0.75 -> 0), so
    a regression head learned to predict 0. Targets 0.25 / 0.75 here: the planted fault would score r2 below 0."""
    from nlp_transfer.transfer.feature_extraction import CachedFeatureCollator

    collate = CachedFeatureCollator(torch.zeros(2, 3))
    batch = collate([{"feature_index": 0, "labels": 0.75}, {"feature_index": 1, "labels": 0.25}])
    assert batch["labels"].dtype == torch.float32 and batch["labels"].tolist() == [0.75, 0.25]
    assert collate([{"feature_index": 0, "labels": 1}])["labels"].dtype == torch.long  # class ids stay ids
    rows = [(text, "0.75" if float(score) > 0 else "0.25") for text, score in scored_rows(400, 1)]
    train = write_csv(tmp_path / "train.csv", rows, header=("text", "score"))
    validation = write_csv(
        tmp_path / "validation.csv",
        [(text, "0.75" if float(score) > 0 else "0.25") for text, score in scored_rows(100, 2)],
        header=("text", "score"),
    )
    extra = {"training.epochs": 10, "training.learning_rate": 1e-2, "transfer.pooling": "mean"}
    config = load_config(
        None,
        [
            *tiny_overrides(tiny_model_dir, tmp_path / "frozen", **extra),
            "task=toy_regression",
            "strategy=frozen",
            f"data.train_file={train}",
            f"data.validation_file={validation}",
        ],
    )
    result = run_training(config)
    assert result.metrics["validation"]["r2"] > 0.3, result.metrics["validation"]


def test_a_task_built_without_the_runs_settings_is_refused_before_training(tiny_model_dir, tmp_path):
    """A builder that dropped training.max_length trained at 256 tokens while config and card said 64; one that
    dropped the class weights trained unweighted under class_weights=balanced."""
    train = write_csv(tmp_path / "train.csv", scored_rows(40, 1), header=("text", "score"))
    base = [*tiny_overrides(tiny_model_dir, tmp_path / "run"), f"data.train_file={train}", f"data.validation_file={train}"]
    with pytest.raises(ConfigError, match=r"made the task with max_length=256 while training\.max_length=64"):
        run_training(load_config(None, [*base, "task=toy_regression_careless", "training.max_length=64"]))
    with pytest.raises(ConfigError, match=r"class_weights=balanced, but its builder gave the task no class weights"):
        run_training(load_config(None, [*base, "task=toy_regression", "training.class_weights=balanced"]))
    assert not (tmp_path / "run").exists()
    task, _ = build_task_and_data(load_config(None, [*base, "task=toy_regression", "training.max_length=64"]))
    assert task.max_length == 64  # the careful builder passes it on


def test_a_name_already_registered_is_refused():
    """A plugin's register_strategy("frozen") replaced the packaged strategy without a word."""

    class Impostor(BiasOnly):
        name = "full"

    with pytest.raises(ValueError, match=r"strategy 'full' is already registered by nlp_transfer\.transfer\.full"):
        register_strategy(Impostor)
    assert STRATEGIES["full"].__module__ == "nlp_transfer.transfer.full"
    assert register_strategy(BiasOnly) is BiasOnly  # the same class again (a module reloaded) is no clash
    with pytest.raises(ValueError, match=r"task 'classification' is already registered by nlp_transfer"):
        register_task("classification", regression_from_config)
    register_task("toy_regression", regression_from_config)
    assert TASKS["toy_regression"] is regression_from_config


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["strategy=contrastive"], "serves task=classification or multilabel, not toy_regression"),
        (["strategy=frozen", "transfer.head_fit=logistic"], "transfer.head_fit=logistic fits a head on cached features"),
    ],
)
def test_what_needs_class_labels_refuses_a_new_task_before_anything_is_written(tiny_model_dir, tmp_path, overrides, message):
    """Both crashed with a traceback (contrastive pairing, the logistic solve) and left a half-written run folder."""
    train = write_csv(tmp_path / "train.csv", scored_rows(40, 1), header=("text", "score"))
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match=message):
        config = load_config(
            None,
            [*tiny_overrides(tiny_model_dir, out), "task=toy_regression", *overrides, f"data.train_file={train}"],
        )
        run_training(config)
    assert not out.exists()


def test_compare_runs_a_strategy_added_outside_the_package_in_its_child_processes(sentiment_files, tiny_model_dir, tmp_path):
    """Each compare run is a child process: it failed with "strategy='toy_bitfit' is not one of ..." after the other
    strategies had trained, since the child had not imported the module that registers it."""
    from nlp_transfer.compare import run_comparison
    from nlp_transfer.compare.child import plugin_modules

    overrides = [
        *tiny_overrides(tiny_model_dir, tmp_path / "run"),
        f"data.train_file={sentiment_files['train']}",
        f"data.validation_file={sentiment_files['validation']}",
        "data.max_eval_samples=32",
    ]
    config = load_config(None, overrides)
    assert plugin_modules(load_config(None, [*overrides, "strategy=toy_bitfit"])) == [__name__]
    rows = run_comparison(config, {"toy_bitfit": "toy_bitfit"}, output_dir=tmp_path / "report", scratch=False)
    assert [r.strategy for r in rows] == ["toy_bitfit"] and not rows[0].error and rows[0].value is not None


def test_compare_runs_a_new_task_whose_data_only_its_builder_reads(tiny_model_dir, tmp_path, monkeypatch):
    """compare read every run's data as text classification before training: a task added outside the package,
    with columns text,score, was refused ("no column 'label'") before any run."""
    import nlp_transfer.compare as compare
    from nlp_transfer.compare.plan import rows_at_all

    train = write_csv(tmp_path / "train.csv", scored_rows(40, 1), header=("text", "score"))
    base = [*tiny_overrides(tiny_model_dir, tmp_path / "run"), "task=toy_regression", f"data.train_file={train}"]
    config = load_config(None, [*base, f"data.validation_file={train}"])
    assert rows_at_all(config) is None
    trained = []

    def fake_child(run_config, *, from_scratch, jobs, debug=False):
        trained.append(Path(run_config.output_dir).name)
        return compare.ChildOutcome(returncode=1, peak_rss_bytes=1 << 20, error="stopped here")

    monkeypatch.setattr(compare.run, "train_in_child", fake_child)
    rows = compare.run_comparison(config, ["full"], output_dir=tmp_path / "report", scratch=False, min_steps=50)
    assert trained == ["full-all"] and rows[0].error == "stopped here"
