"""The command line: train/evaluate/predict end to end, and one clear error (exit 2) for bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, tiny_overrides

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def cli(*args, cwd=REPO, stdin=None):
    return subprocess.run(
        [sys.executable, "-m", "nlp_transfer.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=ENV,
        input=stdin,
        timeout=300,
    )


def cli_in_process(capsys, *args):
    """``nlp-transfer ARGS`` in this process (no seconds of imports per call): (exit code, stdout, stderr)."""
    from nlp_transfer.cli import main

    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def recipe(name, *args):
    return subprocess.run(
        [sys.executable, f"recipes/{name}.py", *map(str, args)], capture_output=True, text=True, cwd=REPO, env=ENV, timeout=300
    )


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_model_dir):
    """One tiny run trained through the CLI on synthetic data, shared by the tests below."""
    from tests.conftest import synthetic_sentiment, write_csv

    base = tmp_path_factory.mktemp("cli")
    train = write_csv(base / "train.csv", synthetic_sentiment(400, 1))
    val = write_csv(base / "val.csv", synthetic_sentiment(100, 2))
    out = base / "run"
    overrides = tiny_overrides(
        tiny_model_dir,
        out,
        **{
            "data.train_file": train,
            "data.validation_file": val,
            "data.test_file": val,
            "training.epochs": 3,
            "training.learning_rate": 2e-3,
        },
    )
    done = cli("train", "recipes/configs/sentiment/minilm_full.yaml", *overrides)
    assert done.returncode == 0, done.stderr[-3000:]
    return {"out": out, "val": val, "stdout": done.stdout}


def test_train_writes_a_plain_hugging_face_run(trained_run):
    out = trained_run["out"]
    for name in (
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "config.yaml",
        "metrics.json",
        "run_info.json",
        "confusion_matrix_validation.png",
    ):
        assert (out / name).is_file(), name
    assert not list(out.glob("*.bin"))
    metrics = json.loads((out / "metrics.json").read_text())
    assert {
        "accuracy",
        "f1_macro",
        "f1_micro",
        "precision_macro",
        "recall_macro",
        "per_class",
        "confusion_matrix",
        "roc_auc",
    } <= set(metrics["validation"])
    assert "validation" in trained_run["stdout"] and "accuracy=" in trained_run["stdout"]
    resolved = (out / "config.yaml").read_text()
    assert "epochs: 3" in resolved and "learning_rate: 0.002" in resolved


def test_predict_json_lines_and_pipeline_agree(trained_run):
    from transformers import pipeline

    texts = ["a superb and lovely film", "dreadful boring plot", "the staff was very poor", "great"]
    done = cli("predict", trained_run["out"], *texts)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["text"] for r in rows] == texts
    assert set(rows[0]) == {"text", "label", "score", "scores"}
    assert abs(sum(rows[0]["scores"].values()) - 1) < 1e-5
    classifier = pipeline("text-classification", model=str(trained_run["out"]), device="cpu")
    for row, out in zip(rows, classifier(texts), strict=True):
        assert row["label"] == out["label"]
        assert row["score"] == pytest.approx(out["score"], abs=1e-5)


def test_predict_from_file_and_stdin(trained_run, tmp_path):
    (tmp_path / "in.txt").write_text("superb film\n\nawful food\n", encoding="utf-8")
    from_file = cli("predict", trained_run["out"], "--input", tmp_path / "in.txt")
    assert [json.loads(x)["text"] for x in from_file.stdout.splitlines()] == ["superb film", "awful food"]
    from_stdin = cli("predict", trained_run["out"], stdin="lovely\n")
    assert json.loads(from_stdin.stdout)["text"] == "lovely"


def test_evaluate_matches_training_metrics(trained_run, capsys):
    code, stdout, stderr = cli_in_process(capsys, "evaluate", trained_run["out"], "--data", trained_run["val"])
    assert code == 0, stderr
    metrics = json.loads(stdout)
    saved = json.loads((trained_run["out"] / "metrics.json").read_text())["validation"]
    assert metrics["accuracy"] == pytest.approx(saved["accuracy"])
    assert metrics["confusion_matrix"] == saved["confusion_matrix"]


def test_evaluate_reads_integer_labels_as_label_ids(trained_run, tmp_path):
    import csv

    from nlp_transfer.config import DataConfig
    from nlp_transfer.inference import evaluate_file

    label2id = json.loads((trained_run["out"] / "config.json").read_text())["label2id"]
    with open(trained_run["val"], encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    as_ids = tmp_path / "ids.csv"
    with open(as_ids, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["text", "label"])
        writer.writeheader()
        writer.writerows({"text": r["text"], "label": label2id[r["label"]]} for r in rows)
    by_id = evaluate_file(trained_run["out"], str(as_ids), DataConfig())
    by_name = evaluate_file(trained_run["out"], str(trained_run["val"]), DataConfig())
    assert by_id["accuracy"] == by_name["accuracy"] and by_id["confusion_matrix"] == by_name["confusion_matrix"]
    assert 0.5 < by_id["accuracy"]  # the labels were not all mapped to one class


BAD_CLI = [
    (["train", "recipes/configs/sentiment/minilm_full.yaml", "training.epoch=2"], "unknown config key 'training.epoch'"),
    (["train", "recipes/configs/sentiment/minilm_full.yaml", "training.batch_size=big"], "training.batch_size must be int"),
    (["train", "missing.yaml"], "config file not found"),
    (["train", "recipes/configs/sentiment/minilm_full.yaml", "data.train_file=nope.csv"], "nope.csv: no such file"),
    (["train", "recipes/configs/sentiment/minilm_full.yaml", "model=./no/such/model"], "no such folder"),
    (
        ["train", "recipes/configs/sentiment/minilm_full.yaml", "model=nobody/no-such-model-xyz"],
        "not in the local Hugging Face cache",
    ),
    (
        ["train", "recipes/configs/sentiment/minilm_full.yaml", "data.text_column=review"],
        "no column 'review' for data.text_column",
    ),
    (["predict", "no_such_run", "hello"], "no such run directory"),
    (["evaluate", "no_such_run", "--data", "data/sentiment/test.csv"], "no such run directory"),
    (["train", "recipes/configs/sentiment/minilm_full.yaml", "seed=-1"], "seed must be in [0, 4294967295]"),
    (["train", "recipes/configs/sentiment/minilm_full.yaml", "data.delimiter=ab"], "data.delimiter must be one character"),
    (
        ["train", "recipes/configs/sentiment/minilm_full.yaml", "training.max_length=1000"],
        "training.max_length=1000 is longer than the model's 512 positions",
    ),
    (
        ["train", "recipes/configs/sentiment/minilm_full.yaml", "data.labels=[neg,pos]"],
        "label 'positive' is not in data.labels (neg, pos)",
    ),
    (["config", "training.epochs=2"], "use them with --resolve CONFIG"),
    (
        ["config", "--check", "recipes/configs/sentiment/minilm_full.yaml", "training.epochs=2"],
        "training.epochs=2 is a key=value override",
    ),
    (["config", "--resolve", "tests/bad_inputs/good.yaml", "data.labels=[a,b,a]"], "data.labels names a more than once"),
]


@pytest.mark.parametrize(("args", "message"), BAD_CLI, ids=[m for _, m in BAD_CLI])
def test_bad_input_exits_2_with_one_message_and_no_traceback(args, message, tmp_path, monkeypatch, capsys):
    """In process (a subprocess per case cost seconds of imports each); the console script itself is tested below."""
    from nlp_transfer.cli import main

    monkeypatch.chdir(REPO)
    extra = [f"output_dir={tmp_path / 'out'}"] if args[0] == "train" else []
    code = main([*args, *extra])
    stderr = capsys.readouterr().err
    assert code == 2, stderr
    assert message in stderr
    assert "Traceback" not in stderr
    assert stderr.strip().startswith("error: ") and len(stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("verb", ["train", "predict"])
def test_the_console_script_exits_2_with_one_line_and_debug_shows_the_traceback(verb, tmp_path):
    args = {
        "train": ["train", "recipes/configs/sentiment/minilm_full.yaml", "training.epoch=2", f"output_dir={tmp_path / 'out'}"],
        "predict": ["predict", "no_such_run", "hello"],
    }[verb]
    done = cli(*args)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: ") and len(done.stderr.strip().splitlines()) == 1, done.stderr
    debug = cli(*args, "--debug")
    assert debug.returncode == 2
    assert "Traceback" in debug.stderr


def test_evaluate_unknown_label_names_file_and_line(trained_run, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\ngood,positive\nmeh,neutral\n", encoding="utf-8")
    done = cli("evaluate", trained_run["out"], "--data", bad)
    assert done.returncode == 2
    assert f"{bad}:3: label 'neutral' is not one of the labels the run was trained on" in done.stderr
    assert "data.labels" not in done.stderr  # a trained run's labels are fixed: no config key changes them


def test_config_verb_lists_and_checks(tmp_path):
    listing = cli("config")
    assert "training.learning_rate" in listing.stdout and "data.header" in listing.stdout
    configs = sorted(str(p.relative_to(REPO)) for p in Path(REPO, "recipes", "configs").glob("*/*.yaml"))
    checked = cli("config", "--check", *configs)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.count(": ok") == len(configs)
    both = cli("config", "--check", configs[0], "--resolve", configs[0])  # one answer a call, not one silently dropped
    assert both.returncode == 2 and "not allowed with argument --check" in both.stderr and not both.stdout, both.stderr
    # every file is checked (it stopped at the first bad one); a folder is named as such; a bare file asks what to do
    mixed = cli("config", "--check", configs[0], str(tmp_path), configs[1])
    assert mixed.returncode == 2 and mixed.stdout.count(": ok") == 2 and "a folder, not a config file" in mixed.stderr
    assert "1 of 3 config files failed the check" in mixed.stderr
    bare = cli("config", configs[0])
    assert bare.returncode == 2 and f"--check {configs[0]} validates it" in bare.stderr


def test_a_reader_that_stops_early_gets_no_traceback():
    """`nlp-transfer config --markdown | head -1`: the closed pipe ends the command quietly (exit 141, like SIGPIPE)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "nlp_transfer.cli", "config", "--markdown"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
        env=ENV,
    )
    process.stdout.close()  # the reader goes away before the command writes (its imports alone take a second)
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141 and "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr


