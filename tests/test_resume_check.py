"""--resume refuses a config that changes the training it continues, and reports harmless changes."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from nlp_transfer.config import RunConfig, config_to_dict, describe_settings, load_config, save_config
from nlp_transfer.errors import UserError
from nlp_transfer.training.resume_check import ALTERS_TRAINING, HARMLESS_ON_RESUME, changed_keys, check_resumable

SOURCE = "runs/x/config.yaml"
CHANGED = "<changed on resume>"


def config_dict(**changes: Any) -> dict[str, Any]:
    """The default config as a dict, with dotted ``changes`` (e.g. training__epochs=3) applied."""
    raw = config_to_dict(RunConfig())
    for dotted, value in changes.items():
        set_dotted(raw, dotted.replace("__", "."), value)
    return raw


def set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    """Set ``a.b`` in nested dicts."""
    *parents, last = key.split(".")
    for part in parents:
        raw = raw[part]
    raw[last] = value


def test_every_config_key_is_classified_once():
    keys = [key for key, *_ in describe_settings()]
    classified = ALTERS_TRAINING + HARMLESS_ON_RESUME
    assert sorted(set(keys) - set(classified)) == [], "classify the new setting in nlp_transfer/training/resume_check.py"
    assert sorted(set(classified) - set(keys)) == [], "a classified key is no longer a setting"
    assert len(classified) == len(set(classified)), "a key is classified twice"


def test_identical_configs_resume_with_nothing_to_report():
    assert check_resumable(config_dict(), config_dict(), SOURCE) == []


def test_a_config_read_back_from_config_yaml_is_identical(tmp_path):
    config = load_config(
        None,
        ["data.train_file=train.csv", "training.learning_rate=1e-4", "data.labels=[negative, positive]", "training.epochs=2"],
    )
    save_config(config, tmp_path / "config.yaml")
    saved = config_to_dict(load_config(tmp_path / "config.yaml"))
    assert check_resumable(saved, config_to_dict(config), str(tmp_path / "config.yaml")) == []


@pytest.mark.parametrize(("key", "old", "new"), [("training.epochs", 2, 3), ("training.batch_size", 16, 32)])
def test_a_changed_schedule_is_refused_naming_key_values_and_fix(key, old, new):
    saved = config_dict(**{key.replace(".", "__"): old})
    current = config_dict(**{key.replace(".", "__"): new})
    with pytest.raises(UserError) as caught:
        check_resumable(saved, current, SOURCE)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{SOURCE}: {key} changed from {old} to {new}")
    assert "Resume with the original value" in message and "--overwrite" in message


def test_a_changed_logging_interval_is_allowed_and_reported():
    assert check_resumable(config_dict(), config_dict(training__logging_steps=5), SOURCE) == ["training.logging_steps"]


def test_the_first_altering_key_is_named_and_the_others_listed():
    current = config_dict(training__logging_steps=5, seed=1, training__learning_rate=1.0, transfer__lora_r=4)
    with pytest.raises(UserError, match=r"seed changed from 42 to 1 .*also changed: training\.learning_rate, transfer\.lora_r\)"):
        check_resumable(config_dict(), current, SOURCE)


@pytest.mark.parametrize("key", ALTERS_TRAINING)
def test_every_altering_key_is_refused(key):
    with pytest.raises(UserError, match=f"^{re.escape(f'{SOURCE}: {key} changed from ')}"):
        check_resumable(config_dict(), config_dict(**{key.replace(".", "__"): CHANGED}), SOURCE)


@pytest.mark.parametrize("key", HARMLESS_ON_RESUME)
def test_every_harmless_key_is_allowed_and_reported(key):
    assert check_resumable(config_dict(), config_dict(**{key.replace(".", "__"): CHANGED}), SOURCE) == [key]


def test_a_changed_entry_of_a_dict_setting_is_refused_as_the_setting():
    current = config_dict()
    current["data"]["hub_splits"]["validation"] = "dev"
    with pytest.raises(UserError, match=r"data\.hub_splits changed from"):
        check_resumable(config_dict(), current, SOURCE)


def test_a_key_this_check_does_not_know_is_refused():
    current = copy.deepcopy(config_dict())
    current["training"]["new_setting"] = 1
    assert changed_keys(config_dict(), current) == ["training.new_setting"]
    with pytest.raises(UserError, match=r"training\.new_setting changed from '<absent>' to 1"):
        check_resumable(config_dict(), current, SOURCE)


def test_two_spellings_of_one_local_path_are_the_same_setting(tmp_path, monkeypatch):
    """--resume data.train_file=./train.csv was refused as a change from train.csv (the same file)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.csv").write_text("text,label\n", encoding="utf-8")
    (tmp_path / "other.csv").write_text("text,label\n", encoding="utf-8")
    saved = {"data": {"train_file": "train.csv"}}
    assert check_resumable(saved, {"data": {"train_file": "./train.csv"}}, "c.yaml") == []
    with pytest.raises(UserError, match=r"data\.train_file changed from 'train\.csv' to 'other\.csv'"):
        check_resumable(saved, {"data": {"train_file": "other.csv"}}, "c.yaml")


def test_a_run_saved_before_options_of_other_strategies_were_refused_still_resumes_and_shifts(tmp_path):
    """A full run whose config.yaml holds transfer.lora_target_modules (accepted and ignored then) could no longer be
    resumed, nor read by shift: its saved config was read strictly."""
    import yaml

    from nlp_transfer.config import config_to_dict, load_config
    from nlp_transfer.errors import UserError
    from nlp_transfer.pipeline import check_resumed_config
    from nlp_transfer.shift.sources import run_training_texts

    train = tmp_path / "train.csv"
    train.write_text("text,label\ngreat film,pos\nawful film,neg\n", encoding="utf-8")
    files = [f"data.train_file={train}", f"data.validation_file={train}"]
    current = load_config(None, [*files, "strategy=full", f"output_dir={tmp_path}"])
    saved = config_to_dict(current)
    saved["transfer"]["lora_target_modules"] = ["query", "value"]  # what the older version wrote
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(saved), encoding="utf-8")
    check_resumed_config(current, tmp_path)  # the option did nothing under full: no change to refuse
    assert run_training_texts(tmp_path) == ["great film", "awful film"]
    changed = load_config(None, [*files, "strategy=full", "seed=7", f"output_dir={tmp_path}"])
    with pytest.raises(UserError, match="seed changed from 42 to 7"):  # a real change is still refused
        check_resumed_config(changed, tmp_path)
