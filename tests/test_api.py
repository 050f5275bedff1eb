"""The README's notebook example, with the tiny model: the stages compose without the recipes."""

from nlp_transfer import (
    DataConfig,
    TrainingConfig,
    apply_strategy,
    build_classification_task,
    fit,
    load_text_classification_data,
    predict_texts,
)
from tests.conftest import REPO


def test_readme_python_api_example(tiny_model_dir, tmp_path):
    data = load_text_classification_data(
        DataConfig(train_file=str(REPO / "data/topics/train.csv"), validation_file=str(REPO / "data/topics/validation.csv"))
    )
    task = build_classification_task(model=tiny_model_dir, labels=data.labels)
    model = task.build_model()
    groups = apply_strategy(model, "full", learning_rate=1e-4, weight_decay=0.01)
    result = fit(
        model=model,
        task=task,
        param_groups=groups,
        train_dataset=task.preprocess(data.splits["train"]),
        eval_dataset=task.preprocess(data.splits["validation"]),
        config=TrainingConfig(epochs=1, torch_threads=1),
        output_dir=tmp_path / "topics",
    )
    assert result.global_step == 10  # 300 rows, batch 32
    assert len(result.history) == 1 and "accuracy" in result.history[0]
    [prediction] = predict_texts(result.model.eval(), task, ["Parliament votes on the new budget today."])
    assert prediction["label"] in data.labels
    assert abs(sum(prediction["scores"].values()) - 1) < 1e-5


