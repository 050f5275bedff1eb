"""The typed config: YAML, dotted overrides, helpful errors, and every shipped config."""

from pathlib import Path

import pytest

from nlp_transfer.config import RunConfig, describe_settings, load_config
from nlp_transfer.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
CONFIGS = sorted((REPO / "recipes" / "configs").glob("*/*.yaml"))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_overrides_are_typed_and_nested(tmp_path):
    path = write(tmp_path, "data:\n  train_file: a.csv\ntraining:\n  epochs: 3\n")
    config = load_config(path, ["training.epochs=5", "training.learning_rate=2e-5", "data.header=[text,label]", "seed=7"])
    assert config.training.epochs == 5
    assert config.training.learning_rate == pytest.approx(2e-5)
    assert config.data.header == ["text", "label"]
    assert config.seed == 7
    assert isinstance(config, RunConfig)


def test_yaml_boolean_spellings_of_a_choice(tmp_path):
    path = write(tmp_path, "data:\n  train_file: a.csv\ntraining:\n  mixed_precision: no\n")
    assert load_config(path).training.mixed_precision == "no"
    assert load_config(path, ["training.mixed_precision=no"]).training.mixed_precision == "no"
    with pytest.raises(ConfigError, match=r"training\.mixed_precision"):
        load_config(path, ["training.mixed_precision=yes"])


def test_unknown_key_names_it_and_the_nearest_valid_key(tmp_path):
    path = write(tmp_path, "data:\n  train_file: a.csv\ntraining:\n  epoch: 3\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'training.epoch'.*training.epochs"):
        load_config(path)


def test_unknown_override_suggests_the_full_dotted_key(tmp_path):
    path = write(tmp_path, "data:\n  train_file: a.csv\n")
    with pytest.raises(ConfigError, match=r"'learning_rate'.*training.learning_rate"):
        load_config(path, ["learning_rate=1e-4"])


@pytest.mark.parametrize(
    ("override", "pattern"),
    [
        ("training.epochs=three", r"training.epochs must be int"),
        ("training.batch_size=1.5", r"training.batch_size must be int"),
        ("training.group_by_length=maybe", r"training.group_by_length must be bool"),
        ("strategy=ful", r"strategy='ful' is not one of .*Did you mean 'full'"),
        ("training.epochs=0", r"training.epochs must be at least 1"),
        ("data.validation_split=1.5", r"data.validation_split must be between 0 and 1"),
        ("training", r"write overrides as key=value"),
    ],
)
def test_wrong_types_and_values_name_the_key(tmp_path, override, pattern):
    path = write(tmp_path, "data:\n  train_file: a.csv\n")
    with pytest.raises(ConfigError, match=pattern):
        load_config(path, [override])


def test_invalid_yaml_names_the_line(tmp_path):
    path = write(tmp_path, "data:\n  train_file: a.csv\n  text_column: [unclosed\n")
    with pytest.raises(ConfigError, match=r"config.yaml:\d+: invalid YAML"):
        load_config(path)


def test_missing_config_file_and_missing_train_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match=r"data\.train_file is required"):
        load_config(write(tmp_path, "seed: 1\n"))


def test_every_setting_is_documented():
    rows = describe_settings()
    assert len(rows) > 30
    undocumented = [key for key, _, _, help_text in rows if len(help_text) < 10]
    assert undocumented == []


@pytest.mark.parametrize("path", CONFIGS, ids=[p.parent.name + "/" + p.name for p in CONFIGS])
def test_every_shipped_config_is_valid_and_opens_with_its_command(path):
    config = load_config(path)
    first = path.read_text(encoding="utf-8").splitlines()[0]
    recipe = path.parent.name
    assert first.startswith(f"# python recipes/{recipe}.py recipes/configs/{recipe}/{path.name}"), first
    assert (REPO / "recipes" / f"{recipe}.py").is_file()
    assert config.data.train_file


def test_configs_exist_for_each_recipe():
    names = {p.parent.name for p in CONFIGS}
    assert {"sentiment", "classification"} <= names


def test_readme_config_reference_matches_the_code():
    import io
    from contextlib import redirect_stdout

    from nlp_transfer.cli import main

    buffer = io.StringIO()
    with redirect_stdout(buffer):
        assert main(["config", "--markdown"]) == 0
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert buffer.getvalue().strip() in readme, "regenerate README's table with: nlp-transfer config --markdown"
