"""transfer.head_fit=logistic: the head fitted to convergence in one convex solve, on known answers and in runs."""

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from sklearn.linear_model import LogisticRegression
from transformers import AutoConfig, AutoModelForSequenceClassification

from nlp_transfer.config import load_config
from nlp_transfer.errors import ConfigError
from nlp_transfer.pipeline import run_training
from nlp_transfer.training.checkpoints import checkpoint_dir
from nlp_transfer.transfer import logistic_head
from nlp_transfer.transfer.feature_extraction import head_logits
from nlp_transfer.transfer.logistic_head import LINEAR_RANGE, solve_logistic, tanh_pooler
from tests.conftest import good_bad_rows, tiny_overrides, write_csv
from tests.test_transfer_strategies import ARCHITECTURES


def blobs(rows: int, width: int, classes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Overlapping Gaussian clusters: a problem whose penalised optimum is finite and not trivial."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (rows,), generator=generator)
    centres = torch.randn(classes, width, generator=generator)
    return centres[labels] + 1.5 * torch.randn(rows, width, generator=generator), labels


@pytest.mark.parametrize("c", [0.1, 1.0, 10.0])
def test_the_solve_is_scikit_learns_multinomial_logistic_regression(c):
    features, labels = blobs(90, 6, 3, seed=0)
    weight, bias = solve_logistic(features, labels, 3, c)
    reference = LogisticRegression(C=c, tol=1e-12, max_iter=100_000).fit(features.double().numpy(), labels.numpy())
    np.testing.assert_allclose(weight.numpy(), reference.coef_, atol=1e-4)
    np.testing.assert_allclose(bias.numpy(), reference.intercept_, atol=1e-4)


def test_the_multilabel_solve_is_one_binary_regression_per_label():
    features, first = blobs(80, 5, 2, seed=1)
    second = (features[:, 0] + 0.5 * torch.randn(80, generator=torch.Generator().manual_seed(2)) > 0).long()
    targets = torch.stack([first, second], dim=1).float()
    weight, bias = solve_logistic(features, targets, 2, 1.0, multi_label=True)
    for label in range(2):
        reference = LogisticRegression(C=1.0, tol=1e-12, max_iter=100_000).fit(
            features.double().numpy(), targets[:, label].numpy()
        )
        np.testing.assert_allclose(weight[label].numpy(), reference.coef_[0], atol=1e-4)
        np.testing.assert_allclose(bias[label].numpy(), reference.intercept_, atol=1e-4)


def test_only_heads_with_a_dense_tanh_pooler_are_fitted():
    for model_type, (sizes, _, _, _) in ARCHITECTURES.items():
        model = AutoModelForSequenceClassification.from_config(AutoConfig.for_model(model_type, num_labels=2, **sizes))
        if model_type == "bert":
            assert tanh_pooler(model) is model.bert.pooler
        else:
            with pytest.raises(ConfigError, match=r"transfer\.head_fit=steps"):
                tanh_pooler(model)


def test_both_strategies_refuse_a_head_they_cannot_fit_before_training():
    from nlp_transfer.config import TransferConfig
    from nlp_transfer.transfer.contrastive import ContrastiveFewShot
    from nlp_transfer.transfer.frozen import FrozenEncoder

    sizes = ARCHITECTURES["roberta"][0]
    model = AutoModelForSequenceClassification.from_config(AutoConfig.for_model("roberta", num_labels=2, **sizes))
    frozen = FrozenEncoder(TransferConfig(head_fit="logistic"))
    frozen.caches = True  # what check() sets for a cached run
    for strategy in (frozen, ContrastiveFewShot(TransferConfig(head_fit="logistic"))):
        with pytest.raises(ConfigError, match=r"transfer\.head_fit=steps"):
            strategy.prepare_model(model)
    assert FrozenEncoder(TransferConfig()).prepare_model(model) is model  # head_fit=steps: any head


def test_head_fit_logistic_needs_cached_features(sentiment_files, tiny_model_dir, tmp_path):
    base = {"data.train_file": sentiment_files["train"], "transfer.head_fit": "logistic"}
    with pytest.raises(ConfigError, match=r"transfer\.head_fit applies to strategy=frozen or contrastive, not to strategy=full"):
        load_config(None, tiny_overrides(tiny_model_dir, tmp_path, **base, strategy="full"))
    with pytest.raises(ConfigError, match=r"transfer\.head_fit=logistic .*Set transfer\.head_fit=steps"):
        load_config(
            None, tiny_overrides(tiny_model_dir, tmp_path, **base, strategy="frozen", **{"transfer.cache_features": "false"})
        )
    with pytest.raises(ConfigError, match=r"cannot stay frozen; remove transfer\.freeze_pooler"):
        frozen_pooler = {"strategy": "frozen", "transfer.freeze_pooler": "true"}
        load_config(None, tiny_overrides(tiny_model_dir, tmp_path, **base, **frozen_pooler))
    with pytest.raises(ConfigError, match=r"transfer\.head_c"):
        load_config(None, tiny_overrides(tiny_model_dir, tmp_path, **base, strategy="frozen", **{"transfer.head_c": 0}))


@pytest.mark.parametrize("strategy", ["frozen", "contrastive"])
def test_a_logistic_head_run_changes_only_the_head_and_predicts_the_solved_regression(
    strategy, sentiment_files, tiny_model_dir, tmp_path, monkeypatch
):
    seen = {}
    original = logistic_head.solve_logistic

    def spy(features, labels, *args, **kwargs):
        seen["features"], seen["labels"] = features.clone(), labels.clone()
        seen["solution"] = original(features, labels, *args, **kwargs)
        return seen["solution"]

    monkeypatch.setattr(logistic_head, "solve_logistic", spy)
    values = {
        "strategy": strategy,
        "transfer.pooling": "mean",
        "transfer.head_fit": "logistic",
        "transfer.contrastive_pairs": 4,
        "transfer.contrastive_learning_rate": 1e-3,
        "data.train_file": sentiment_files["train"],
        "data.validation_file": sentiment_files["validation"],
        "data.test_file": sentiment_files["test"],
    }
    if strategy == "contrastive":
        del values["transfer.pooling"]
    else:  # options of contrastive's pair phase are refused under frozen
        del values["transfer.contrastive_pairs"], values["transfer.contrastive_learning_rate"]
    out = tmp_path / "run"
    result = run_training(load_config(None, tiny_overrides(tiny_model_dir, out, **values)))
    start, final = load_file(f"{tiny_model_dir}/model.safetensors"), load_file(str(out / "model.safetensors"))
    if strategy == "frozen":  # the encoder is the pretrained one, bit for bit
        assert all(torch.equal(final[f"bert.{n}"], t) for n, t in start.items() if n.startswith(("embeddings.", "encoder.")))
    features = seen["features"]
    scale = LINEAR_RANGE / float(features.abs().max())
    torch.testing.assert_close(final["bert.pooler.dense.weight"], torch.eye(features.shape[1]) * scale)
    assert not final["bert.pooler.dense.bias"].any()
    # the saved head reads the vector itself: its logits are the regression's to within tanh's linear range
    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    weight, bias = seen["solution"]
    with torch.no_grad():
        logits = head_logits(model, features[:, None])
    torch.testing.assert_close(logits.double(), features.double() @ weight.T + bias, rtol=1e-3, atol=1e-3)
    assert result.info["head_fit"] == "logistic" and result.info["global_steps"] == 0
    assert result.info["learning_rates"] == {}  # it recorded training.learning_rate, which no optimizer used
    if strategy == "contrastive":  # the pair phase's rate was recorded nowhere
        assert result.info["phases"]["contrastive"]["learning_rate"] == 1e-3
    assert not checkpoint_dir(out).exists() or not any(p.name.startswith("step") for p in checkpoint_dir(out).iterdir())
    assert result.metrics["test"]["accuracy"] > 0.75  # the polarity words, learned (chance 0.5)


def test_a_multilabel_run_with_a_logistic_head_learns_each_label(tmp_path, tiny_model_dir):
    """One sigmoid regression a label, solved on the frozen mean vectors: both labels learned on held-out rows."""
    rows = good_bad_rows()
    header = ("text", "labels")
    values = {
        "task": "multilabel",
        "strategy": "frozen",
        "transfer.pooling": "mean",
        "transfer.head_fit": "logistic",
        "data.label_column": "labels",
        "data.train_file": write_csv(tmp_path / "train.csv", rows[:200], header=header),
        "data.validation_file": write_csv(tmp_path / "validation.csv", rows[200:250], header=header),
        "data.test_file": write_csv(tmp_path / "test.csv", rows[250:], header=header),
    }
    result = run_training(load_config(None, tiny_overrides(tiny_model_dir, tmp_path / "run", **values)))
    assert result.info["head_fit"] == "logistic"
    # predicting both labels on every row scores micro-F1 0.77 here (good on 3/4 of the rows, bad on 1/2)
    assert result.metrics["test"]["f1_micro"] > 0.9


def test_class_weights_beside_a_solved_head_are_refused():
    """The solve has no class weights: balanced weights changed nothing (bit-identical models) and were recorded."""
    from nlp_transfer.config import load_config

    base = ["data.train_file=x.csv", "strategy=frozen", "transfer.head_fit=logistic"]
    assert load_config(None, base).transfer.head_fit == "logistic"
    with pytest.raises(ConfigError, match=r"training\.class_weights=balanced weights the loss of a head trained in steps"):
        load_config(None, [*base, "training.class_weights=balanced"])
    # contrastive's end-to-end phase trains with the task loss, which carries the weights (regression, same day)
    contrastive = [
        "data.train_file=x.csv",
        "strategy=contrastive",
        "transfer.head_fit=logistic",
        "training.class_weights=balanced",
    ]
    assert load_config(None, [*contrastive, "transfer.contrastive_end_to_end_epochs=1"]).training.class_weights == "balanced"