@pytest.mark.parametrize("verb", ["train", "adapt"])
def test_no_config_says_a_config_is_needed_and_overrides_are_optional(verb, capsys):
    from nlp_transfer.cli import main

    with pytest.raises(SystemExit) as exited:
        main([verb])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and "give a CONFIG" in err and "required: config, key=value" not in err, err


def test_config_resolve_appends_where_the_shell_appends(tmp_path):
    """`nlp-transfer config --resolve CONFIG >> FILE` keeps what FILE held (it once reopened /dev/stdout, truncating it)."""
    target = tmp_path / "app.yaml"
    target.write_text("# keep me\n", encoding="utf-8")
    with target.open("a", encoding="utf-8") as handle:
        done = subprocess.run(
            [sys.executable, "-m", "nlp_transfer.cli", "config", "--resolve", "recipes/configs/sentiment/minilm_full.yaml"],
            stdout=handle,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=ENV,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr
    text = target.read_text(encoding="utf-8")
    assert text.startswith("# keep me\n") and "epochs:" in text


@pytest.mark.parametrize(
    ("name", "config", "extra"),
    [
        ("sentiment", "recipes/configs/sentiment/minilm_full.yaml", {}),
        ("sentiment", "recipes/configs/sentiment/minilm_frozen.yaml", {}),
        ("classification", "recipes/configs/classification/topics_full.yaml", {}),
        ("classification", "recipes/configs/classification/support_tickets_multilabel.yaml", {}),
    ],
)
def test_every_recipe_runs_with_overrides(name, config, extra, tiny_model_dir, tmp_path):
    done = recipe(name, config, *tiny_overrides(tiny_model_dir, tmp_path / "run", **extra))
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert set(metrics) == {"validation", "test"}


RECIPE_OF = {"sentiment": "sentiment", "classification": "classification", "ner": "ner"}  # config folder -> recipe
# adapt/ configs run masked-LM pretraining, not a task's recipe: tests/test_adapt.py trains the shipped one
ALL_CONFIGS = sorted(p for p in Path(REPO, "recipes", "configs").glob("*/*.yaml") if p.parent.name != "adapt")


@pytest.mark.parametrize("config", ALL_CONFIGS, ids=[f"{p.parent.name}/{p.name}" for p in ALL_CONFIGS])
def test_every_config_trains_through_its_recipe(config, tiny_model_dir, tmp_path, monkeypatch):
    """Each shipped config, as written plus the tiny model and a small slice of its data, trains and saves."""
    from nlp_transfer.cli import run_recipe

    monkeypatch.chdir(REPO)  # the configs name their data relative to the repository

    slice_ = {"data.max_train_samples": 64, "data.max_eval_samples": 32}
    if "per_class:" in config.read_text():  # a few-shot config already chooses a few rows per class
        del slice_["data.max_train_samples"]
    overrides = tiny_overrides(tiny_model_dir, tmp_path / "run", **slice_)
    assert run_recipe(RECIPE_OF[config.parent.name], [str(config), *overrides]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert "validation" in metrics
    assert (tmp_path / "run" / "config.json").is_file() and (tmp_path / "run" / "tokenizer.json").is_file()


def test_recipe_refuses_a_config_of_another_task(tiny_model_dir, tmp_path, monkeypatch, capsys):
    from nlp_transfer.cli import run_recipe

    monkeypatch.chdir(REPO)
    config = "recipes/configs/classification/support_tickets_multilabel.yaml"
    assert run_recipe("sentiment", [config, *tiny_overrides(tiny_model_dir, tmp_path / "run")]) == 2
    assert "does not fit the sentiment recipe" in (err := capsys.readouterr().err) and "python recipes/classification.py" in err
    assert not (tmp_path / "run").exists()


def test_pickle_weights_are_refused_unless_allowed(tiny_model_dir, tmp_path, monkeypatch, capsys):
    import torch
    from transformers import AutoModel, AutoTokenizer

    folder = tmp_path / "pickled"
    folder.mkdir()
    model = AutoModel.from_pretrained(tiny_model_dir)
    model.config.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(folder)
    torch.save({f"bert.{k}": v for k, v in model.state_dict().items()}, folder / "pytorch_model.bin")
    monkeypatch.chdir(REPO)
    code, _, stderr = cli_in_process(
        capsys, "train", "recipes/configs/sentiment/minilm_full.yaml", f"model={folder}", f"output_dir={tmp_path / 'out'}"
    )
    assert code == 2
    assert "no safetensors weights" in stderr and "allow_pickle=true" in stderr
    assert not (tmp_path / "out").exists()
    code, _, stderr = cli_in_process(
        capsys,
        "train",
        "recipes/configs/sentiment/minilm_full.yaml",
        f"model={folder}",
        f"output_dir={tmp_path / 'out'}",
        "allow_pickle=true",
        "training.epochs=1",
        "data.max_train_samples=64",
    )
    assert code == 0, stderr[-2000:]
    assert (tmp_path / "out" / "model.safetensors").is_file()


# ------------------------------------------------------------- bad input found by trying the CLI as a user would


def copy_of_run(trained_run, tmp_path):
    """A private copy of the shared tiny run, free to damage."""
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(trained_run["out"], copy)
    return copy


def test_export_will_not_replace_an_output_that_is_not_an_export(trained_run, tmp_path, capsys):
    """--output naming a file or another folder (the run itself, say) is refused before any work, and left as it was."""
    run = copy_of_run(trained_run, tmp_path)
    keep = tmp_path / "notes.txt"
    keep.write_text("mine")
    for output, what in ((keep, "is a file"), (run, "not an earlier export")):
        code, _, err = cli_in_process(capsys, "export", run, "--output", output)
        assert code == 2 and what in err and len(err.strip().splitlines()) == 1, err
    assert keep.read_text() == "mine"
    assert (run / "model.safetensors").is_file() and not (run / "export.json").exists()


def test_overwrite_keeps_the_earlier_run_when_the_new_input_is_bad(trained_run, tmp_path, capsys):
    """--overwrite deletes the earlier run only once the new run's data and model have loaded."""
    run = copy_of_run(trained_run, tmp_path)
    before = (run / "model.safetensors").read_bytes()
    code, _, err = cli_in_process(
        capsys,
        "train",
        "recipes/configs/sentiment/minilm_full.yaml",
        f"output_dir={run}",
        "data.train_file=missing.csv",
        "--overwrite",
    )
    assert code == 2 and "missing.csv: no such file" in err
    assert (run / "model.safetensors").read_bytes() == before


def test_overwrite_restores_the_earlier_run_when_training_fails_and_replaces_it_when_it_finishes(
    trained_run, tiny_model_dir, tmp_path, capsys, monkeypatch
):
    """A run that fails before its first checkpoint gives the earlier run back; one that finishes removes it."""
    from nlp_transfer.errors import UserError
    from nlp_transfer.output_dir import replaced_path
    from nlp_transfer.transfer.full import FullFineTuning

    run = copy_of_run(trained_run, tmp_path)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    overrides = tiny_overrides(tiny_model_dir, run, **{"data.train_file": trained_run["val"], "training.torch_threads": 1})

    def failing(self, run_):
        raise UserError("training loss became nan (planted)")

    with monkeypatch.context() as patch:
        patch.setattr(FullFineTuning, "train", failing)
        code, _, err = cli_in_process(capsys, "train", "recipes/configs/sentiment/minilm_full.yaml", *overrides, "--overwrite")
    assert code == 2 and "planted" in err, err
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before and not replaced_path(run).exists()
    code, _, err = cli_in_process(capsys, "train", "recipes/configs/sentiment/minilm_full.yaml", *overrides, "--overwrite")
    assert code == 0, err
    assert (run / "model.safetensors").read_bytes() != before["model.safetensors"] and not replaced_path(run).exists()


def test_overwrite_refuses_a_folder_no_run_wrote_or_one_holding_the_data(trained_run, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "notes.txt").write_text("precious")
    code, _, err = cli_in_process(
        capsys, "train", "recipes/configs/sentiment/minilm_full.yaml", f"output_dir={folder}", "--overwrite"
    )
    assert code == 2 and "no earlier run" in err and (folder / "notes.txt").read_text() == "precious", err
    run = copy_of_run(trained_run, tmp_path)
    data = run / "train.csv"
    data.write_bytes(trained_run["val"].read_bytes())
    args = ["recipes/configs/sentiment/minilm_full.yaml", f"output_dir={run}", f"data.train_file={data}", "--overwrite"]
    code, _, err = cli_in_process(capsys, "train", *args)
    assert code == 2 and "holds this run's data file" in err and data.is_file(), err
    # the folder the command runs in: output_dir=. ended in a traceback (renaming "." failed)
    here = copy_of_run(trained_run, tmp_path / "here")
    monkeypatch.chdir(here)
    args = [str(Path(__file__).parents[1] / "recipes/configs/sentiment/minilm_full.yaml"), "output_dir=.", "--overwrite"]
    code, _, err = cli_in_process(capsys, "train", *args, f"data.train_file={trained_run['val']}")
    assert code == 2 and "is the folder this command runs in" in err and (here / "metrics.json").is_file(), err


def test_resume_of_a_complete_run_says_it_is_complete_and_touches_nothing(trained_run, tmp_path, capsys):
    run = copy_of_run(trained_run, tmp_path)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    code, _, err = cli_in_process(capsys, "train", "recipes/configs/sentiment/minilm_full.yaml", f"output_dir={run}", "--resume")
    assert code == 2 and "the run is complete" in err and "--overwrite instead of --resume" in err, err
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def test_flags_texts_and_overrides_come_in_any_order(trained_run, capsys):
    """A flag before the texts (predict) or before key=value overrides (compare, rank) is parsed, not refused."""
    from nlp_transfer.cli import build_parser, verb_parser

    code, out, err = cli_in_process(capsys, "predict", trained_run["out"], "--min-score", "0.99", "great movie")
    assert code == 0, err
    assert json.loads(out)["text"] == "great movie" and "abstain" in json.loads(out)
    parser = build_parser()
    compare = verb_parser(parser, "compare").parse_intermixed_args(["c.yaml", "--no-scratch", "llrd:transfer.layer_lr_decay=0.8"])
    assert compare.overrides == ["llrd:transfer.layer_lr_decay=0.8"] and compare.no_scratch
    rank = verb_parser(parser, "rank").parse_intermixed_args(["c.yaml", "--models", "m", "data.train_file=x.csv"])
    assert rank.overrides == ["data.train_file=x.csv"] and rank.models == "m"
    assert verb_parser(parser, "no-such-verb") is None


def test_damaged_run_files_are_one_error(trained_run, tmp_path, capsys):
    """Cut weights, a broken config.json or no weights at all: one line naming the file and what to do."""
    run = copy_of_run(trained_run, tmp_path)
    weights = run / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    code, _, err = cli_in_process(capsys, "predict", run, "hello")
    assert code == 2 and "damaged or incomplete" in err and len(err.strip().splitlines()) == 1, err
    weights.unlink()
    code, _, err = cli_in_process(capsys, "predict", run, "hello")
    assert code == 2 and "no model weights" in err and "--allow-pickle" not in err, err
    weights.write_bytes(data)
    (run / "config.json").write_text('{"a": ')
    code, _, err = cli_in_process(capsys, "predict", run, "hello")
    assert code == 2 and "config.json: not a readable model config" in err, err


@pytest.mark.parametrize("verb", ["train", "adapt"])
def test_an_output_dir_that_holds_the_starting_model_is_refused_and_kept(trained_run, tmp_path, capsys, verb):
    """`model=RUN output_dir=RUN --overwrite` would delete the model before it is replaced: refused, nothing touched."""
    run = copy_of_run(trained_run, tmp_path)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    config = {"train": "recipes/configs/sentiment/minilm_full.yaml", "adapt": "recipes/configs/adapt/minilm_tapt.yaml"}[verb]
    for output in (run, tmp_path):  # the model's own folder, and a folder holding it
        code, _, err = cli_in_process(capsys, verb, config, f"model={run}", f"output_dir={output}", "--overwrite")
        assert code == 2 and "holds the model this run starts from" in err and len(err.strip().splitlines()) == 1, err
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def test_a_model_or_run_without_tokenizer_files_is_refused(trained_run, tiny_model_dir, tmp_path, capsys):
    """transformers builds a 5-token vocabulary for such a folder: every word [UNK], training and predicting exit 0."""
    import shutil

    model = tmp_path / "model"
    model.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(Path(tiny_model_dir) / name, model / name)
    code, _, err = cli_in_process(
        capsys, "train", "recipes/configs/sentiment/minilm_full.yaml", f"model={model}", f"output_dir={tmp_path / 'out'}"
    )
    assert code == 2 and "no tokenizer files" in err and not (tmp_path / "out").exists(), err
    run = copy_of_run(trained_run, tmp_path)
    for name in ("tokenizer.json", "vocab.txt"):
        (run / name).unlink(missing_ok=True)
    code, _, err = cli_in_process(capsys, "predict", run, "nice")
    assert code == 2 and f"{run}: no tokenizer files" in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize(
    ("content", "message"),
    [('{"task": ', "not valid JSON"), ("[1, 2]", "holds a JSON list"), ('{"max_length": "abc"}', "max_length holds 'abc'")],
)
def test_a_damaged_run_info_is_one_error_for_every_verb_that_reads_it(trained_run, tmp_path, capsys, content, message):
    run = copy_of_run(trained_run, tmp_path)
    (run / "run_info.json").write_text(content, encoding="utf-8")
    for args in (["predict", run, "hello"], ["evaluate", run, "--data", trained_run["val"]], ["export", run], ["check", run]):
        code, _, err = cli_in_process(capsys, *args)
        assert code == 2 and f"run_info.json: {message}" in err and len(err.strip().splitlines()) == 1, (args, err)
    assert not (run / "onnx").exists() and not (run / "check").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch-size", "0"], "--batch-size: must be at least 1, got 0"),
        (["--min-score", "nan"], "--min-score: must be between 0 and 1"),
        (["--min-score", "2"], "--min-score: must be between 0 and 1"),
        (["--chunk-size", "-1"], "--chunk-size: must be at least 1"),
    ],
)
def test_out_of_range_flags_are_refused(trained_run, capsys, args, message):
    """argparse refuses them (exit 2, the verb's usage and one error line) before the model loads."""
    from nlp_transfer.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["predict", str(trained_run["out"]), *args, "hello"])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_stdin_that_is_not_the_encoding_names_its_line(trained_run):
    done = subprocess.run(
        [sys.executable, "-m", "nlp_transfer.cli", "predict", str(trained_run["out"])],
        input=b"good\ncaf\xe9\n",
        capture_output=True,
        cwd=REPO,
        env=ENV,
        timeout=300,
    )
    err = done.stderr.decode()
    assert done.returncode == 2 and "standard input, line 2: byte 0xe9" in err and "Traceback" not in err, err
    latin = subprocess.run(
        [sys.executable, "-m", "nlp_transfer.cli", "predict", str(trained_run["out"]), "--encoding", "latin-1"],
        input=b"good\ncaf\xe9\n",
        capture_output=True,
        cwd=REPO,
        env=ENV,
        timeout=300,
    )
    assert latin.returncode == 0 and json.loads(latin.stdout.decode().splitlines()[1])["text"] == "caf\u00e9"


