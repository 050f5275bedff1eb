"""The typed config: YAML, dotted overrides, helpful errors, and every shipped config."""

import re
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
        ("data.validation_split=1.5", r"data.validation_split must be in \(0, 1\)"),
        ("training", r"write overrides as key=value"),
        ("training.learning_rate=inf", r"training.learning_rate must be positive, got inf"),
        ("data.text_column=label", r"data.text_column and data.label_column both name 'label'"),
        ('data.label_separator=""', r"data.label_separator must be a non-blank string \(e.g. '\|'\), got ''"),
    ],
)
def test_wrong_types_and_values_name_the_key(tmp_path, override, pattern):
    path = write(tmp_path, "data:\n  train_file: a.csv\n")
    with pytest.raises(ConfigError, match=pattern):
        load_config(path, [override])


OUT_OF_RANGE = [
    ("training.epochs", 0),
    ("training.batch_size", 0),
    ("training.eval_batch_size", -1),
    ("training.learning_rate", 0),
    ("training.warmup_ratio", 1),
    ("training.warmup_ratio", -0.1),
    ("training.weight_decay", -0.01),
    ("training.max_grad_norm", 0),
    ("training.gradient_accumulation_steps", 0),
    ("training.max_length", 4),
    ("training.logging_steps", 0),
    ("training.eval_steps", 0),
    ("training.save_steps", 0),
    ("training.save_total_limit", 0),
    ("training.early_stopping_patience", 0),
    ("training.threshold", 1),
    ("training.threshold", 0),
    ("training.torch_threads", 0),
    ("training.document_context", -1),
    ("data.validation_split", 0),
    ("data.validation_split", 1),
    ("data.max_train_samples", 0),
    ("data.max_eval_samples", 0),
    ("transfer.lora_r", 0),
    ("transfer.lora_alpha", 0),
    ("transfer.lora_dropout", 1),
    ("transfer.freeze_layers", -1),
    ("transfer.unfreeze_every", 0),
    ("transfer.unfreeze_every_steps", 0),
    ("transfer.layer_lr_decay", 0),
    ("transfer.layer_lr_decay", 1.5),
]


@pytest.mark.parametrize(("key", "value"), OUT_OF_RANGE, ids=[f"{k}={v}" for k, v in OUT_OF_RANGE])
def test_out_of_range_values_name_the_key_and_the_range(key, value):
    with pytest.raises(ConfigError) as caught:
        load_config(None, ["data.train_file=a.csv", f"{key}={value}"])
    message = str(caught.value)
    assert f"{key} must be " in message and f"got {value}" in message, message
    assert re.search(r"must be (at least -?\d+|positive|in [\[(]0, 1[\])])", message), message
    assert "\n" not in message


def test_defaults_and_range_boundaries_pass():
    assert load_config(None, ["data.train_file=a.csv"]).training.epochs == 3
    boundaries = [
        "training.warmup_ratio=0",
        "training.weight_decay=0",
        "training.max_length=8",
        "training.save_steps=null",
        "training.early_stopping_patience=null",
        "training.max_grad_norm=null",
        "transfer.layer_lr_decay=1",
        "transfer.freeze_layers=0",
        "data.max_train_samples=1",
        "task=ner",
        "training.document_context=0",
    ]
    config = load_config(None, ["data.train_file=a.csv", *boundaries])
    assert config.transfer.layer_lr_decay == 1.0 and config.training.save_steps is None
    assert load_config(None, ["data.train_file=a.csv", "strategy=lora", "transfer.lora_dropout=0"]).transfer.lora_dropout == 0


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


