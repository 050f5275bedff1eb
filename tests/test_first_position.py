"""training.skip_unread_positions: the last layer computes the head's one position, and nothing else changes."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoModelForTokenClassification

from nlp_transfer.cli import main
from nlp_transfer.config import load_config
from nlp_transfer.inference import load_run, predict_texts
from nlp_transfer.pipeline import skips_unread_positions
from nlp_transfer.training.first_position import first_position_only, unread_last_layer
from nlp_transfer.transfer import build_strategy
from nlp_transfer.transfer.feature_extraction import MeanPooledModel
from tests.conftest import tiny_overrides
from tests.test_transfer_strategies import ARCHITECTURES

SUPPORTED = ["bert", "roberta", "electra"]
IDS = torch.tensor([[1, 5, 9, 12, 2, 3, 4], [1, 7, 3, 2, 0, 0, 0], [1, 8, 2, 0, 0, 0, 0]])
MASK = (IDS != 0).long()
MASK[:, 0] = 1


def classifier(model_type: str, attention: str = "sdpa", dropout: float = 0.0) -> torch.nn.Module:
    """A small random sequence classifier of ``model_type`` (dropout off unless asked, so runs compare exactly)."""
    torch.manual_seed(0)
    sizes = dict(ARCHITECTURES[model_type][0], hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    config = AutoConfig.for_model(model_type, num_labels=3, **sizes)
    config._attn_implementation = attention
    return AutoModelForSequenceClassification.from_config(config)


def logits_and_gradients(model: torch.nn.Module, first_only: bool) -> tuple[object, dict, torch.Tensor]:
    """One seeded training-mode pass of the padded batch: output, every gradient, and the random stream's next draw."""
    torch.manual_seed(3)
    model.zero_grad()
    with first_position_only(model, enabled=first_only) as applied:
        output = model(input_ids=IDS, attention_mask=MASK, labels=torch.tensor([0, 2, 1]))
        output.loss.backward()
    assert applied == first_only
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return output, grads, torch.rand(4)