def test_evaluate_output_is_checked_before_scoring_and_written_whole(trained_run, tmp_path, capsys, monkeypatch):
    """An --output that cannot be written is one line (exit 2) before the model is scored; a missing parent is made."""
    import nlp_transfer.inference

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    real_evaluate = nlp_transfer.inference.evaluate_file
    scored = []
    monkeypatch.setattr(nlp_transfer.inference, "evaluate_file", lambda *a, **k: scored.append(1) or real_evaluate(*a, **k))
    for output, message in ((blocker / "m.json", "a-file is a file, not a folder"), (tmp_path, "a folder")):
        code, _, err = cli_in_process(capsys, "evaluate", trained_run["out"], "--data", trained_run["val"], "--output", output)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert scored == []
    missing = tmp_path / "never" / "made" / "m.json"  # bad data: exit 2 and no empty folders left behind
    code, _, err = cli_in_process(capsys, "evaluate", trained_run["out"], "--data", tmp_path / "nope.csv", "--output", missing)
    assert code == 2 and not (tmp_path / "never").exists(), err
    output = tmp_path / "new" / "dir" / "m.json"
    code, out, err = cli_in_process(capsys, "evaluate", trained_run["out"], "--data", trained_run["val"], "--output", output)
    assert code == 0, err
    assert json.loads(output.read_text()) == json.loads(out) and scored == [1, 1]
    assert [p.name for p in output.parent.iterdir()] == ["m.json"]  # no .partial left behind


