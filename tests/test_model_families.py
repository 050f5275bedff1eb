"""Model families beyond BERT: tiny random ALBERT, DeBERTa(-v2), MPNet, RoBERTa, ELECTRA, DistilBERT models.

Each check looks at the model's structure (which parameters train, what the head computes, which lengths fit)
rather than at a training run, so the whole file runs in seconds.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

from nlp_transfer.config import TransferConfig
from nlp_transfer.errors import ConfigError, UserError
from nlp_transfer.models import check_max_length
from nlp_transfer.transfer import apply_strategy, prepare_model
from nlp_transfer.transfer.depth import encoder_depth
from nlp_transfer.transfer.feature_extraction import CachedFeatureHead, MeanPooledModel, encoder_states, head_logits, pool
from nlp_transfer.transfer.layers import find_encoder_parts, find_layer_stack

COMMON = {"num_hidden_layers": 2, "hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64, "vocab_size": 120}
FAMILIES = {
    "albert": {**COMMON, "embedding_size": 16},
    "deberta": COMMON,
    "deberta-v2": {**COMMON, "relative_attention": True, "pos_att_type": ["p2c", "c2p"], "position_buckets": 8},
    "mpnet": COMMON,
    "roberta": {**COMMON, "pad_token_id": 1},
    "electra": {**COMMON, "embedding_size": 16},
    "distilbert": {"n_layers": 2, "dim": 32, "n_heads": 2, "hidden_dim": 64, "vocab_size": 120},
}
LR = 1e-3


def tiny(model_type: str, num_labels: int = 2, **changes: object) -> nn.Module:
    """A tiny random sequence classifier of ``model_type`` in eval mode."""
    torch.manual_seed(0)
    config = AutoConfig.for_model(model_type, num_labels=num_labels, **{**FAMILIES[model_type], **changes})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return AutoModelForSequenceClassification.from_config(config).eval()


def batch(rows: int = 3, tokens: int = 7) -> dict[str, torch.Tensor]:
    """Random token ids, the last row padded after its fifth token."""
    torch.manual_seed(1)
    ids = torch.randint(5, 100, (rows, tokens))
    mask = torch.ones_like(ids)
    mask[-1, 5:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def trainable(model: nn.Module) -> set[str]:
    """Names of the parameters that train."""
    return {n for n, p in model.named_parameters() if p.requires_grad}


# --------------------------------------------------------------------------- 1. the head on cached features


@pytest.mark.parametrize("num_labels", [2, 3])
def test_albert_head_on_cached_features_gives_the_models_own_logits(num_labels):
    model, inputs = tiny("albert", num_labels), batch()
    with torch.no_grad():
        expected = model(**inputs).logits
        hidden = encoder_states(model, inputs)
        cached = pool(hidden, inputs["attention_mask"], "cls")
        torch.testing.assert_close(head_logits(model, hidden), expected)
        torch.testing.assert_close(head_logits(model, cached[:, None]), expected)
        torch.testing.assert_close(CachedFeatureHead(model)(features=cached).logits, expected)
        mean = pool(hidden, inputs["attention_mask"], "mean")
        assert MeanPooledModel(model)(**inputs).logits.shape == (3, num_labels)
        torch.testing.assert_close(MeanPooledModel(model)(**inputs).logits, head_logits(model, mean[:, None]))


def test_albert_cached_head_trains_the_models_own_pooler_and_classifier():
    model = tiny("albert")
    head = CachedFeatureHead(model)
    shared = {id(p) for p in head.parameters()}
    expected = {"albert.pooler.weight", "albert.pooler.bias", "classifier.weight", "classifier.bias"}
    assert {n for n, p in model.named_parameters() if id(p) in shared} == expected


def test_a_head_laid_out_otherwise_is_refused_with_strategy_full():
    model = tiny("albert")
    del model.albert.pooler_activation  # a bare dense pooler whose activation is unknown
    with pytest.raises(UserError, match=r"AlbertForSequenceClassification: .*pooler_activation.*use strategy=full"):
        prepare_model(model, "frozen", TransferConfig())
    with pytest.raises(UserError, match=r"use strategy=full"):
        prepare_model(model, "full", TransferConfig(pooling="mean"))


def test_a_classifier_that_does_not_pool_is_refused_rather_than_giving_per_token_logits():
    model = tiny("roberta")
    model.classifier = nn.Linear(32, 2)  # reads every token: its "logits" would be (texts, 1, labels)
    with pytest.raises(UserError, match=r"logits of shape \(3, 1, 2\).*use strategy=full"):
        head_logits(model, torch.zeros(3, 1, 32))


# --------------------------------------------------------------------------- 2. layers that share weights


def test_albert_layers_sharing_weights_are_refused_for_per_layer_options():
    model = tiny("albert")
    with pytest.raises(UserError, match=r"its 2 encoder layers share the weights of 1 block.*use strategy=full, lora or frozen"):
        find_layer_stack(model)
    parts = find_encoder_parts(model)  # the head and embeddings are still found
    assert parts.head == ["albert.pooler.weight", "albert.pooler.bias", "classifier.weight", "classifier.bias"]
    assert any(".albert_layer_groups.0." in n for n in parts.other)  # the shared block counts with ``other``
    with pytest.raises(UserError, match="share the weights"):
        len(parts.layers)
    for strategy, options in [
        ("freeze_layers", TransferConfig(freeze_layers=1)),
        ("freeze_layers", TransferConfig(freeze_layers=2)),
        ("gradual_unfreezing", TransferConfig()),
        ("full", TransferConfig(layer_lr_decay=0.9)),
    ]:
        with pytest.raises(UserError, match="share the weights"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            apply_strategy(tiny("albert"), strategy, learning_rate=LR, weight_decay=0.0, options=options)
    with pytest.raises(UserError, match="share the weights"):
        prepare_model(tiny("albert"), "full", TransferConfig(depth=1))
    # rank reads the last hidden state, which the layers that run give: their count, not the shared blocks' (it was 1)
    assert encoder_depth(tiny("albert")) == 2


def test_albert_trains_with_full_frozen_and_lora():
    model = tiny("albert")
    apply_strategy(model, "full", learning_rate=LR, weight_decay=0.0)
    assert trainable(model) == {n for n, _ in model.named_parameters()}
    model = tiny("albert")
    apply_strategy(model, "frozen", learning_rate=LR, weight_decay=0.0)
    assert trainable(model) == {"albert.pooler.weight", "albert.pooler.bias", "classifier.weight", "classifier.bias"}
    lora = prepare_model(tiny("albert"), "lora", TransferConfig(lora_target_modules=["query", "value"]))
    apply_strategy(
        lora, "lora", learning_rate=LR, weight_decay=0.0, options=TransferConfig(lora_target_modules=["query", "value"])
    )
    assert any(".lora_A." in n for n in trainable(lora))


@pytest.mark.parametrize("model_type", ["deberta-v2", "mpnet", "electra", "distilbert"])
def test_layers_with_their_own_weights_are_counted_one_per_layer(model_type):
    model = tiny(model_type)
    assert len(find_layer_stack(model)[1]) == 2
    assert len(find_encoder_parts(model).layers) == 2


# --------------------------------------------------------------------------- 3. positions after the padding index


@pytest.mark.parametrize(
    ("model_type", "changes"),
    [("mpnet", {}), ("roberta", {}), ("roberta", {"pad_token_id": 0}), ("deberta-v2", {}), ("electra", {})],
)
def test_max_length_check_lets_through_exactly_the_lengths_the_model_runs(model_type, changes):
    positions = 24
    config = AutoConfig.for_model(model_type, max_position_embeddings=positions, **{**FAMILIES[model_type], **changes})
    torch.manual_seed(0)
    model = AutoModel.from_config(config).eval()
    accepted = [n for n in range(positions - 4, positions + 1) if _accepted(config, n)]
    longest = max(accepted)
    with torch.no_grad():
        model(input_ids=torch.full((1, longest), 7))  # the longest length the check lets through runs
        if longest < positions:  # one token more overruns the position embeddings
            with pytest.raises((IndexError, RuntimeError)):  # the embedding lookup, or the token-type gather before it
                model(input_ids=torch.full((1, longest + 1), 7))


def _accepted(config: object, max_length: int) -> bool:
    """Whether ``check_max_length`` lets ``max_length`` through for ``config``."""
    try:
        check_max_length(config, max_length)
    except UserError:
        return False
    return True


def test_mpnet_max_length_equal_to_its_position_embeddings_is_refused():
    config = AutoConfig.for_model("mpnet", max_position_embeddings=64, **COMMON)
    with pytest.raises(UserError, match=r"training\.max_length=64 is longer than the model's 62 positions"):
        check_max_length(config, 64)
    check_max_length(config, 62)


# --------------------------------------------------------------------------- 4. transfer.freeze_pooler


@pytest.mark.parametrize("model_type", ["deberta", "deberta-v2", "albert"])
def test_freeze_pooler_freezes_the_pooler_wherever_it_sits(model_type):
    model = tiny(model_type)
    apply_strategy(model, "frozen", learning_rate=LR, weight_decay=0.0)
    pooler = set(find_encoder_parts(model).pooler)
    assert pooler and pooler < trainable(model)
    model = tiny(model_type)
    groups = apply_strategy(model, "frozen", learning_rate=LR, weight_decay=0.0, options=TransferConfig(freeze_pooler=True))
    assert trainable(model) == {"classifier.weight", "classifier.bias"}
    assert {n for g in groups for n in g["names"]} == {"classifier.weight", "classifier.bias"}


@pytest.mark.parametrize("model_type", ["roberta", "electra", "distilbert", "mpnet"])
def test_freeze_pooler_is_refused_on_a_model_without_a_pooler(model_type):
    model = tiny(model_type)
    assert find_encoder_parts(model).pooler == []
    with pytest.raises(ConfigError, match=r"transfer\.freeze_pooler=true: .* has no pooler.*remove transfer\.freeze_pooler"):
        apply_strategy(model, "frozen", learning_rate=LR, weight_decay=0.0, options=TransferConfig(freeze_pooler=True))
