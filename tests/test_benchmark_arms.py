"""benchmarks/few_shot.py's arms: a run keeps the settings it was recorded with when the strategy's defaults move."""

import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def few_shot(monkeypatch):
    """The benchmark module, imported as its scripts import each other (from their own folder)."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import few_shot

    yield few_shot
    for name in ("few_shot", "augment_curve", "common"):
        sys.modules.pop(name, None)


def group():
    """The parts of a sampled (size, seed) group that recipe_overrides reads."""
    files = {"train": "t.csv", "validation": "v.csv", "test": "s.csv"}
    return {"seed": 0, "files": files, "counts": {"train_rows": 16}, "names": ["negative", "positive"], "descriptions": {}}


def test_runs_without_a_pair_learning_rate_keep_the_rate_they_were_recorded_at(few_shot):
    from nlp_transfer.config import TransferConfig

    assert TransferConfig().contrastive_learning_rate != few_shot.RECORDED_PAIR_LEARNING_RATE  # the default moved on
    plain = few_shot.parse_args(["--contrastive-grid", "cosine:20,supcon:20"])
    arms = few_shot.method_arms("contrastive", plain)
    assert all(few_shot.PAIR_LEARNING_RATE not in settings for settings in arms.values())  # the records' settings
    for settings in arms.values():
        overrides = few_shot.recipe_overrides("contrastive", settings, group(), threads=1)
        assert overrides[few_shot.PAIR_LEARNING_RATE] == pytest.approx(2e-5)
    faster = few_shot.parse_args(["--contrastive-grid", "cosine:20", "--pair-learning-rate", "6e-5"])
    settings = few_shot.method_arms("contrastive", faster)["cosine:20"]
    assert settings[few_shot.PAIR_LEARNING_RATE] == pytest.approx(6e-5)  # recorded, so the runs tell apart
    assert few_shot.recipe_overrides("contrastive", settings, group(), threads=1)[few_shot.PAIR_LEARNING_RATE] == 6e-5
    frozen = few_shot.recipe_overrides("frozen_mean", few_shot.method_arms("frozen_mean", plain)["default"], group(), 1)
    assert few_shot.PAIR_LEARNING_RATE not in frozen


def test_head_fit_trains_the_arm_the_benchmark_defines(few_shot, monkeypatch, tmp_path):
    """head_fit.py builds its encoder run from few_shot.py's own defaults (it broke once when an arm setting was added)."""
    import argparse

    import head_fit

    from nlp_transfer import pipeline

    trained = []
    monkeypatch.setattr(few_shot, "write_group", lambda *args, **kwargs: group())
    monkeypatch.setattr(pipeline, "run_training", lambda config, **kwargs: trained.append(config))
    corpus = argparse.Namespace(names=["negative", "positive"])
    args = argparse.Namespace(arm="supcon:20", size=8, threads=1)
    head_fit.train_encoder(corpus, "sst2", 0, tmp_path, args)
    (config,) = trained
    assert (config.strategy, config.transfer.contrastive_loss) == ("contrastive", "supcon")
    assert config.transfer.contrastive_learning_rate == pytest.approx(2e-5)  # the rate its records were made at
    sys.modules.pop("head_fit", None)