def test_verbs_that_take_flags_name_the_flag_not_the_config_key(trained_run, tmp_path, capsys):
    """evaluate/predict/check read files through the config readers; their messages name --text-column, --encoding."""
    renamed = tmp_path / "renamed.csv"
    renamed.write_text("review,label\ngood,positive\n", encoding="utf-8")
    code, _, err = cli_in_process(capsys, "evaluate", trained_run["out"], "--data", renamed)
    assert code == 2 and "--text-column" in err and "data.text_column" not in err, err
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"text,label\ncaf\xe9 good,positive\n")
    code, _, err = cli_in_process(capsys, "evaluate", trained_run["out"], "--data", latin)
    assert code == 2 and "--encoding=latin-1" in err and "data.encoding" not in err, err
    code, _, err = cli_in_process(capsys, "check", trained_run["out"], "--data", renamed)
    assert code == 2 and "--text-column" in err and "data." not in err, err


def test_a_folder_where_a_file_goes_is_named_as_a_folder(trained_run, tmp_path, capsys):
    code, _, err = cli_in_process(capsys, "evaluate", trained_run["out"], "--data", tmp_path)
    assert code == 2 and "a folder, not a data file" in err, err
    code, _, err = cli_in_process(capsys, "predict", trained_run["out"], "--input", tmp_path)
    assert code == 2 and "a folder, not a data file" in err, err