def test_a_key_given_twice_is_refused_with_both_lines(tmp_path):
    path = write(
        tmp_path, "data:\n  train_file: a.csv\ntraining:\n  epochs: 2\n  batch_size: 4\ntraining:\n  learning_rate: 0.001\n"
    )
    with pytest.raises(ConfigError, match=r"config.yaml:6: invalid YAML \('training' is given twice, on lines 3 and 6"):
        load_config(path)
    path.write_text("data:\n  train_file: a.csv\n  train_file: b.csv\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="'train_file' is given twice, on lines 2 and 3"):
        load_config(path)


def test_a_key_overridden_twice_is_reported_as_its_last_override():
    """`training.epochs=2 training.epochs=abc` blamed the first override, whose value was fine."""
    with pytest.raises(ConfigError, match=r"^override training\.epochs=abc: training\.epochs must be int"):
        load_config(None, ["training.epochs=2", "training.epochs=abc"])


def test_an_override_of_a_whole_section_merges_into_it(tmp_path):
    path = write(tmp_path, "data:\n  train_file: a.csv\ntraining:\n  epochs: 7\n  batch_size: 4\n")
    config = load_config(path, ["training={epochs: 2}"])
    assert config.training.epochs == 2 and config.training.batch_size == 4


def test_overrides_keep_text_mapping_defaults_and_sections(tmp_path):
    """A hub_splits.test override dropped the train/validation defaults; a dict override merged into the file's dict
    (so {} cleared nothing); `training=` reset the file's whole section; text settings lost what was typed
    (010 -> '8', 10:30 -> '630', [07, 08] -> ['7', '08'], 'runs/exp #2' -> 'runs/exp')."""
    config_file = tmp_path / "c.yaml"
    config_file.write_text(
        "data:\n  train_file: x.csv\n  labels: [01, 02]\n  label_column: 010\n  label_descriptions: {'01': good, '02': bad}\n"
        "training:\n  epochs: 8\n",
        encoding="utf-8",
    )
    config = load_config(config_file)
    assert config.data.labels == ["01", "02"] and config.data.label_column == "010" and config.training.epochs == 8
    overrides = [
        "data.hub_splits.test=validation", "data.label_column=010", "output_dir=runs/exp #2", "data.labels=[07,08]",
        "data.label_descriptions={}", "data.label_separator=#", "training.max_grad_norm=None", "data.delimiter=|",
    ]  # fmt: skip
    config = load_config(config_file, overrides)
    assert config.data.hub_splits == {"train": "train", "validation": "validation", "test": "validation"}
    assert (config.data.label_column, config.output_dir, config.data.labels) == ("010", "runs/exp #2", ["07", "08"])
    assert config.data.label_descriptions == {} and config.data.label_separator == "#" and config.data.delimiter == "|"
    assert config.training.max_grad_norm is None and config.training.epochs == 8
    # `none` is a choice of class_weights (an error message tells users to type it): not null there
    assert load_config(config_file, ["training.class_weights=none"]).training.class_weights == "none"
    assert load_config(config_file, ["output_dir=10:30", "seed=10"]).output_dir == "10:30"
    with pytest.raises(ConfigError, match="'training' is a section; set its keys"):
        load_config(config_file, ["training="])
    config_file.write_text("data:\n  train_file: x.csv\ntraining: false\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="'training' must be a mapping"):
        load_config(config_file)
    config_file.write_text("data:\n  train_file: x.csv\n  labels: [yes, no]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"YAML reads yes/no/on/off/true/false unquoted as true or false\. Quote them"):
        load_config(config_file)


def test_a_yaml_merge_key_is_read_and_a_real_duplicate_still_refused(tmp_path):
    """`<<: *anchor` was refused as invalid YAML by the duplicate-key check (yaml.safe_load reads it)."""
    path = tmp_path / "merge.yaml"
    path.write_text(
        "data:\n  train_file: x.csv\n  hub_splits: &splits {train: train, validation: validation, test: test}\n"
        "training: {<<: {epochs: 2, batch_size: 4}, epochs: 3}\n",
        encoding="utf-8",
    )
    config = load_config(path)
    assert (config.training.epochs, config.training.batch_size) == (3, 4)
    path.write_text("data:\n  train_file: x.csv\ntraining:\n  epochs: 2\n  epochs: 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="'epochs' is given twice, on lines 4 and 5"):
        load_config(path)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("training.lr=1", "Did you mean 'training.learning_rate'?"),
        ("training.optimizer=adam", "Run 'nlp-transfer config' to list the valid keys."),  # was 'training.batch_size'
        ("num_epochs=3", "Did you mean 'training.epochs'?"),
        ("hub.token=hf_x", "A Hub token is never a config setting"),  # was "Did you mean 'hub.mode'?"
        ("strategy=LoRA", "Did you mean 'lora'?"),
        ("task=NER", "Did you mean 'ner'?"),
        ("training.mixed_precision=BF16", "Did you mean 'bf16'?"),
    ],
)
def test_unknown_keys_and_choices_suggest_what_was_meant(override, message):
    with pytest.raises(ConfigError) as caught:
        load_config(None, ["data.train_file=x.csv", override])
    assert message in str(caught.value) and "hf_x" not in str(caught.value)


def test_a_mapping_given_whole_is_taken_as_given_and_a_dotted_null_drops_a_key(tmp_path):
    """hub_splits {train, test: validation} (GLUE: the Hub test split has no labels) must carve validation from train;
    merging the defaults in made the test split the validation split too (regression caught the same day)."""
    path = tmp_path / "hub.yaml"
    path.write_text("data:\n  train_file: some/dataset\n  hub_splits: {train: train, test: validation}\n", encoding="utf-8")
    assert load_config(path).data.hub_splits == {"train": "train", "test": "validation"}
    whole = load_config(None, ["data.train_file=x", "data.hub_splits={train: train, test: validation}"])
    assert whole.data.hub_splits == {"train": "train", "test": "validation"}
    dropped = load_config(None, ["data.train_file=x", "data.hub_splits.validation=null"])
    assert dropped.data.hub_splits == {"train": "train", "test": "test"}


def test_a_saved_run_config_with_an_option_refused_since_it_trained_still_reads(tmp_path, monkeypatch):
    """check and export read a run's data from its config.yaml: a run trained before freeze_pooler was refused for
    freeze_layers stopped them (regression caught the same day)."""
    from nlp_transfer.config import load_saved_config

    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.csv").write_text("text,label\n", encoding="utf-8")
    path = tmp_path / "config.yaml"
    path.write_text(
        "strategy: freeze_layers\ndata:\n  train_file: x.csv\ntransfer:\n  freeze_layers: 1\n  freeze_pooler: true\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="freeze_pooler applies to frozen"):
        load_config(path)
    assert load_saved_config(path).data.train_file == "x.csv"
    path.write_text("strategy: full\ndata:\n  validation_split: 2.0\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="validation_split"):  # a data problem is still one
        load_saved_config(path)
    # run from another folder, a relative path said only "no such file": where relative paths start is said now
    path.write_text("data:\n  train_file: x.csv\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path.parent)
    with pytest.raises(ConfigError, match=r"data\.train_file=x\.csv is not found from .* start from the folder it was trained"):
        load_saved_config(path)


@pytest.mark.parametrize("written", ["010", "1:30"])
def test_a_number_setting_refuses_what_yaml_reads_as_octal_or_base_60(tmp_path, written):
    """`epochs: 010` trained 8 epochs (YAML 1.1 octal) and `1:30` 90 (base 60), in a file or an override alike."""
    path = write(tmp_path, f"data:\n  train_file: a.csv\ntraining:\n  epochs: {written}\n")
    kind = "octal" if written == "010" else "base-60"
    with pytest.raises(ConfigError, match=rf"training\.epochs: {written} \(\d+\) is an? {kind} number in YAML"):
        load_config(path)
    with pytest.raises(ConfigError, match=rf"override training\.epochs={written}: .* {kind} number"):
        load_config(write(tmp_path, "data:\n  train_file: a.csv\n"), [f"training.epochs={written}"])
    assert load_config(path, ["training.epochs=10"]).training.epochs == 10  # an override replaces the value unread


def test_a_quoted_whole_number_reads_for_an_integer_setting_as_it_does_for_a_float(tmp_path):
    path = write(tmp_path, "data:\n  train_file: a.csv\ntraining:\n  epochs: '3'\n  learning_rate: '2e-5'\n")
    config = load_config(path)
    assert (config.training.epochs, config.training.learning_rate) == (3, 2e-5)
    with pytest.raises(ConfigError, match=r"training\.epochs must be int, got '3\.5'"):
        load_config(write(tmp_path, "data:\n  train_file: a.csv\ntraining:\n  epochs: '3.5'\n"))


def test_settings_typed_as_users_type_them(tmp_path, monkeypatch):
    """A tab or a space given as a text setting became null; data.token_col got the Hub-token message instead of a
    suggestion; a file's 3.0 was a "_FloatWithText"; output_dir=~/runs made a folder named ~ in the current one."""
    base = ["data.train_file=a.csv"]
    assert load_config(None, [*base, "data.delimiter=\t"]).data.delimiter == "\t"
    with pytest.raises(ConfigError, match="output_dir must be str, got None"):  # blank is null for other settings
        load_config(None, [*base, "output_dir= "])
    with pytest.raises(ConfigError, match=r"data\.label_separator must be a non-blank string .*got ' '"):  # not "got None"
        load_config(None, [*base, "data.label_separator= "])
    with pytest.raises(ConfigError, match=r"unknown config key 'data\.token_col'\. Did you mean 'data\.token_column'\?"):
        load_config(None, [*base, "data.token_col=1"])
    with pytest.raises(ConfigError, match="A Hub token is never a config setting"):
        load_config(None, [*base, "hub.hf_token=hf_x"])
    path = write(tmp_path, "data:\n  train_file: a.csv\ntraining:\n  epochs: 3.0\n")
    with pytest.raises(ConfigError, match=r"training\.epochs must be int, got 3\.0 \(float\)"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"Write it as a list, data\.augment=\[word_dropout\]"):
        load_config(None, [*base, "data.augment=word_dropout"])
    with pytest.raises(ConfigError, match=r"unknown config key 'Data'\. Did you mean 'data'\?"):
        load_config(write(tmp_path, "Data:\n  train_file: a.csv\n"))
    monkeypatch.setenv("HOME", str(tmp_path))
    config = load_config(None, ["data.train_file=~/a.csv,~/b.csv", "output_dir=~/runs/x"])
    assert config.output_dir == str(tmp_path / "runs" / "x")
    assert config.data.train_file == f"{tmp_path / 'a.csv'},{tmp_path / 'b.csv'}"


@pytest.mark.parametrize(
    ("override", "origin", "problem"),
    [
        ("hub.token=hf_notmine123", "override hub.token=***", "unknown config key 'hub.token'"),
        ("hub={token: plain_secret_text}", "override hub=***", "unknown config key 'hub.token'"),
        ("data.api_password=plain_secret_text", "override data.api_password=***", "unknown config key 'data.api_password'"),
        ("training.epochs=three", "override training.epochs=three", "training.epochs must be int"),
        ("training.optimiser=adam", "override training.optimiser=adam", "unknown config key 'training.optimiser'"),
        ("trainer.epochs=2", "override trainer.epochs=2", "unknown config key 'trainer'"),
        ("training={epochs: 2, warmup: 3}", "override training={epochs: 2, warmup: 3}", "unknown config key 'training.warmup'"),
    ],
)
def test_a_bad_override_is_named_as_the_override_not_as_the_file(tmp_path, override, origin, problem):
    """`train cfg.yaml hub.token=hf_x` said "cfg.yaml: unknown config key 'hub.token'": the file was blamed for an
    override. The override is named instead, without the value of a key that names a token, secret or password."""
    path = write(tmp_path, "data:\n  train_file: a.csv\ntraining:\n  epochs: 3\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, ["seed=1", override])
    message = str(caught.value)
    assert message.startswith(f"{origin}: {problem}"), message
    assert str(path) not in message and "notmine" not in message and "plain_secret_text" not in message


def test_a_bad_key_of_the_file_is_still_named_as_the_file_beside_overrides(tmp_path):
    path = write(tmp_path, "data:\n  train_file: a.csv\ntraining:\n  epochs: three\n  optimiser: adam\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: unknown config key 'training\.optimiser'"):
        load_config(path, ["training.epochs=2", "hub.repo_id=me/model"])
    path = write(tmp_path, "data:\n  train_file: a.csv\ntraining:\n  epochs: three\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: training\.epochs must be int"):
        load_config(path, ["training.batch_size=4"])
    assert load_config(path, ["training.epochs=2"]).training.epochs == 2  # the override replaced the file's bad value
