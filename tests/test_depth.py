"""transfer.depth: keep the bottom K encoder layers, with every strategy, saved as a plain smaller model."""

import csv

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

from nlp_transfer.config import ConfigError, load_config
from nlp_transfer.errors import UserError
from nlp_transfer.inference import predict
from nlp_transfer.pipeline import run_training
from nlp_transfer.transfer import encoder_depth, keep_bottom_layers
from tests.conftest import tiny_overrides
from tests.test_transfer_strategies import ARCHITECTURES


@pytest.mark.parametrize("model_type", list(ARCHITECTURES))
def test_bottom_layers_compute_what_the_full_model_computes_up_to_that_layer(model_type):
    """The depth-K model's last hidden state is the full model's K-th hidden state, on five architectures."""
    sizes = ARCHITECTURES[model_type][0]
    torch.manual_seed(0)
    full = AutoModel.from_config(AutoConfig.for_model(model_type, **sizes)).eval()
    ids = torch.tensor([[1, 5, 9, 12, 2], [1, 7, 3, 2, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])
    with torch.no_grad():
        hidden = full(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
        shallow = keep_bottom_layers(full, 2)
        out = shallow(input_ids=ids, attention_mask=mask).last_hidden_state
    assert encoder_depth(shallow) == 2 and shallow.config.num_hidden_layers == 2
    torch.testing.assert_close(out, hidden[2])
    assert not torch.allclose(out, hidden[3])


def test_depth_out_of_range_names_the_key_and_the_count():
    model = AutoModelForSequenceClassification.from_config(AutoConfig.for_model("bert", **ARCHITECTURES["bert"][0]))
    with pytest.raises(UserError, match=r"transfer.depth=4: the model has 3 encoder layers; choose a depth from 1 to 3"):
        keep_bottom_layers(model, 4)


def test_depth_zero_is_refused_at_config_time(tmp_path):
    with pytest.raises(ConfigError, match=r"transfer\.depth must be at least 1"):
        load_config(None, ["data.train_file=x.csv", "transfer.depth=0"])


@pytest.mark.parametrize("strategy", ["full", "freeze_layers", "frozen", "lora", "gradual_unfreezing"])
def test_every_strategy_trains_a_shallower_model_that_saves_as_a_plain_one(strategy, sentiment_files, tiny_model_dir, tmp_path):
    """The tiny model has 2 layers; depth 1 trains, learns, and saves a 1-layer model that transformers loads alone."""
    out = tmp_path / strategy
    values = {
        "data.train_file": sentiment_files["train"],
        "data.validation_file": sentiment_files["validation"],
        "data.test_file": sentiment_files["test"],
        "training.learning_rate": {"frozen": 5e-2, "lora": 3e-2}.get(strategy, 5e-3),
        "training.epochs": 3,
        "strategy": strategy,
        "transfer.depth": 1,
    }
    if strategy == "frozen":  # a random encoder's first token says little; the mean of its states does
        values["transfer.pooling"] = "mean"
    result = run_training(load_config(None, tiny_overrides(tiny_model_dir, out, **values)))
    assert result.metrics["test"]["accuracy"] >= 0.75, result.metrics  # 100 held-out rows, chance 0.5
    plain = AutoModelForSequenceClassification.from_pretrained(out)
    assert plain.config.num_hidden_layers == 1 and encoder_depth(plain) == 1
    assert not any(".layer.1." in name for name, _ in plain.named_parameters())
    test_rows = list(csv.DictReader(sentiment_files["test"].open(encoding="utf-8")))
    predicted = predict(out, [row["text"] for row in test_rows])  # the saved run, reloaded
    hits = sum(p["label"] == row["label"] for p, row in zip(predicted, test_rows, strict=True))
    assert hits / len(test_rows) == pytest.approx(result.metrics["test"]["accuracy"])