@pytest.mark.parametrize("dropout", [0.0, 0.3])
@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize("model_type", SUPPORTED)
def test_logits_loss_and_gradients_are_the_full_models(model_type, attention, dropout):
    """Padded batch, training mode, dropout off and on: the same logits, loss and every gradient to float rounding,
    and the random stream left where the full forward leaves it (the same dropout draws: the same run)."""
    model = classifier(model_type, attention, dropout).train()
    full, full_grads, full_next = logits_and_gradients(model, first_only=False)
    short, short_grads, short_next = logits_and_gradients(model, first_only=True)
    assert full.logits.std() > 0 and sorted(short_grads) == sorted(full_grads)
    torch.testing.assert_close(short.logits, full.logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(short.loss, full.loss, rtol=1e-5, atol=1e-6)
    for name, grad in full_grads.items():
        torch.testing.assert_close(short_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)
    assert torch.equal(short_next, full_next)


def test_dropout_drawn_for_the_slice_alone_is_caught(monkeypatch):
    """Planted fault: masks drawn for position 0 alone (a different random stream) give other logits."""

    def slice_only(first: torch.Tensor, whole: tuple, p: float, source: object) -> torch.Tensor:
        return torch.nn.functional.dropout(first, p, training=True)

    model = classifier("bert", dropout=0.3).train()
    full = logits_and_gradients(model, first_only=False)[0].logits
    monkeypatch.setattr("nlp_transfer.training.first_position._dropout_drawn_whole", slice_only)
    assert not torch.allclose(logits_and_gradients(model, first_only=True)[0].logits, full, rtol=1e-5, atol=1e-5)


def test_the_last_layer_really_computes_one_position_and_comes_back_whole():
    """Inside the block the last layer's feed-forward sees one position per text; outside, every position again."""
    model = classifier("bert").eval()
    seen: list[tuple[int, ...]] = []
    last = unread_last_layer(model)
    hook = last.intermediate.register_forward_hook(lambda module, args, out: seen.append(tuple(args[0].shape)))
    with torch.no_grad(), first_position_only(model):
        model(input_ids=IDS, attention_mask=MASK)
    with torch.no_grad():
        hidden = model(input_ids=IDS, attention_mask=MASK, output_hidden_states=True).hidden_states
    hook.remove()
    assert seen[0][:2] == (3, 1) and seen[1][:2] == (3, IDS.shape[1])
    assert hidden[-1].shape[1] == IDS.shape[1] and "forward" not in vars(last)


def test_models_whose_head_reads_every_position_run_unchanged():
    """Token classifiers, other architectures and switched-off runs keep their own forward."""
    sizes = ARCHITECTURES["bert"][0]
    tagger = AutoModelForTokenClassification.from_config(AutoConfig.for_model("bert", num_labels=3, **sizes))
    assert unread_last_layer(tagger) is None
    assert unread_last_layer(classifier("distilbert")) is None
    assert unread_last_layer(MeanPooledModel(classifier("bert"))) is None  # the mean reads every position
    with first_position_only(classifier("bert"), enabled=False) as applied:
        assert not applied


RUN_KINDS = {
    "classification": [],
    "multilabel": ["task=multilabel"],
    "mean pooling": ["transfer.pooling=mean"],
    "ner": ["task=ner"],
    "lora": ["strategy=lora"],
    "freeze_layers": ["strategy=freeze_layers"],
    "gradual_unfreezing": ["strategy=gradual_unfreezing"],
    "frozen": ["strategy=frozen"],
    "contrastive": ["strategy=contrastive"],
}


def train(config: str, files: dict, model_dir: str, out, **extra: object) -> dict:
    """Train ``config`` on the synthetic sentiment files with the tiny model; returns run_info.json."""
    data = [f"data.{split}_file={path}" for split, path in files.items()]
    assert main(["train", config, *data, *tiny_overrides(model_dir, out, **extra)]) == 0
    return json.loads((out / "run_info.json").read_text())


def test_a_run_records_it_and_predicts_what_the_full_model_predicts(sentiment_files, tiny_model_dir, tmp_path):
    """A full fine-tuning run uses it (run_info says so); prediction with it equals the plain model's logits."""
    out = tmp_path / "run"
    info = train("recipes/configs/sentiment/minilm_full.yaml", sentiment_files, tiny_model_dir, out,
                 **{"training.epochs": 3, "training.learning_rate": 1e-3, "training.skip_unread_positions": "true"})  # fmt: skip
    assert info["first_position_only"] is True
    model, task = load_run(out)
    rows = [line.split(",") for line in sentiment_files["test"].read_text().splitlines()[1:61]]
    texts = [text for text, _ in rows]
    fast = predict_texts(model, task, texts)
    encoded = task.tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        plain = torch.softmax(model(**encoded).logits, dim=-1)
    fast_scores = torch.tensor([[p["scores"][label] for label in task.labels] for p in fast])
    torch.testing.assert_close(fast_scores, plain, rtol=1e-4, atol=1e-5)
    every = predict_texts(model, task, texts, first_position=False)  # the plain forward, through the same path
    every_scores = torch.tensor([[p["scores"][label] for label in task.labels] for p in every])
    torch.testing.assert_close(every_scores, plain, rtol=1e-4, atol=1e-5)
    assert sum(p["label"] == label for p, (_, label) in zip(fast, rows, strict=True)) >= 45  # it learned: 60 rows


def test_runs_that_read_token_states_or_switch_it_off_keep_the_full_last_layer(sentiment_files, tiny_model_dir, tmp_path):
    """Frozen (cached features), mean pooling, NER and the switch turned off: not used."""
    frozen = train("recipes/configs/sentiment/minilm_frozen.yaml", sentiment_files, tiny_model_dir, tmp_path / "frozen",
                   **{"training.skip_unread_positions": "true"})  # fmt: skip
    assert frozen["first_position_only"] is False
    off = train("recipes/configs/sentiment/minilm_full.yaml", sentiment_files, tiny_model_dir, tmp_path / "off",
                **{"training.skip_unread_positions": "false"})  # fmt: skip
    assert off["first_position_only"] is False
    on = ["data.train_file=t.csv", "training.skip_unread_positions=true"]
    configs = {name: load_config(None, [*on, *extra]) for name, extra in RUN_KINDS.items()}
    assert {name: skips_unread_positions(c, build_strategy(c)) for name, c in configs.items()} == {
        "classification": True, "multilabel": True, "mean pooling": False, "ner": False, "lora": True,
        "freeze_layers": True, "gradual_unfreezing": True, "frozen": False, "contrastive": False,
    }  # fmt: skip
    default = load_config(None, ["data.train_file=t.csv"])  # on by default: the same run, less work
    assert skips_unread_positions(default, build_strategy(default))