def test_a_quote_that_never_closes_names_the_row_it_opens_on(trained_run, tmp_path, capsys):
    broken = tmp_path / "quote.csv"
    broken.write_text('text,label\ngood,positive\n"bad, negative\nfine,positive\n', encoding="utf-8")
    code, _, err = cli_in_process(capsys, "evaluate", trained_run["out"], "--data", broken)
    assert code == 2 and f"{broken}:3: a quoted field that starts on this row never closes" in err, err
    assert len(err.strip().splitlines()) == 1


def test_a_second_failed_overwrite_never_loses_the_finished_run_and_phase_checkpoints_count(tmp_path):
    """A finished run A; overwrite B fails after a checkpoint (kept for --resume, A waits aside); overwrite C fails
    before one: A used to be deleted with the aside. And a contrastive phase's checkpoint is a checkpoint to resume."""
    import shutil
    from types import SimpleNamespace

    import pytest

    from nlp_transfer.output_dir import has_checkpoint, replaced_on_success, replaced_path

    main_process = SimpleNamespace(is_main_process=True, wait_for_everyone=lambda: None)
    run, aside = tmp_path / "run", replaced_path(tmp_path / "run")
    run.mkdir()
    (run / "metrics.json").write_text("{}")
    (run / "model.safetensors").write_bytes(b"A")

    def failing_run(checkpoint: str | None) -> None:
        with pytest.raises(RuntimeError), replaced_on_success(run, True, main_process):
            run.mkdir()
            (run / "config.yaml").write_text("task: classification\n")
            if checkpoint:
                (run / checkpoint).mkdir(parents=True)
                (run / checkpoint / "trainer_state.json").write_text("{}")
            raise RuntimeError("planted")

    failing_run("checkpoints/contrastive/checkpoints/step-00000030")  # B: a phase-1 checkpoint, kept to resume
    assert has_checkpoint(run) and (aside / "model.safetensors").read_bytes() == b"A"
    shutil.rmtree(run / "checkpoints")  # as if B had been killed (SIGKILL) before its first checkpoint
    with pytest.raises(RuntimeError), replaced_on_success(run, False, main_process):  # a --resume that finds nothing
        raise RuntimeError("no complete checkpoint")
    assert (aside / "model.safetensors").read_bytes() == b"A" and (run / "config.yaml").is_file()  # nothing swapped
    failing_run(None)  # C: nothing to resume; the finished A comes back
    assert (run / "model.safetensors").read_bytes() == b"A" and not aside.exists()
    with replaced_on_success(run, True, main_process):  # D finishes: A goes
        run.mkdir()
        (run / "model.safetensors").write_bytes(b"D")
    assert (run / "model.safetensors").read_bytes() == b"D" and not aside.exists()


