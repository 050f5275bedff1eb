"""nlp-transfer compare: strategies against a from-scratch baseline, each run in a child process of its own."""

import json
import sys
from pathlib import Path

import pytest

from nlp_transfer.errors import ConfigError
from tests.conftest import tiny_overrides

SENTIMENT_CONFIG = "recipes/configs/sentiment/minilm_full.yaml"


def data_overrides(sentiment_files, **extra):
    """The synthetic sentiment files as overrides."""
    values = {
        "data.train_file": sentiment_files["train"],
        "data.validation_file": sentiment_files["validation"],
        "data.test_file": sentiment_files["test"],
        **extra,
    }
    return {k: str(v) for k, v in values.items()}


def test_negative_transfer_is_flagged_against_scratch_at_the_same_size():
    from nlp_transfer.compare import (
        ComparisonRow,
        epochs_for_min_steps,
        flag_negative_transfer,
        markdown_table,
        parse_strategies,
        parse_train_sizes,
        split_strategy_overrides,
    )

    def row(strategy, size, value):
        return ComparisonRow(strategy, size, size or 999, "accuracy", "test", value, 1, 1, 0.0, 0.0, "child_peak_rss", "")

    rows = [
        row("full", 50, 0.6),
        row("frozen", 50, 0.8),
        row("scratch", 50, 0.7),
        row("full", None, 0.9),
        row("scratch", None, 0.95),
    ]
    flag_negative_transfer(rows)
    assert [r.negative_transfer for r in rows] == [True, False, False, True, False]
    gradual = row("gradual_unfreezing", 50, 0.8)
    gradual.trainable_parameters, gradual.total_parameters, gradual.trainable_parameters_end = 150, 1000, 1000
    table = markdown_table([rows[0], gradual])
    assert "| 150 (15.00%) at the start, 1,000 (100.00%) at the end |" in table
    assert "| 1 (100.00%) |" in table  # a strategy whose trainable set never changes shows one count
    assert parse_train_sizes("50, 100,all") == [50, 100, None]
    assert parse_strategies("full,lora") == {"full": "full", "lora": "lora"}
    assert parse_strategies("full, llrd=full") == {"full": "full", "llrd": "full"}
    with pytest.raises(ConfigError, match="unknown lorax"):
        parse_strategies("full,lorax")
    with pytest.raises(ConfigError, match="unknown fool"):
        parse_strategies("llrd=fool")
    for bad in ("full,full", "scratch=full", "=full"):
        with pytest.raises(ConfigError, match="empty, reserved or given twice"):
            parse_strategies(bad)
    # 50 examples at batch 16 are 4 steps an epoch: 100 steps need 25 epochs; large sets keep the configured epochs
    assert epochs_for_min_steps(3, 50, 16, 100) == 25
    assert epochs_for_min_steps(3, 5000, 16, 100) == 3
    assert epochs_for_min_steps(3, 50, 16, 0) == 3
    with pytest.raises(ConfigError, match="'-3'"):
        parse_train_sizes("-3")
    common, own = split_strategy_overrides(["seed=1", "lora:training.learning_rate=5e-4", "scratch:training.epochs=5"], ["lora"])
    assert common == ["seed=1"] and own == {"lora": ["training.learning_rate=5e-4"], "scratch": ["training.epochs=5"]}
    with pytest.raises(ConfigError, match="'full' is not a compared strategy"):
        split_strategy_overrides(["full:seed=3"], ["lora"])


def test_a_failed_run_is_neither_flagged_nor_a_baseline_and_shows_its_error():
    from nlp_transfer.compare import ComparisonRow, failure_summary, flag_negative_transfer, markdown_table

    def row(strategy, value, error=""):
        return ComparisonRow(strategy, 50, 50, "accuracy", "test", value, 1, 1, 2.0, 900.0, "child_peak_rss", "", error=error)

    broken_scratch = [row("full", 0.6), row("scratch", None, "DataError: no column 'x' | fix data.text_column")]
    broken_strategy = [row("lora", None, "killed by SIGKILL (out of memory?)"), row("scratch", 0.7)]
    flag_negative_transfer(broken_scratch)
    flag_negative_transfer(broken_strategy)
    assert not any(r.negative_transfer for r in broken_scratch + broken_strategy)
    table = markdown_table(broken_scratch)
    assert "| scratch | 50 | 0 | 0 | **failed**: DataError: no column 'x' \\| fix data.text_column | | 2.0 | 900 | |" in table
    assert failure_summary(broken_scratch[:1], "out") == ""
    summary = failure_summary(broken_strategy, "out")
    assert summary.startswith("1 of 2 runs failed (first: lora, train size 50: killed by SIGKILL (out of memory?))")
    assert str(Path("out") / "compare.md") in summary and "\n" not in summary