def test_every_public_name_resolves_and_a_wrong_one_is_an_attribute_error():
    import pytest

    import nlp_transfer

    for name in nlp_transfer.__all__:
        assert getattr(nlp_transfer, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'run_trainnig'"):
        nlp_transfer.run_trainnig  # noqa: B018


def test_a_config_error_is_reported_before_torch_is_imported(tmp_path):
    """Bad input answers in a fraction of a second: nothing heavy loads until the config is valid."""
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "from nlp_transfer.cli import main\n"
        "code = main(['train', 'recipes/configs/sentiment/minilm_full.yaml', 'training.epoch=2'])\n"
        "print(code, sorted(m for m in ('torch', 'transformers', 'datasets') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["2", "[]"], done.stdout + done.stderr
    assert "unknown config key 'training.epoch'" in done.stderr


def test_a_runconfig_built_in_python_gets_the_checks_of_a_config_file(tmp_path):
    """run_training on dataclasses built by hand skipped every value check: a text column naming the label column
    trained on the labels (accuracy 1.0), epochs=0 saved an untrained model, batch_size=0 was a ZeroDivisionError."""
    import pytest

    from nlp_transfer import ConfigError, RunConfig, run_training

    train = str(REPO / "data/topics/train.csv")
    for data, training, message in (
        (DataConfig(train_file=train, text_column="label"), TrainingConfig(), "both name 'label'"),
        (DataConfig(train_file=train), TrainingConfig(epochs=0), "training.epochs must be at least 1"),
        (DataConfig(train_file=train), TrainingConfig(batch_size=0), "training.batch_size must be at least 1"),
    ):
        with pytest.raises(ConfigError, match=message):
            run_training(RunConfig(data=data, training=training, output_dir=str(tmp_path / "out")))
    assert not (tmp_path / "out").exists()


def test_fit_refuses_a_folder_with_another_fits_checkpoints_and_apply_strategy_one_it_cannot_run(tiny_model_dir, tmp_path):
    """A second fit into the same folder pruned its own checkpoints in favour of the first fit's, and resume=True then
    continued the other fit; apply_strategy with fit trained only the head of gradual unfreezing (now a warning: its
    callbacks go to fit) and of contrastive (refused: its phases are its own)."""
    import pytest

    from nlp_transfer import UserError

    data = load_text_classification_data(
        DataConfig(train_file=str(REPO / "data/topics/train.csv"), validation_file=str(REPO / "data/topics/validation.csv"))
    )
    task = build_classification_task(model=tiny_model_dir, labels=data.labels)
    splits = {"train_dataset": task.preprocess(data.splits["train"]), "eval_dataset": task.preprocess(data.splits["validation"])}
    config = TrainingConfig(epochs=1, torch_threads=1, keep_checkpoints=True)
    model = task.build_model()
    groups = apply_strategy(model, "full", learning_rate=1e-4, weight_decay=0.01)
    fit(model=model, task=task, param_groups=groups, config=config, output_dir=tmp_path / "run", **splits)
    with pytest.raises(UserError, match="holds checkpoints of an earlier fit"):
        fit(model=model, task=task, param_groups=groups, config=config, output_dir=tmp_path / "run", **splits)
    with pytest.warns(UserWarning, match="strategy 'gradual_unfreezing' unfreezes through callbacks"):
        apply_strategy(task.build_model(), "gradual_unfreezing", learning_rate=1e-4, weight_decay=0.01)
    with pytest.raises(UserError, match="strategy 'contrastive' trains in phases of its own"):
        apply_strategy(task.build_model(), "contrastive", learning_rate=1e-4, weight_decay=0.01)


def test_a_runs_torch_threads_and_a_string_for_texts(tmp_path, tiny_model_dir):
    """training.torch_threads stayed set after run_training returned (or failed), for everything after it in the
    process; predict(run, "one text") predicted each character of the string."""
    import pytest
    import torch

    from nlp_transfer import DataError, RunConfig, UserError, predict, run_training

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        config = RunConfig(data=DataConfig(train_file=str(tmp_path / "missing.csv")), training=TrainingConfig(torch_threads=1))
        with pytest.raises(DataError, match=r"missing\.csv: no such file"):
            run_training(config)  # fails once the run has set its thread count
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    with pytest.raises(UserError, match=r"give a list of texts, e.g. \['great film'\]"):
        predict(tiny_model_dir, "great film")
    with pytest.raises(UserError, match=r"texts\[1\] is None"):
        predict(tiny_model_dir, ["great film", None])


def test_api_calls_that_skip_a_config_file_get_its_refusals(tiny_model_dir):
    """load_text_classification_data without a train_file said ": a folder, not a data file"; a validation_split of 2
    passed scikit-learn's words through; load_config(path, "k=v") read each character; build_classification_task took
    a label twice (id 0 had no name)."""
    import pytest

    from nlp_transfer import ConfigError, DataError, UserError, load_config

    train = str(REPO / "data/topics/train.csv")
    with pytest.raises(DataError, match=r"data\.train_file is required"):
        load_text_classification_data(DataConfig())
    with pytest.raises(DataError, match=r"validation_split must lie between 0 and 1 \(exclusive\), got 2\.0"):
        load_text_classification_data(DataConfig(train_file=train, validation_split=2.0))
    with pytest.raises(ConfigError, match=r"give a list of key=value strings, e\.g\. \['training\.epochs=3'\]"):
        load_config(None, "training.epochs=3")
    with pytest.raises(UserError, match="names a more than once"):
        build_classification_task(model=tiny_model_dir, labels=["a", "a", "b"])


def test_a_run_trained_on_names_written_with_decimals_scores_its_own_splits(tiny_model_dir):
    """check and export re-read a run's splits, whose "1.0" labels now read as "1": KeyError '1' on an older run
    trained on names "0.0"/"1.0" (regression, same day)."""
    from nlp_transfer.inference import labelled_text_logits

    task = build_classification_task(model=tiny_model_dir, labels=["0.0", "1.0"])
    _, ids = labelled_text_logits(task.build_model().eval(), task, ["good", "bad"], ["1", "0"])
    assert ids.tolist() == [1, 0]


def test_fit_checks_its_settings_keeps_its_thread_count_and_will_not_extend_a_finished_fit(tiny_model_dir, tmp_path):
    """Planted faults: batch_size=0 ended in ZeroDivisionError; torch_threads was ignored by fit; and resume=True with
    more epochs into a finished fit's folder (whose last checkpoint keeps no weights) trained the fresh model it was
    handed while its history read as one continuous run."""
    import dataclasses

    import pytest
    import torch

    from nlp_transfer import ConfigError, UserError

    data = load_text_classification_data(
        DataConfig(train_file=str(REPO / "data/topics/train.csv"), validation_file=str(REPO / "data/topics/validation.csv"))
    )
    task = build_classification_task(model=tiny_model_dir, labels=data.labels)
    splits = {"train_dataset": task.preprocess(data.splits["train"]), "eval_dataset": task.preprocess(data.splits["validation"])}

    def run(config, resume=False):
        model = task.build_model()
        groups = apply_strategy(model, "full", learning_rate=1e-4, weight_decay=0.01)
        return fit(
            model=model, task=task, param_groups=groups, config=config, output_dir=tmp_path / "run", resume=resume, **splits
        )

    with pytest.raises(ConfigError, match=r"training\.batch_size must be at least 1, got 0"):
        run(TrainingConfig(epochs=1, batch_size=0))
    with pytest.raises(UserError, match="fit: eval_dataset has no rows"):  # it said "the evaluation data has no labels"
        model = task.build_model()
        fit(model=model, task=task, param_groups=apply_strategy(model, "full", learning_rate=1e-4, weight_decay=0.01),
            train_dataset=splits["train_dataset"], eval_dataset=splits["eval_dataset"].select([]),
            config=TrainingConfig(epochs=1), output_dir=tmp_path / "empty")  # fmt: skip
    before = torch.get_num_threads()
    seen = []
    task.collator = (lambda collate: lambda: (seen.append(torch.get_num_threads()), collate())[1])(task.collator)
    config = TrainingConfig(epochs=1, torch_threads=1)
    run(config)
    assert set(seen) == {1} and torch.get_num_threads() == before
    with pytest.raises(UserError, match=r"written when its fit had finished \(1 epoch\(s\)\), so it keeps no weights"):
        run(dataclasses.replace(config, epochs=3), resume=True)
    assert run(config, resume=True).global_step == 10  # the same settings: nothing left to train, the best model back
