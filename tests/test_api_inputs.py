"""Python API calls given inputs the CLI never produces: options apply_strategy cannot apply, labels a task does not
know, one string where a list belongs, and a DataConfig's max_eval_samples passed to evaluate_file."""

import datasets
import pytest

from nlp_transfer import (
    ConfigError,
    DataConfig,
    DataError,
    TransferConfig,
    UserError,
    apply_strategy,
    build_classification_task,
    domain_shift,
)
from nlp_transfer.transfer import prepare_model
from nlp_transfer.transfer.feature_extraction import MeanPooledModel
from tests.conftest import REPO

LR = {"learning_rate": 1e-4, "weight_decay": 0.0}


def test_apply_strategy_refuses_the_options_it_used_to_drop_and_prepare_model_applies_them(tiny_model_dir):
    """Planted faults: pooling='mean' left the plain model (the head trained on CLS), depth=1 kept both layers, and
    full with lora_r=4 was accepted; prepare_model ignored depth too."""
    task = build_classification_task(model=tiny_model_dir, labels=["a", "b"])
    mean, shallow = TransferConfig(pooling="mean"), TransferConfig(depth=1)
    with pytest.raises(UserError, match=r"pooling='mean' wraps the model.*prepare_model\(model, 'full', options\) first"):
        apply_strategy(task.build_model(), "full", **LR, options=mean)
    with pytest.raises(UserError, match=r"depth=1, but the model has 2 encoder layers.*prepare_model"):
        apply_strategy(task.build_model(), "full", **LR, options=shallow)
    with pytest.raises(ConfigError, match=r"transfer\.lora_r applies to strategy=lora, not to strategy=full"):
        apply_strategy(task.build_model(), "full", **LR, options=TransferConfig(lora_r=4))
    with pytest.raises(ConfigError, match=r"transfer\.lora_r applies to strategy=lora"):
        prepare_model(task.build_model(), "full", TransferConfig(lora_r=4))
    with pytest.raises(UserError, match=r"head_fit='logistic' is fitted by the strategy's own training"):
        apply_strategy(task.build_model(), "frozen", **LR, options=TransferConfig(head_fit="logistic"))
    with pytest.raises(UserError, match=r"case_vocab=True changes the task's tokenizer.*run_training"):
        prepare_model(task.build_model(), "full", TransferConfig(case_vocab=True))

    pooled = prepare_model(task.build_model(), "full", mean)
    assert isinstance(pooled, MeanPooledModel) and apply_strategy(pooled, "full", **LR, options=mean)
    cut = prepare_model(task.build_model(), "full", shallow)
    assert len(cut.bert.encoder.layer) == 1 and cut.config.num_hidden_layers == 1
    assert apply_strategy(cut, "full", **LR, options=shallow)
    adapted = prepare_model(task.build_model(), "lora", shallow)  # depth first, then the adapters
    assert apply_strategy(adapted, "lora", **LR, options=shallow)


def test_preprocess_names_a_label_the_task_does_not_know(tiny_model_dir):
    """Planted faults: bare KeyErrors for int labels (as load_dataset gives), a typo, and 'good|bad' read by a
    multi-label task as its characters ('g')."""
    task = build_classification_task(model=tiny_model_dir, labels=["0", "1"])
    ints = datasets.Dataset.from_dict({"text": ["good film", "bad film"], "label": [1, 0]})
    with pytest.raises(DataError, match=r"^train row 0: label 1 \(int\) is not one of the task's labels \['0', '1'\].*int2str"):
        task.preprocess(ints, "train")
    assert task.preprocess(ints.cast_column("label", datasets.Value("string")))["labels"] == [1, 0]
    typo = datasets.Dataset.from_dict({"text": ["x", "y"], "label": ["1", "pos"], "line": [2, 3]})
    with pytest.raises(DataError, match=r"^dataset row 1 \(line 3 of its file\): label 'pos' is not one of"):
        task.preprocess(typo)
    with pytest.raises(DataError, match=r"label \['1'\] is a list, and the task .* is single-label"):
        task.preprocess(datasets.Dataset.from_dict({"text": ["x"], "label": [["1"]]}))

    multi = build_classification_task(model=tiny_model_dir, labels=["bad", "good"], multi_label=True)
    joined = datasets.Dataset.from_dict({"text": ["x"], "label": ["good|bad"]})
    with pytest.raises(DataError, match=r"label 'good\|bad' is one string.*multi_label=True"):
        multi.preprocess(joined)
    unknown = datasets.Dataset.from_dict({"text": ["x", "y"], "label": [["good"], ["good", "ugly"]]})
    with pytest.raises(DataError, match=r"^dataset row 1: label 'ugly' \(of \['good', 'ugly'\]\) is not one of"):
        multi.preprocess(unknown)
    assert multi.preprocess(unknown.select([0]))["labels"] == [[0.0, 1.0]]
    # a task built with the ids themselves as its labels reads them (a regression of the fix above refused them)
    assert build_classification_task(model=tiny_model_dir, labels=[0, 1]).preprocess(ints)["labels"] == [1, 0]


def test_one_string_where_a_list_belongs_is_refused(tiny_model_dir):
    """Planted faults: labels="spam" gave the labels s, p, a, m; domain_shift("one text", ...) compared its characters;
    a sample below 20 named only the CLI flag."""
    with pytest.raises(UserError, match=r"labels='spam': give a list of label names, e\.g\. \['spam'\]"):
        build_classification_task(model=tiny_model_dir, labels="spam")
    texts = [f"text number {i}" for i in range(40)]
    missing = str(REPO / "no-such-model")  # refused before any model is looked for
    with pytest.raises(UserError, match=r"source_texts='The staff were friendly\.': give a list of texts"):
        domain_shift("The staff were friendly.", texts, model=missing, sample=20)
    with pytest.raises(UserError, match=r"target_texts='one': give a list of texts, e\.g\. \['one'\]"):
        domain_shift(texts, "one", model=missing, sample=20)
    with pytest.raises(UserError, match=r"sample=5 \(--sample 5\): the domain classifier needs at least 20"):
        domain_shift(texts, texts, model=missing, sample=5)


def test_evaluate_file_scores_the_first_max_eval_samples_rows(tiny_model_dir, monkeypatch):
    """Planted fault: evaluate_file(run, path, DataConfig(max_eval_samples=5)) scored every row; max_rows= still wins."""
    import importlib

    from nlp_transfer.inference import evaluate_file

    predict_module = importlib.import_module("nlp_transfer.inference.predict")  # the package exports a function of that name

    task = build_classification_task(
        model=tiny_model_dir, labels=["business", "entertainment", "health", "politics", "science_tech", "sports"]
    )
    scored = []
    score = task.compute_metrics
    task.compute_metrics = lambda logits, labels, dataset=None: (scored.append(len(labels)), score(logits, labels))[1]
    monkeypatch.setattr(predict_module, "load_run", lambda run_dir, **kwargs: (task.build_model().eval(), task))
    path = str(REPO / "data/topics/validation.csv")
    evaluate_file("run", path, DataConfig(max_eval_samples=5))
    evaluate_file("run", path, DataConfig(max_eval_samples=5), max_rows=3)
    assert scored == [5, 3]


def test_a_model_named_by_a_file_is_told_it_is_a_file(tmp_path):
    """Planted fault: a path to an existing file (model.safetensors, say) was answered "no such folder"."""
    import pytest

    from nlp_transfer.errors import UserError
    from nlp_transfer.models import resolve_model

    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"")
    with pytest.raises(UserError, match=r"a file, not a model folder"):
        resolve_model(str(weights))
