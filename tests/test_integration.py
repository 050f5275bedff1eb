"""The real default model on slices of real data (../shared/datasets): it must learn, not just run."""

import json

import pytest

from nlp_transfer.config import load_config
from nlp_transfer.inference import predict
from nlp_transfer.pipeline import run_training
from tests.conftest import REPO, shared_dataset

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sst2_run(tmp_path_factory):
    """The sentiment recipe's SST-2 config on the first 1,000 training rows (5 % of them validate), tested on all 872 dev rows.

    Measured 2026-12-03 (one thread, a loaded machine): test accuracy 0.792 (2,000 rows x 3 epochs took twice as long).
    """
    shared_dataset("sst2", "train.tsv")
    out = tmp_path_factory.mktemp("sst2") / "run"
    config = load_config(
        REPO / "recipes/configs/sentiment/sst2_full.yaml",
        [
            f"output_dir={out}",
            "data.max_train_samples=1000",
            "training.epochs=2",
            "training.learning_rate=1e-4",
            "training.torch_threads=2",
            f"data.train_file={shared_dataset('sst2', 'train.tsv')}",
            f"data.test_file={shared_dataset('sst2', 'dev.tsv')}",
        ],
    )
    return run_training(config)


def test_sst2_slice_reaches_074_dev_accuracy(sst2_run):
    """Dev is the untouched test split: the best model was chosen on 50 rows carved from the 1,000."""
    assert sst2_run.info["examples"] == {"train": 950, "validation": 50, "test": 872}
    assert sst2_run.info["base_model_source"] in {"packaged", "hub"}
    assert sst2_run.metrics["test"]["accuracy"] >= 0.74  # chance is 0.51


def test_pipeline_and_predict_agree_on_the_saved_model(sst2_run):
    from transformers import pipeline

    dev = shared_dataset("sst2", "dev.tsv").read_text(encoding="utf-8").splitlines()[1:201]
    texts = [line.split("\t")[0].strip() for line in dev]
    ours = predict(sst2_run.output_dir, texts, batch_size=32)
    theirs = pipeline("text-classification", model=str(sst2_run.output_dir), device="cpu")(texts, batch_size=32)
    assert [o["label"] for o in ours] == [t["label"] for t in theirs]
    assert max(abs(o["score"] - t["score"]) for o, t in zip(ours, theirs, strict=True)) < 1e-4
    assert {o["label"] for o in ours} == {"negative", "positive"}


def test_emotion_slice_macro_f1_far_above_chance(tmp_path):
    out = tmp_path / "run"
    config = load_config(
        REPO / "recipes/configs/classification/emotion_full.yaml",
        [
            f"output_dir={out}",
            "data.max_train_samples=1000",
            "data.max_eval_samples=500",
            "training.epochs=2",
            "training.batch_size=16",
            "training.learning_rate=1.5e-4",
            "training.torch_threads=2",
            f"data.train_file={shared_dataset('emotion', 'train.txt')}",
            f"data.validation_file={shared_dataset('emotion', 'val.txt')}",
            f"data.test_file={shared_dataset('emotion', 'test.txt')}",
        ],
    )
    result = run_training(config)
    # six classes: a uniform guess has macro-F1 about 0.17, the majority class about 0.08. 1,000 rows at batch 16 and
    # learning rate 1.5e-4 (as many steps as 2,000 rows at batch 32, half the compute) learn more than 2,000 at the
    # recipe's batch 32 and 1e-4 did (macro-F1 0.42, accuracy 0.67): measured 2026-12-04 on the first 500 test rows,
    # macro-F1 0.53 and 0.61 (two runs, seed 42) and 0.51 (seed 7), accuracy 0.75 to 0.77
    assert result.metrics["test"]["f1_macro"] >= 0.35
    assert result.metrics["test"]["accuracy"] >= 0.55
    saved = json.loads((out / "metrics.json").read_text())
    assert set(saved["test"]["per_class"]) == {"anger", "fear", "joy", "love", "sadness", "surprise"}


@pytest.fixture(scope="module")
def conll_run(tmp_path_factory):
    """The NER recipe's CoNLL-2003 config on 600 training sentences, validated and tested on 500 each.

    Measured 2026-12-03 with 1,500 sentences: validation F1 0.78, test PER F1 0.91. With these 600 at batch 8 and
    learning rate 1.5e-4 (150 steps; 600 at the recipe's batch 16 reached validation F1 0.60 only): validation F1 0.69,
    test PER F1 0.84 (seed 42).
    """
    out = tmp_path_factory.mktemp("conll") / "run"
    config = load_config(
        REPO / "recipes/configs/ner/conll2003_full.yaml",
        [
            f"output_dir={out}",
            "data.max_train_samples=600",
            "data.max_eval_samples=500",
            "training.epochs=2",
            "training.batch_size=8",
            "training.learning_rate=1.5e-4",
            "training.torch_threads=2",
            f"data.train_file={shared_dataset('conll2003', 'train.txt')}",
            f"data.validation_file={shared_dataset('conll2003', 'valid.txt')}",
            f"data.test_file={shared_dataset('conll2003', 'test.txt')}",
        ],
    )
    return run_training(config)


def test_conll_slice_entity_f1_far_above_majority_tag(conll_run):
    # tagging every word with the majority tag O finds no entity: precision, recall and F1 are 0
    assert conll_run.metrics["validation"]["f1"] >= 0.55
    assert set(conll_run.metrics["test"]["per_type"]) == {"PER", "ORG", "LOC", "MISC"}
    assert conll_run.metrics["test"]["per_type"]["PER"]["f1"] >= 0.6


def test_ner_pipeline_first_aggregation_agrees_with_predict(conll_run):
    import re

    from transformers import pipeline

    from nlp_transfer.data.conll import read_conll

    sentences = read_conll(str(shared_dataset("conll2003", "test.txt")), tag_column=3).sentences
    plain = [s for s in sentences if len(s.tokens) > 4 and all(re.fullmatch(r"\w+|[^\w\s]", t) for t in s.tokens)]
    texts = [" ".join(s.tokens) for s in plain[:60]]
    ours = predict(conll_run.output_dir, texts)
    tagger = pipeline("token-classification", model=str(conll_run.output_dir), aggregation_strategy="first", device="cpu")
    theirs = tagger(texts)
    found = 0
    for mine, other in zip(ours, theirs, strict=True):
        assert [(e["type"], e["start"], e["end"]) for e in mine["entities"]] == [
            (e["entity_group"], e["start"], e["end"]) for e in other
        ]
        found += len(mine["entities"])
    assert found >= 30
