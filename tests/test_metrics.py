"""Run metrics against hand-computed values, and the offline `evaluate` modules that wrap the same arithmetic."""

import subprocess
import sys

import numpy as np
import pytest

from nlp_transfer.evaluation import classification_metrics, entity_metrics, load_metric, save_confusion_matrix


def test_multiclass_metrics_hand_computed():
    # gold: a a b b c ; predicted: a b b b a
    metrics = classification_metrics(np.array([0, 1, 1, 1, 0]), np.array([0, 0, 1, 1, 2]), label_names=["a", "b", "c"])
    assert metrics["accuracy"] == pytest.approx(3 / 5)
    # per class: a p=1/2 r=1/2 ; b p=2/3 r=1 ; c p=0 r=0
    assert metrics["per_class"]["a"]["f1"] == pytest.approx(0.5)
    assert metrics["per_class"]["b"]["f1"] == pytest.approx(0.8)
    assert metrics["per_class"]["c"]["support"] == 1
    assert metrics["f1_macro"] == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert metrics["f1_micro"] == pytest.approx(0.6)
    assert metrics["confusion_matrix"]["matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert "roc_auc" not in metrics


def test_binary_roc_auc_from_scores():
    scores = np.array([[0.9, 0.1], [0.3, 0.7], [0.35, 0.65], [0.2, 0.8]])  # one of four pos>neg pairs is misordered
    metrics = classification_metrics(scores.argmax(1), np.array([0, 0, 1, 1]), label_names=["n", "p"], prediction_scores=scores)
    assert metrics["roc_auc"] == pytest.approx(0.75)


def test_multilabel_metrics_hand_computed():
    gold = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0]])
    pred = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 1]])
    metrics = classification_metrics(pred, gold, label_names=["x", "y", "z"], multi_label=True)
    assert metrics["subset_accuracy"] == pytest.approx(1 / 3)
    # tp=4 fp=1 fn=1 -> micro p=r=f1=0.8
    assert metrics["f1_micro"] == pytest.approx(0.8)
    assert metrics["per_class"]["z"]["f1"] == pytest.approx(0.0)
    assert metrics["hamming_loss"] == pytest.approx(2 / 9)


def test_module_loads_offline_through_evaluate(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    module = load_metric("classification_metrics", "multiclass")
    assert module.compute(predictions=[1, 1], references=[1, 0])["accuracy"] == pytest.approx(0.5)


def test_confusion_matrix_png(tmp_path):
    path = save_confusion_matrix({"labels": ["a", "b"], "matrix": [[3, 1], [0, 4]]}, tmp_path / "cm.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_packaged_evaluate_modules_give_the_scores_runs_compute(monkeypatch):
    """Runs call the arithmetic directly; `evaluate.load` of the shipped modules must give the same numbers."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pred, gold, scores = [0, 1, 1, 2, 0], [0, 1, 0, 2, 2], np.eye(3)[[0, 1, 1, 2, 0]] * 0.8 + 0.05
    direct = classification_metrics(np.array(pred), np.array(gold), label_names=["a", "b", "c"], prediction_scores=scores)
    module = load_metric("classification_metrics", "multiclass")
    assert module.compute(predictions=pred, references=gold, label_names=["a", "b", "c"]) == direct
    rows_pred, rows_gold = [[1, 0], [1, 1], [0, 0]], [[1, 0], [0, 1], [0, 1]]
    direct = classification_metrics(np.array(rows_pred), np.array(rows_gold), label_names=["x", "y"], multi_label=True)
    assert (
        load_metric("classification_metrics", "multilabel").compute(
            predictions=rows_pred, references=rows_gold, label_names=["x", "y"]
        )
        == direct
    )
    tags_pred, tags_gold = [["B-PER", "I-PER", "O"], ["B-LOC", "O"]], [["B-PER", "I-PER", "O"], ["B-ORG", "O"]]
    assert load_metric("entity_metrics").compute(predictions=tags_pred, references=tags_gold) == entity_metrics(
        tags_pred, tags_gold
    )
    assert entity_metrics(tags_pred, tags_gold)["f1"] == pytest.approx(0.5)
    # a tagger's raw argmax (an entity begun with I-): the module scored it 0.0 where the run, repairing it, scored 1.0
    raw, gold = [["I-PER", "I-PER", "O", "I-LOC"]], [["B-PER", "I-PER", "O", "B-LOC"]]
    from_module = load_metric("entity_metrics").compute(predictions=raw, references=gold)
    assert from_module == entity_metrics([["B-PER", "I-PER", "O", "B-LOC"]], gold, raw) and from_module["f1"] == 1.0
    assert from_module["accuracy"] == pytest.approx(0.5)  # token accuracy counts the tags as predicted, as conlleval


def test_a_run_never_imports_the_evaluate_library():
    """`import evaluate` also loads transformers.pipelines (seconds a process): training and predict must not need it."""
    code = (
        "import sys, numpy as np\n"
        "import nlp_transfer.cli, nlp_transfer.pipeline, nlp_transfer.inference\n"
        "from nlp_transfer.evaluation import classification_metrics, entity_metrics\n"
        "classification_metrics(np.array([0, 1]), np.array([0, 1]), label_names=['a', 'b'])\n"
        "entity_metrics([['B-PER']], [['B-PER']])\n"
        "print(sorted(m for m in ('evaluate', 'transformers.pipelines') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_which_metrics_go_down():
    """A task's error metric (mse) picked the model of its worst epoch and ranked compare's strategies upside down."""
    from nlp_transfer.compare.rows import scores_better
    from nlp_transfer.evaluation.metrics import lower_is_better
    from nlp_transfer.training.loop import beats

    for name in ("loss", "hamming_loss", "mse", "rmse", "mae", "mean_squared_error", "ece", "perplexity"):
        assert lower_is_better(name), name
        assert beats(name, 0.1, 0.2) and not beats(name, 0.3, 0.2)
        assert scores_better(0.1, 0.2, name)
    for name in ("accuracy", "f1_macro", "r2", "roc_auc", "entity_f1", "pair_auc", "precision_micro", "loss_ratio"):
        assert not lower_is_better(name), name
        assert beats(name, 0.3, 0.2) and not scores_better(0.1, 0.2, name)
