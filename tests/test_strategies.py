"""Strategy mechanics: which parameters get gradients, which stay bit-identical, and optimizer groups."""

import pytest
import torch

from nlp_transfer.config import TransferConfig
from nlp_transfer.errors import ConfigError, UserError
from nlp_transfer.tasks import build_classification_task
from nlp_transfer.transfer import apply_strategy, count_parameters, find_encoder_parts


@pytest.fixture()
def task(tiny_model_dir):
    return build_classification_task(model=tiny_model_dir, labels=["negative", "positive"])


def train_steps(model, groups, task, steps=3):
    """A few AdamW steps on a fixed batch; returns the parameters before training."""
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.AdamW(groups)
    batch = task.tokenizer(["a great film", "an awful film", "lovely", "dreadful service"], padding=True, return_tensors="pt")
    labels = torch.tensor([1, 0, 1, 0])
    model.train()
    for _ in range(steps):
        loss = task.loss(model(**batch).logits, labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return before


def test_layer_discovery_splits_every_parameter_once(task):
    model = task.build_model()
    parts = find_encoder_parts(model)
    assert len(parts.layers) == 2
    assert all(name.startswith("bert.encoder.layer.") for layer in parts.layers for name in layer)
    assert all(name.startswith("bert.embeddings.") for name in parts.embeddings)
    assert set(parts.head) == {"bert.pooler.dense.weight", "bert.pooler.dense.bias", "classifier.weight", "classifier.bias"}
    listed = parts.embeddings + [n for layer in parts.layers for n in layer] + parts.other + parts.head
    assert sorted(listed) == sorted(n for n, _ in model.named_parameters())


def test_full_finetuning_changes_every_parameter(task):
    model = task.build_model()
    groups = apply_strategy(model, "full", learning_rate=1e-3, weight_decay=0.01)
    trainable, total = count_parameters(model)
    assert trainable == total
    before = train_steps(model, groups, task)
    unchanged = [n for n, p in model.named_parameters() if torch.equal(p, before[n]) and "token_type" not in n]
    # position/word embeddings of unused rows do not move; every weight matrix of the layers and head must
    assert not [n for n in unchanged if "encoder.layer" in n or "classifier" in n or "pooler" in n]
    assert {g["lr"] for g in groups} == {1e-3}
    decay = {n for g in groups if g["weight_decay"] > 0 for n in g["names"]}
    no_decay = {n for g in groups if g["weight_decay"] == 0 for n in g["names"]}
    assert "classifier.bias" in no_decay and "bert.embeddings.LayerNorm.weight" in no_decay
    assert "classifier.weight" in decay and not decay & no_decay


def test_frozen_encoder_trains_only_the_head(task):
    model = task.build_model()
    groups = apply_strategy(model, "frozen", learning_rate=1e-3, weight_decay=0.0)
    head = {"bert.pooler.dense.weight", "bert.pooler.dense.bias", "classifier.weight", "classifier.bias"}
    assert {n for n, p in model.named_parameters() if p.requires_grad} == head
    assert {n for g in groups for n in g["names"]} == head
    before = train_steps(model, groups, task)
    for name, param in model.named_parameters():
        if name in head:
            assert not torch.equal(param, before[name]), f"{name} did not train"
        else:
            assert torch.equal(param, before[name]), f"{name} changed although frozen"
            assert param.grad is None


def test_frozen_with_frozen_pooler(task):
    model = task.build_model()
    apply_strategy(model, "frozen", learning_rate=1e-3, weight_decay=0.0, options=TransferConfig(freeze_pooler=True))
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {"classifier.weight", "classifier.bias"}
    trainable, _ = count_parameters(model)
    assert trainable == 64 * 2 + 2


def test_unknown_strategy_and_unknown_architecture(task):
    model = task.build_model()
    with pytest.raises(ConfigError, match="strategy 'lora2' is unknown"):
        apply_strategy(model, "lora2", learning_rate=1e-3, weight_decay=0.0)
    with pytest.raises(UserError, match="cannot find the pretrained encoder"):
        find_encoder_parts(torch.nn.Linear(3, 3))