def test_each_child_reports_its_own_peak_memory_and_its_last_error_line(capfd):
    """A run's peak is its own: a small child of this large process reads far below it, a large one above its data."""
    import inspect

    from nlp_transfer.compare import own_peak_rss_bytes, run_child

    assert own_peak_rss_bytes() > 200 << 20  # torch is loaded here; a child's ru_maxrss inherits this at exec
    measure = "import re, resource, sys\n" + inspect.getsource(own_peak_rss_bytes)
    large = run_child([sys.executable, "-c", f"{measure}\nx = b'x' * (300 << 20)\nprint(own_peak_rss_bytes())"])
    small = run_child([sys.executable, "-c", f"{measure}\nprint(own_peak_rss_bytes())"])
    own_large, own_small = map(int, capfd.readouterr().out.split())
    assert own_large > 300 << 20 and 0 < own_small < 100 << 20
    assert large.returncode == small.returncode == 0 and large.error == small.error == ""
    assert large.peak_rss_bytes >= own_large and large.memory_kind == "child_peak_rss_upper_bound"
    failed = run_child(
        [sys.executable, "-c", "import sys; print('epoch 1\\r50%', file=sys.stderr); sys.exit('boom: lower training.batch_size')"]
    )
    assert (failed.returncode, failed.error) == (1, "boom: lower training.batch_size")
    assert "epoch 1\r50%" in capfd.readouterr().err  # the child's standard error still reaches ours
    killed = run_child([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"])
    assert (killed.returncode, killed.error) == (-9, "killed by SIGKILL (out of memory?)")


def test_an_interrupted_parent_does_not_leave_its_child_running(monkeypatch):
    import subprocess

    import nlp_transfer.compare as compare

    started = []

    class Recorded(subprocess.Popen):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            started.append(self)

    def interrupted(stream):
        raise KeyboardInterrupt  # Ctrl-C while the child trains

    monkeypatch.setattr(compare.subprocess, "Popen", Recorded)
    monkeypatch.setattr(compare, "_pass_through", interrupted)
    with pytest.raises(KeyboardInterrupt):
        compare.run_child([sys.executable, "-c", "import time; time.sleep(60)"])
    assert started[0].wait(timeout=10) == -9


def test_compare_cli_runs_strategies_and_scratch(sentiment_files, tiny_model_dir, tmp_path):
    from nlp_transfer.cli import main

    overrides = tiny_overrides(
        tiny_model_dir,
        tmp_path / "run",
        # "all" below means these 300, not the file's 400
        **data_overrides(sentiment_files, **{"data.max_train_samples": 300, "training.learning_rate": 5e-3}),
    )
    out = tmp_path / "report"
    code = main(
        [
            "compare",
            SENTIMENT_CONFIG,
            *overrides,
            "lora:training.learning_rate=0.01",
            "llrd:transfer.layer_lr_decay=0.5",
            "--strategies",
            "lora,llrd=full",
            "--train-sizes",
            "100,all",
            "--min-steps",
            "14",
            "--output",
            str(out),
        ]
    )
    assert code == 0
    report = json.loads((out / "compare.json").read_text())
    assert report["memory"] == "child_peak_rss"
    rows = report["rows"]
    assert [(r["strategy"], r["train_size"]) for r in rows] == [
        ("lora", 100),
        ("llrd", 100),
        ("scratch", 100),
        ("lora", None),
        ("llrd", None),
        ("scratch", None),
    ]
    assert [r["train_examples"] for r in rows] == [100] * 3 + [300] * 3
    # --min-steps 14: 100 examples at batch 16 are 7 steps an epoch, so those runs take 2 epochs; "all" keeps 1
    assert [r["epochs"] for r in rows] == [2] * 3 + [1] * 3
    assert [r["base_strategy"] for r in rows] == ["lora", "full", "full"] * 2
    # the labelled variant is full fine-tuning with its own layer-wise decay; the baseline has none
    assert "layer_lr_decay: 0.5" in (out / "runs" / "llrd-all" / "config.yaml").read_text()
    assert "layer_lr_decay: 1.0" in (out / "runs" / "scratch-all" / "config.yaml").read_text()
    by = {(r["strategy"], r["train_size"]): r for r in rows}
    assert (
        by["lora", None]["trainable_parameters"]
        < by["llrd", None]["trainable_parameters"]
        == by["scratch", None]["total_parameters"]
    )
    for r in rows:
        assert r["error"] == "" and r["metric"] == "accuracy" and 0 <= r["value"] <= 1 and r["train_seconds"] > 0
        assert 100 < r["peak_memory_mb"] < 4000  # a child's own resident set: interpreter, torch and the tiny model
        scratch = by["scratch", r["train_size"]]["value"]
        assert r["negative_transfer"] == (r["strategy"] != "scratch" and r["value"] < scratch)
    assert (out / "compare.png").stat().st_size > 1000
    assert "| lora | 300 | 1 | 0.01 |" in (out / "compare.md").read_text()
    # a STRATEGY:key=value override reaches that strategy's runs only
    assert [r["learning_rate"] for r in rows] == [1e-2, 5e-3, 5e-3] * 2
    assert "learning_rate: 0.01" in (out / "runs" / "lora-all" / "config.yaml").read_text()
    # the scratch run really started from random weights: its run info says so
    assert json.loads((out / "runs" / "scratch-all" / "run_info.json").read_text())["from_scratch"] is True


def test_compare_records_a_failed_run_goes_on_and_exits_non_zero(sentiment_files, tiny_model_dir, tmp_path, capsys):
    """A run whose child fails is a failed row with the child's error; the runs after it still train."""
    from nlp_transfer.cli import main

    out = tmp_path / "report"
    stale = out / "runs" / "bad-all"
    stale.mkdir(parents=True)
    (stale / "metrics.json").write_text("{}")  # an earlier comparison's run: never read as this one's result
    overrides = tiny_overrides(tiny_model_dir, tmp_path / "run", **data_overrides(sentiment_files))
    code = main(
        [
            "compare",
            SENTIMENT_CONFIG,
            *overrides,
            "bad:data.text_column=no_such_column",
            "--strategies",
            "bad=full,full",
            "--no-scratch",
            "--output",
            str(out),
        ]
    )
    assert code == 2
    rows = json.loads((out / "compare.json").read_text())["rows"]
    assert [(r["strategy"], r["value"] is None) for r in rows] == [("bad", True), ("full", False)]
    assert "no_such_column" in rows[0]["error"] and "\n" not in rows[0]["error"]
    assert rows[0]["peak_memory_mb"] > 0 and rows[0]["memory_kind"] == "child_peak_rss" and not stale.exists()
    assert rows[1]["error"] == "" and 0 <= rows[1]["value"] <= 1
    table = (out / "compare.md").read_text()
    assert "| bad | all | 1 |" in table and "**failed**: " in table and "| full | 400 | 1 |" in table
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("error: 1 of 2 runs failed (first: bad, train size all: ") and "bad:key=value" in error


def test_an_interrupted_comparison_keeps_the_report_of_finished_runs(sentiment_files, tmp_path, monkeypatch):
    """A long comparison stopped (Ctrl-C) during its second run still has the first run's row on disk."""
    import nlp_transfer.compare as compare
    from nlp_transfer.config import load_config

    def fake_child(run_config, *, from_scratch, jobs, debug=False):
        if run_config.strategy == "lora":
            raise KeyboardInterrupt
        run_dir = Path(run_config.output_dir)
        run_dir.mkdir(parents=True)
        (run_dir / "metrics.json").write_text(json.dumps({"validation": {"accuracy": 0.75}}))
        info = {"best_metric": {"accuracy": 0.75}, "examples": {"train": 400}, "trainable_parameters": 10}
        (run_dir / "run_info.json").write_text(json.dumps({**info, "total_parameters": 100, "train_seconds": 1.5}))
        return compare.ChildOutcome(returncode=0, peak_rss_bytes=500 << 20)

    monkeypatch.setattr(compare, "train_in_child", fake_child)
    config = load_config(None, [f"data.train_file={sentiment_files['train']}"])
    with pytest.raises(KeyboardInterrupt):
        compare.run_comparison(config, ["full", "lora"], output_dir=tmp_path / "report")
    rows = json.loads((tmp_path / "report" / "compare.json").read_text())["rows"]
    assert [(r["strategy"], r["value"], r["peak_memory_mb"]) for r in rows] == [("full", 0.75, 500.0)]
    assert (
        "| full | 400 | 3 | 5e-05 | validation accuracy 0.7500 | 10 (10.00%) | 1.5 | 500 |"
        in (tmp_path / "report" / "compare.md").read_text()
    )