def test_an_interrupted_run_says_resume_only_when_it_has_a_checkpoint(tmp_path, capsys):
    """Ctrl-C in the first epoch said "rerun with --resume", which then found nothing to resume."""
    from nlp_transfer.cli.guard import guard
    from nlp_transfer.cli.train import resumable_run

    def interrupted() -> None:
        raise KeyboardInterrupt

    run = tmp_path / "run"
    run.mkdir()
    assert guard(False, interrupted, resumable=lambda: resumable_run([str(run)])) == 130
    assert "interrupted before the first checkpoint, so there is nothing to resume" in capsys.readouterr().err
    (run / "checkpoints" / "step-00000005").mkdir(parents=True)
    (run / "checkpoints" / "step-00000005" / "trainer_state.json").write_text("{}")
    assert guard(False, interrupted, resumable=lambda: resumable_run([str(run)])) == 130
    assert "rerun with --resume" in capsys.readouterr().err
    # stopped while starting (before the config was read): only a run that was resuming may resume (it said so always)
    assert guard(False, interrupted, resumable=lambda: resumable_run([])) == 130
    assert "nothing to resume" in capsys.readouterr().err
    assert guard(False, interrupted, resumable=lambda: resumable_run([], resuming=True)) == 130
    assert "rerun with --resume" in capsys.readouterr().err


