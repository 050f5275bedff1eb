"""Feature extraction: the frozen encoder's pooled outputs are cached, and the head trains on them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForSequenceClassification, pipeline

from nlp_transfer.config import load_config
from nlp_transfer.errors import ConfigError
from nlp_transfer.inference import load_run, predict_texts
from nlp_transfer.pipeline import run_training
from nlp_transfer.transfer.feature_extraction import MeanPooledModel, encoder_states, head_logits, pool
from tests.conftest import tiny_overrides
from tests.test_transfer_strategies import ARCHITECTURES


def frozen_config(files, model_dir, out, **extra):
    values = {
        "strategy": "frozen",
        "data.train_file": files["train"],
        "data.validation_file": files["validation"],
        "data.test_file": files["test"],
        "training.learning_rate": 5e-3,
        "training.epochs": 3,
        **extra,
    }
    return load_config(None, tiny_overrides(model_dir, out, **values))


def head_weights(run_dir):
    weights = load_file(str(run_dir / "model.safetensors"))
    return {n: t for n, t in weights.items() if n.startswith(("classifier.", "bert.pooler."))}, weights


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_cached_features_train_the_same_head_as_recomputing_them(sentiment_files, tiny_model_dir, tmp_path, pooling):
    runs = {}
    for cached in (True, False):
        out = tmp_path / f"{pooling}-{cached}"
        config = frozen_config(
            sentiment_files, tiny_model_dir, out, **{"transfer.pooling": pooling, "transfer.cache_features": cached}
        )
        result = run_training(config)
        assert result.info["cached_features"] is cached
        runs[cached] = (head_weights(out), result)
    (cached_head, cached_all), cached_result = runs[True]
    (plain_head, plain_all), plain_result = runs[False]
    assert set(cached_head) == {"classifier.weight", "classifier.bias", "bert.pooler.dense.weight", "bert.pooler.dense.bias"}
    base = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=2)
    for name, tensor in cached_head.items():
        # same batches, same dropout masks: the heads agree to float rounding (padding differs between the two paths)
        torch.testing.assert_close(tensor, plain_head[name], atol=2e-5, rtol=1e-4)
        if name.startswith("bert.pooler."):  # it trained (it is not the pretrained pooler)
            assert not torch.equal(tensor, base.state_dict()[name])
    for name, tensor in cached_all.items():  # the encoder is bit-identical to the pretrained one in both runs
        if name.startswith(("bert.embeddings.", "bert.encoder.")):
            assert torch.equal(tensor, base.state_dict()[name]) and torch.equal(plain_all[name], tensor)
    assert cached_result.metrics["validation"]["accuracy"] == pytest.approx(plain_result.metrics["validation"]["accuracy"])
    # every epoch's validation score matches too: the cached head is the uncached head at each step
    for a, b in zip(cached_result.info["history"], plain_result.info["history"], strict=True):
        assert a["accuracy"] == pytest.approx(b["accuracy"]) and a["f1_macro"] == pytest.approx(b["f1_macro"])
    assert set(cached_result.info["feature_encoding_seconds"]) == {"train", "validation"}
    assert plain_result.info["feature_encoding_seconds"] == {}


def test_cached_feature_extraction_learns_with_mean_pooling(sentiment_files, tiny_model_dir, tmp_path):
    config = frozen_config(
        sentiment_files,
        tiny_model_dir,
        tmp_path / "mean",
        **{"transfer.pooling": "mean", "training.epochs": 8, "training.learning_rate": 1e-2},
    )
    result = run_training(config)
    # the mean of a random 2-layer encoder's states keeps which words occur: the head separates the two
    # polarity vocabularies well above chance (0.5) on held-out data
    assert result.metrics["test"]["accuracy"] >= 0.75


def test_cls_feature_extraction_run_predicts_like_pipeline(sentiment_files, tiny_model_dir, tmp_path):
    out = tmp_path / "cls"
    run_training(frozen_config(sentiment_files, tiny_model_dir, out))
    assert "nlp_transfer_pooling" not in json.loads((out / "config.json").read_text())
    texts = ["the movie was excellent and superb", "awful and boring food", "a very lovely room", "dreadful staff"]
    model, task = load_run(out)
    ours = predict_texts(model, task, texts)
    theirs = pipeline("text-classification", model=str(out), device="cpu", top_k=None)(texts)
    for mine, scores in zip(ours, theirs, strict=True):
        by_label = {s["label"]: s["score"] for s in scores}
        assert mine["label"] == max(by_label, key=by_label.get)
        assert mine["score"] == pytest.approx(by_label[mine["label"]], abs=1e-5)


def test_mean_pooled_run_saves_a_plain_model_that_nlp_transfer_reloads_with_its_pooling(
    sentiment_files, tiny_model_dir, tmp_path
):
    out = tmp_path / "mean"
    result = run_training(frozen_config(sentiment_files, tiny_model_dir, out, **{"transfer.pooling": "mean"}))
    assert json.loads((out / "config.json").read_text())["nlp_transfer_pooling"] == "mean"
    model, task = load_run(out)
    assert isinstance(model, MeanPooledModel)
    plain = AutoModelForSequenceClassification.from_pretrained(out)  # a plain Hugging Face model on disk
    assert plain.config.nlp_transfer_pooling == "mean"
    # the reloaded model scores the test file as the run did
    lines = sentiment_files["test"].read_text(encoding="utf-8").splitlines()[1:]
    texts, labels = zip(*(line.rsplit(",", 1) for line in lines), strict=True)
    rows = predict_texts(model, task, list(texts))
    accuracy = sum(r["label"] == y for r, y in zip(rows, labels, strict=True)) / len(labels)
    assert accuracy == pytest.approx(result.metrics["test"]["accuracy"])


def test_pooling_options_are_checked(sentiment_files, tiny_model_dir, tmp_path):
    for strategy in ("lora", "freeze_layers", "gradual_unfreezing"):
        with pytest.raises(
            ConfigError, match=r"transfer\.pooling=mean applies to strategy=frozen or contrastive or full .*strategy=" + strategy
        ):
            load_config(None, [f"data.train_file={sentiment_files['train']}", f"strategy={strategy}", "transfer.pooling=mean"])
    with pytest.raises(ConfigError, match=r"transfer\.pooling=mean applies to .* task=ner"):
        load_config(None, [f"data.train_file={sentiment_files['train']}", "task=ner", "transfer.pooling=mean"])
    with pytest.raises(ConfigError, match=r"transfer\.pooling"):
        load_config(None, ["transfer.pooling=max"])


@pytest.mark.parametrize("model_type", list(ARCHITECTURES))
def test_head_over_token_states_reproduces_each_architectures_logits(model_type):
    sizes = ARCHITECTURES[model_type][0]
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(AutoConfig.for_model(model_type, num_labels=3, **sizes)).eval()
    batch = {"input_ids": torch.randint(5, 100, (4, 9)), "attention_mask": torch.ones(4, 9, dtype=torch.long)}
    batch["attention_mask"][1, 6:] = 0
    with torch.no_grad():
        expected = model(**batch).logits
        hidden = encoder_states(model, batch)
        torch.testing.assert_close(head_logits(model, hidden), expected)
        # the cached form: one pooled vector per text, fed as a one-token sequence
        torch.testing.assert_close(head_logits(model, pool(hidden, batch["attention_mask"], "cls")[:, None]), expected)
        mean = pool(hidden, batch["attention_mask"], "mean")
        torch.testing.assert_close(mean[1], hidden[1, :6].mean(dim=0))
        torch.testing.assert_close(MeanPooledModel(model)(**batch).logits, head_logits(model, mean[:, None]))


def test_cached_features_are_encoded_on_the_device_the_loop_trains_on(tiny_model_dir, monkeypatch):
    """On a GPU the model must move before encoding; a 'meta' device stands in for it on this CPU."""
    import datasets

    from nlp_transfer.config import RunConfig
    from nlp_transfer.transfer import TrainingRun, frozen

    seen = {}

    class Encoded(Exception):
        pass

    def fake_encode(model, rows, collator, *, device, **kwargs):
        seen.update(model=next(model.parameters()).device, batches=torch.device(device))
        raise Encoded

    class Accelerator:
        device = torch.device("meta")

    monkeypatch.setattr(frozen, "encode_features", fake_encode)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=2)
    split = datasets.Dataset.from_dict({"input_ids": [[101, 102]], "attention_mask": [[1, 1]], "labels": [0]})
    task = type("Task", (), {"batch_columns": ("input_ids", "attention_mask"), "collator": lambda self: None})()
    strategy = frozen.FrozenEncoder()
    strategy.caches = True
    run = TrainingRun(model, task, [], {"train": split, "validation": split}, RunConfig(), Accelerator(), Path("unused"))
    with pytest.raises(Encoded):
        strategy.train(run)
    assert seen == {"model": torch.device("meta"), "batches": torch.device("meta")}


def test_mean_pooling_without_cache_trains_with_gradient_checkpointing(sentiment_files, tiny_model_dir, tmp_path):
    """frozen + mean pooling + cache_features=false + gradient_checkpointing used to raise AttributeError."""
    config = frozen_config(
        sentiment_files,
        tiny_model_dir,
        tmp_path / "gc",
        **{
            "transfer.pooling": "mean",
            "transfer.cache_features": False,
            "training.gradient_checkpointing": True,
            "training.epochs": 1,
        },
    )
    result = run_training(config)
    assert result.info["pooling"] == "mean" and result.info["cached_features"] is False
    assert json.loads((tmp_path / "gc" / "config.json").read_text())["nlp_transfer_pooling"] == "mean"


def test_full_fine_tuning_with_mean_pooling_trains_everything_and_reloads_with_its_pooling(
    sentiment_files, tiny_model_dir, tmp_path
):
    """strategy=full, transfer.pooling=mean: the encoder trains too, the run learns, and nlp-transfer reloads the pooling."""
    out = tmp_path / "full-mean"
    config = frozen_config(
        sentiment_files, tiny_model_dir, out, strategy="full", **{"transfer.pooling": "mean", "training.epochs": 3}
    )
    result = run_training(config)
    assert result.metrics["test"]["accuracy"] >= 0.8  # 100 held-out rows, chance 0.5
    assert json.loads((out / "config.json").read_text())["nlp_transfer_pooling"] == "mean"
    model, _ = load_run(out)
    assert isinstance(model, MeanPooledModel)
    start = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=2)
    trained = dict(model.model.named_parameters())
    moved = [n for n, p in start.named_parameters() if n in trained and not torch.equal(p, trained[n])]
    assert any(".encoder.layer.0." in n for n in moved) and any("embeddings" in n for n in moved)


def test_checkpoints_of_a_cached_head_hold_the_head_alone_and_resume_to_the_same_head(sentiment_files, tiny_model_dir, tmp_path):
    """The encoder is frozen, so each evaluation's checkpoint and best snapshot write the head's weights only."""
    out = tmp_path / "kept"
    result = run_training(
        frozen_config(sentiment_files, tiny_model_dir, out, **{"training.keep_checkpoints": True, "training.save_total_limit": 3})
    )
    checkpoints = sorted((out / "checkpoints").glob("step-*"))
    assert len(checkpoints) == 3
    for checkpoint in checkpoints:
        for file in ("model.safetensors", "best_model.safetensors"):
            assert set(load_file(str(checkpoint / file))) == {
                "head.classifier.weight",
                "head.classifier.bias",
                "head.pooler.dense.weight",
                "head.pooler.dense.bias",
            }
    # the saved run is still the whole model, with the best head in it
    best = load_file(str(checkpoints[-1] / "best_model.safetensors"))
    saved, _ = head_weights(out)
    torch.testing.assert_close(saved["classifier.weight"], best["head.classifier.weight"])
    assert len(load_file(str(out / "model.safetensors"))) > 20
    # resuming from the first checkpoint ends on the same head as the uninterrupted run
    for later in checkpoints[1:]:
        shutil.rmtree(later)
    resumed_dir = tmp_path / "resumed"
    shutil.copytree(out / "checkpoints", resumed_dir / "checkpoints")  # as a run stopped after its first evaluation
    resumed = run_training(frozen_config(sentiment_files, tiny_model_dir, resumed_dir), resume=True)
    for name, tensor in head_weights(resumed_dir)[0].items():
        torch.testing.assert_close(tensor, saved[name])
    assert resumed.metrics["validation"]["accuracy"] == pytest.approx(result.metrics["validation"]["accuracy"])