def test_predict_drops_a_byte_order_mark_from_standard_input_as_from_a_file(monkeypatch):
    import io
    import sys

    from nlp_transfer.cli.predict import stdin_texts

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"\xef\xbb\xbfhello\nworld\n")))
    assert list(stdin_texts("utf-8")) == [(1, "hello"), (2, "world")]


def test_resume_and_overwrite_together_are_refused(capsys):
    """--overwrite beside --resume was ignored silently."""
    from nlp_transfer.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["train", "recipes/configs/sentiment/minilm_full.yaml", "--resume", "--overwrite"])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and "give one of them" in err and len(err.strip().splitlines()) == 1, err


def test_a_token_typed_where_it_does_not_belong_is_never_echoed(monkeypatch, capsys):
    """An unknown option or a refused override quotes what was typed: a Hub token there was printed in full."""
    from nlp_transfer.cli import main

    monkeypatch.chdir(REPO)
    token, secret = "hf_" + "aliceWriteToken0123456789", "s3cret-value-of-HF_TOKEN"
    monkeypatch.setenv("HF_TOKEN", secret)
    config = "recipes/configs/sentiment/minilm_full.yaml"
    for args in (
        ["train", config, "--token", token],
        ["train", config, f"hub={token}"],
        ["push", "run", "--repo-id", "a/b", "--tokn", secret],
    ):
        try:
            code = main(args)
        except SystemExit as exit_:
            code = exit_.code
        stderr = capsys.readouterr().err
        assert code == 2 and stderr.startswith("error: ") and "hf_***" in stderr, stderr
        assert token not in stderr and secret not in stderr
    from nlp_transfer.errors import without_secrets

    # a "_" beside the token hid it from a \b-bounded pattern; the old organisation tokens were not masked at all
    old_org = "api_org_" + "OrgToken0123456789abcdefgh"
    assert without_secrets(f"my_{token}_old and {old_org}.") == "my_hf_***_old and hf_***."
    for not_a_token in ("data/hf_sentimentclassification_v2_train.csv", "runs/hf_20260105123045123456_sst2"):
        assert without_secrets(f"{not_a_token}: no such file") == f"{not_a_token}: no such file"


def test_a_model_with_code_of_its_own_is_refused_with_the_setting_that_allows_it(tiny_model_dir, tmp_path, monkeypatch, capsys):
    """Refused, rightly, but as "not a readable model config ... copy the model folder again"."""
    import shutil

    folder = tmp_path / "custom"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="mybert", auto_map={"AutoConfig": "configuration_my.MyConfig"})
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "configuration_my.py").write_text("raise SystemExit('this code must not run')\n")
    monkeypatch.chdir(REPO)
    out = tmp_path / "out"
    code, _, stderr = cli_in_process(
        capsys, "train", "recipes/configs/sentiment/minilm_full.yaml", f"model={folder}", f"output_dir={out}"
    )
    assert code == 2 and "names code of its own" in stderr and "trust_remote_code=true" in stderr, stderr
    assert not out.exists()


def test_library_deprecation_notices_are_quiet_unless_debugging():
    """Exporting an adapter run printed transformers' FutureWarning (raised by peft) without --debug."""
    import warnings

    from nlp_transfer.cli.guard import quiet_libraries

    for debug, expected in ((False, ["ours"]), (True, ["theirs", "ours"])):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            quiet_libraries(debug)
            warnings.warn_explicit("theirs", FutureWarning, "modeling_utils.py", 1, module="transformers.modeling_utils")
            warnings.warn_explicit("ours", FutureWarning, "x.py", 1, module="nlp_transfer.x")
        assert [str(w.message) for w in caught] == expected


def test_a_verb_launched_once_per_process_does_its_work_once(trained_run, tmp_path, capsys, monkeypatch):
    """Under `accelerate launch` / torchrun every process ran predict whole: each prediction was printed twice."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert cli_in_process(capsys, "predict", trained_run["out"], "great movie") == (0, "", "")
    code, out, err = cli_in_process(capsys, "compare", "recipes/configs/sentiment/minilm_full.yaml")
    assert (code, out, err) == (2, "", "")
    monkeypatch.setenv("RANK", "0")
    code, out, err = cli_in_process(capsys, "predict", trained_run["out"], "great movie")
    assert code == 0 and json.loads(out)["text"] == "great movie"
    assert "predict runs in one process; the 1 other(s) launched with it did nothing" in err
    assert "WORLD_SIZE" not in os.environ and "RANK" not in os.environ  # rank's process state waited for the others
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    code, _, err = cli_in_process(capsys, "compare", "recipes/configs/sentiment/minilm_full.yaml")
    assert code == 2 and err == "error: compare starts a process per arm itself; run it without accelerate launch or torchrun.\n"
