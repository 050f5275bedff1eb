"""nlp-transfer compare: strategies against a from-scratch baseline, each run in a child process of its own."""

import json
import shutil
import sys
from pathlib import Path

import pytest

from nlp_transfer.errors import ConfigError, UserError
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
        parse_per_class,
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
    for bad, message in [("20,20", "20 is given twice"), ("all,50,all", "all is given twice"), ("\u00b2", "neither a positive")]:
        with pytest.raises(ConfigError, match=message):  # a repeat ran twice into one folder and counted as two seeds
            parse_train_sizes(bad)
    with pytest.raises(ConfigError, match="not a positive number"):
        parse_per_class("8,\u00b2")  # "²".isdigit() is true; int() refused it with a traceback
    for bad in ("../../victim=frozen", "a b=full", "x/y=full", ".hidden=full", "a|b=full"):
        with pytest.raises(ConfigError, match="it names the run's folder"):  # a path label deleted folders outside --output
            parse_strategies(bad)
    common, own = split_strategy_overrides(["seed=1", "lora:training.learning_rate=5e-4", "scratch:training.epochs=5"], ["lora"])
    assert common == ["seed=1"] and own == {"lora": ["training.learning_rate=5e-4"], "scratch": ["training.epochs=5"]}
    with pytest.raises(ConfigError, match="'full' is not a compared strategy"):
        split_strategy_overrides(["full:seed=3"], ["lora"])


def test_a_named_baseline_flags_adaptations_that_score_below_the_base_model(capsys):
    """compare --baseline base: an adapted model below the base model is flagged, one above is not; scratch never is."""
    from nlp_transfer.cli import main
    from nlp_transfer.compare import ComparisonRow, flag_negative_transfer, markdown_table

    def row(label, seed, value):
        return ComparisonRow(label, None, 900, "accuracy", "test", value, 1, 1, 0.0, 0.0, "child_peak_rss", "", seed=seed)

    rows = [row("base", 0, 0.80), row("adapted", 0, 0.83), row("control", 0, 0.78), row("scratch", 0, 0.60)]
    rows += [row("base", 1, 0.82), row("adapted", 1, 0.81), row("control", 1, 0.84)]
    flag_negative_transfer(rows, baseline="base")
    assert [r.negative_transfer for r in rows] == [False, False, True, False, False, True, False]
    assert "**yes** (below base)" in markdown_table(rows) and rows[2].below == "base"
    flag_negative_transfer(rows)  # the default baseline, scratch, is beaten by every run
    assert not any(r.negative_transfer for r in rows)
    code = main(["compare", "recipes/configs/sentiment/minilm_full.yaml", "--strategies", "base=full", "--baseline", "based"])
    assert code == 2 and "--baseline based: not one of the compared labels (base)" in capsys.readouterr().err


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

    import nlp_transfer.compare.child as child

    started = []

    class Recorded(subprocess.Popen):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            started.append(self)

    def interrupted(stream):
        raise KeyboardInterrupt  # Ctrl-C while the child trains

    monkeypatch.setattr(child.subprocess, "Popen", Recorded)
    monkeypatch.setattr(child, "_pass_through", interrupted)
    with pytest.raises(KeyboardInterrupt):
        child.run_child([sys.executable, "-c", "import time; time.sleep(60)"])
    assert started[0].wait(timeout=10) == -9


def test_compare_cli_runs_strategies_and_scratch(sentiment_files, tiny_model_dir, tmp_path):
    """lora and the scratch baseline at two sizes: four child runs, each mostly spent importing torch.

    A labelled variant (LABEL=STRATEGY) whose LABEL:key=value override reaches its runs only is run end to end by
    test_compare_records_a_failed_run_goes_on_and_exits_non_zero (bad=full); parse_strategies and
    split_strategy_overrides are unit-tested in test_negative_transfer_is_flagged_against_scratch_at_the_same_size.
    """
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
            "--strategies",
            "lora",
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
        ("scratch", 100),
        ("lora", None),
        ("scratch", None),
    ]
    assert [r["train_examples"] for r in rows] == [100] * 2 + [300] * 2
    # --min-steps 14: 100 examples at batch 16 are 7 steps an epoch, so those runs take 2 epochs; "all" keeps 1
    assert [r["epochs"] for r in rows] == [2] * 2 + [1] * 2
    assert [r["base_strategy"] for r in rows] == ["lora", "full"] * 2
    by = {(r["strategy"], r["train_size"]): r for r in rows}
    assert (
        by["lora", None]["trainable_parameters"]
        < by["scratch", None]["trainable_parameters"]
        == by["scratch", None]["total_parameters"]
    )
    for r in rows:
        assert r["error"] == "" and r["metric"] == "accuracy" and 0 <= r["value"] <= 1 and r["train_seconds"] > 0
        assert 100 < r["peak_memory_mb"] < 4000  # a child's own resident set: interpreter, torch and the tiny model
        scratch = by["scratch", r["train_size"]]["value"]
        assert r["negative_transfer"] == (r["strategy"] != "scratch" and r["value"] < scratch)
    assert (out / "compare.png").stat().st_size > 1000
    markdown = (out / "compare.md").read_text()
    assert "| lora | 300 | 1 | 0.01 |" in markdown
    # one run a size: the per-run table gives validation beside test, and each size gets its recommendation on validation
    lora_all = by["lora", None]
    assert f"test accuracy {lora_all['value']:.4f} (validation {lora_all['validation']:.4f})" in markdown
    assert [line.split(":")[0] for line in report["recommendations"]] == [
        "at 100 training examples (ranked on validation)",
        "at all training examples (ranked on validation)",
    ]
    assert all(f"- {line}" in markdown for line in report["recommendations"])
    assert all(line.split(": use ")[1].startswith("lora (validation ") for line in report["recommendations"])  # never scratch
    # a STRATEGY:key=value override reaches that strategy's runs only
    assert [r["learning_rate"] for r in rows] == [1e-2, 5e-3] * 2
    assert "learning_rate: 0.01" in (out / "runs" / "lora-all" / "config.yaml").read_text()
    assert "learning_rate: 0.005" in (out / "runs" / "scratch-all" / "config.yaml").read_text()
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
    no_weights = tmp_path / "no-weights"  # a model folder that fails only where a run loads its weights (the child)
    no_weights.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(Path(tiny_model_dir) / name, no_weights / name)
    code = main(
        [
            "compare",
            SENTIMENT_CONFIG,
            *overrides,
            f"bad:model={no_weights}",
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
    assert "no safetensors weights" in rows[0]["error"] and "\n" not in rows[0]["error"]
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

    monkeypatch.setattr(compare.run, "train_in_child", fake_child)
    config = load_config(None, [f"data.train_file={sentiment_files['train']}"])
    with pytest.raises(KeyboardInterrupt):
        compare.run_comparison(config, ["full", "lora"], output_dir=tmp_path / "report")
    rows = json.loads((tmp_path / "report" / "compare.json").read_text())["rows"]
    assert [(r["strategy"], r["value"], r["peak_memory_mb"]) for r in rows] == [("full", 0.75, 500.0)]
    assert (
        "| full | 400 | 3 | 5e-05 | validation accuracy 0.7500 | 10 (10.00%) | 1.5 | 500 |"
        in (tmp_path / "report" / "compare.md").read_text()
    )


# --------------------------------------------------------------------------- learning curves over seeds


def few_shot_row(strategy, per_class, seed, value, error="", metric="accuracy", seconds=0.0, validation=None):
    """A hand-made row of a --per-class comparison of two classes (``value`` on test; validation unknown unless given)."""
    from nlp_transfer.compare import ComparisonRow

    return ComparisonRow(
        strategy, None, 2 * per_class, metric, "test", value, 1, 1, seconds, 0.0, "child_peak_rss", "", error=error,
        per_class=per_class, seed=seed, validation=validation,
    )  # fmt: skip


def test_the_recommendation_ranks_on_validation_and_only_reports_test():
    from nlp_transfer.compare import aggregate_rows, aggregate_table, markdown_table, recommendation

    # planted: validation prefers tuned, test prefers steady; the choice must follow validation
    rows = [few_shot_row("steady", 8, s, t, validation=v) for s, (v, t) in enumerate([(0.75, 0.78), (0.76, 0.79), (0.74, 0.80)])]
    rows += [few_shot_row("tuned", 8, s, t, validation=v) for s, (v, t) in enumerate([(0.80, 0.70), (0.82, 0.71), (0.81, 0.69)])]
    rows += [few_shot_row("scratch", 8, s, 0.9, validation=0.6) for s in range(3)]  # better on test only: not flagged
    line = recommendation(aggregate_rows(rows), rows)
    # validation differences 0.05, 0.06, 0.07: mean 0.06, sd 0.01, 95% half-width 4.3027 * 0.01 / sqrt(3) = 0.0248
    assert line == (
        "at 8 per class (ranked on validation): use tuned (validation 0.8100 ± 0.0100, test 0.7000 ± 0.0100 over 3 seeds); "
        "next best steady (validation 0.7500 ± 0.0100, test 0.7900 ± 0.0100 over 3 seeds); paired by seed on validation, "
        "tuned leads by 0.0600 (95% interval 0.0352 to 0.0848, 3 seeds): the seeds separate them"
    )
    for row in rows[-3:]:
        row.validation = 0.95  # now the baseline beats the pick on validation: negative transfer is said
    assert recommendation(aggregate_rows(rows)).endswith(
        "; scratch scores better (validation 0.9500 ± 0.0000, test 0.9000 ± 0.0000 over 3 seeds): negative transfer"
    )
    table = aggregate_table(aggregate_rows(rows))
    assert (
        "| strategy | size | train examples | validation accuracy: mean ± std | test accuracy: mean ± sample std (ddof=1) |"
        in table
    )
    assert "| tuned | 8 per class | 16 | 0.8100 ± 0.0100 | 0.7000 ± 0.0100 | 3 | 0 |" in table
    assert "| tuned | 8 | 0 | 16 | 0 | 0 | test accuracy 0.7000 (validation 0.8000) |" in markdown_table(rows)
    # one run without its validation score: no like-for-like validation mean, so it ranks on what the runs report
    rows[0].validation = None
    assert recommendation(aggregate_rows(rows)).startswith("at 8 per class: use steady (0.7900 ± 0.0100 over 3 seeds)")


def test_aggregate_is_mean_and_sample_std_over_the_successful_seeds(tmp_path):
    from nlp_transfer.compare import aggregate_rows, aggregate_table, markdown_table, recommendations, several_seeds, write_report

    rows = [
        *(few_shot_row("full", 8, s, v) for s, v in enumerate([0.8, 0.9, 1.0])),
        few_shot_row("lora", 8, 0, 0.7),
        few_shot_row("lora", 8, 1, None, "killed by SIGKILL (out of memory?)"),
        few_shot_row("lora", 8, 2, 0.8),
        *(few_shot_row("full", 16, s, v) for s, v in enumerate([0.9, 0.9])),
        *(few_shot_row("lora", 16, s, v) for s, v in enumerate([0.85, 0.95])),
        *(few_shot_row("scratch", 16, s, v) for s, v in enumerate([0.95, 0.97])),
        *(few_shot_row(name, 32, 0, None, "boom") for name in ("full", "lora")),
    ]
    assert several_seeds(rows)
    aggregates = aggregate_rows(rows)
    by = {(a.strategy, a.per_class): a for a in aggregates}
    assert [(a.strategy, a.per_class) for a in aggregates] == [
        ("full", 8), ("lora", 8), ("full", 16), ("lora", 16), ("scratch", 16), ("full", 32), ("lora", 32)
    ]  # fmt: skip
    full, lora = by["full", 8], by["lora", 8]
    assert (full.mean, full.std, full.seeds, full.failed) == (pytest.approx(0.9), pytest.approx(0.1), 3, 0)
    # the failed run is counted, not averaged; ddof=1: sqrt(2 * 0.05**2 / 1), not the population 0.05
    assert (lora.mean, lora.std, lora.seeds, lora.failed) == (pytest.approx(0.75), pytest.approx(0.0707107), 2, 1)
    assert (by["full", 32].mean, by["full", 32].std, by["full", 32].failed) == (None, None, 1)
    assert recommendations(aggregates) == [
        "at 8 per class: use full (0.9000 ± 0.1000 over 3 seeds); next best lora (0.7500 ± 0.0707 over 2 seeds, 1 failed)",
        "at 16 per class: use full (0.9000 ± 0.0000 over 2 seeds), tied on the mean with lora (0.9000 ± 0.0707 over 2 seeds), "
        "picked for its smaller spread; scratch scores better (0.9600 ± 0.0141 over 2 seeds): negative transfer",
        "at 32 per class: no strategy has a successful run (2 failed)",
    ]
    table = aggregate_table(aggregates)
    assert "| strategy | size | train examples | test accuracy: mean ± sample std (ddof=1) | seeds | failed |" in table
    assert "| lora | 8 per class | 16 | 0.7500 ± 0.0707 | 2 | 1 |" in table
    assert "| lora | 32 per class | 0 | **failed** | 0 | 1 |" in table
    runs = markdown_table(rows)
    assert "| strategy | per class | sample seed | train size |" in runs
    assert "| lora | 8 | 1 | 8 per class | 0 | 0 | **failed**: killed by SIGKILL" in runs
    paths = write_report(rows, tmp_path)
    report = json.loads(paths["compare.json"].read_text())
    assert report["recommendations"] == recommendations(aggregates, rows) and len(report["aggregate"]) == 7
    # with the runs, the 8-per-class line adds full's lead over lora on their common seeds 0 and 2 (0.1, 0.2)
    assert report["recommendations"][0] == recommendations(aggregates)[0] + (
        "; paired by seed on the 2 seeds both finished, full leads by 0.1500 (95% interval -0.4853 to 0.7853, 2 seeds): "
        "within what the seeds move, either will do"
    )
    assert "## Over seeds" in paths["compare.md"].read_text() and paths["compare.png"].stat().st_size > 1000


def test_a_pick_behind_on_the_seeds_both_finished_says_it_trails():
    """Planted: A's mean is higher thanks to a seed B failed, while B is ahead on both seeds they share."""
    from nlp_transfer.compare import aggregate_rows, recommendation

    rows = [few_shot_row("A", 8, s, v) for s, v in enumerate([0.60, 0.70, 1.00])]
    rows += [few_shot_row("B", 8, 0, 0.65), few_shot_row("B", 8, 1, 0.75), few_shot_row("B", 8, 2, None, error="boom")]
    line = recommendation(aggregate_rows(rows), rows)
    assert "use A (" in line and "; paired by seed on the 2 seeds both finished, A trails B by 0.0500 (" in line, line
    assert "leads by -" not in line


def test_ties_one_seed_and_losses_in_the_recommendation():
    from nlp_transfer.compare import aggregate_rows, recommendation

    equal = [few_shot_row("frozen", 8, s, 0.7) for s in (0, 1)] + [few_shot_row("full", 8, s, 0.7) for s in (0, 1)]
    assert recommendation(aggregate_rows(equal)) == (
        "at 8 per class: use frozen (0.7000 ± 0.0000 over 2 seeds), tied on the mean with full "
        "(0.7000 ± 0.0000 over 2 seeds), picked as listed first"
    )
    one_seed = [few_shot_row("full", 8, 0, 0.6), few_shot_row("lora", 8, 0, 0.65)]
    assert recommendation(aggregate_rows(one_seed)) == (
        "at 8 per class: use lora (0.6500 over 1 seed); next best full (0.6000 over 1 seed)"
    )
    losses = [few_shot_row("full", 8, 0, 0.4, metric="loss"), few_shot_row("lora", 8, 0, 0.3, metric="loss")]
    assert recommendation(aggregate_rows(losses)).startswith("at 8 per class: use lora (0.3000")


def test_paired_lead_is_the_paired_t_interval_of_the_per_seed_differences():
    from scipy.stats import ttest_rel

    from nlp_transfer.evaluation.paired import paired_lead

    first, second = {0: 0.72, 1: 0.70, 2: 0.81, 3: 0.5}, {0: 0.70, 1: 0.71, 2: 0.76, 9: 0.9}
    lead = paired_lead(first, second)
    # known answer: differences 0.02, -0.01, 0.05 (seeds 0-2 only): mean 0.02, sd 0.03, t(0.975, 2) = 4.3027
    assert (lead.seeds, lead.mean) == (3, pytest.approx(0.02))
    assert (lead.low, lead.high) == (pytest.approx(0.02 - 0.074524, abs=1e-6), pytest.approx(0.02 + 0.074524, abs=1e-6))
    interval = ttest_rel([0.72, 0.70, 0.81], [0.70, 0.71, 0.76]).confidence_interval(0.95)
    assert (lead.low, lead.high) == (pytest.approx(interval.low), pytest.approx(interval.high))
    assert not lead.separated
    # the same 0.1 on every seed: an interval of no width, which said "the seeds separate them" from two seeds;
    # it separates them only as a sign test would, from 6 seeds (2 * 0.5**6 < 0.05)
    steady = paired_lead({0: 0.8, 1: 0.9, 2: 0.7}, {0: 0.7, 1: 0.8, 2: 0.6})
    assert steady.same_every_seed and steady.low == pytest.approx(0.1) == steady.high and not steady.separated
    six = paired_lead({s: 0.8 for s in range(6)}, {s: 0.7 for s in range(6)})
    assert six.same_every_seed and six.separated
    losses = paired_lead({0: 0.3, 1: 0.2, 2: 0.45}, {0: 0.5, 1: 0.4, 2: 0.6}, lower_is_better=True)
    assert losses.mean == pytest.approx(0.1833333) and losses.separated  # lower loss: a positive lead
    one = paired_lead({0: 0.9}, {0: 0.5})
    assert (one.mean, one.low, one.seeds, one.separated) == (pytest.approx(0.4), None, 1, False)
    assert paired_lead({0: 0.9}, {1: 0.5}) is None


def test_the_recommendation_says_whether_the_seeds_separate_the_pick_from_the_next_best():
    from nlp_transfer.compare import aggregate_rows, recommendation

    # planted: cosine beats frozen by 0.04 to 0.06 on every sample; supcon's lead over cosine flips sign between samples
    separated = [few_shot_row("cosine", 8, s, v, seconds=20.0) for s, v in enumerate([0.70, 0.73, 0.74])]
    separated += [few_shot_row("frozen", 8, s, v, seconds=5.0) for s, v in enumerate([0.65, 0.67, 0.70])]
    line = recommendation(aggregate_rows(separated), separated)
    assert line.endswith(
        "; paired by seed, cosine leads by 0.0500 (95% interval 0.0252 to 0.0748, 3 seeds): the seeds separate them; "
        "frozen trains in 0.25x cosine's time (medians)"
    )
    # the same 0.05 on each of 3 seeds: an interval of no width, not a separation
    steady = [few_shot_row("cosine", 8, s, 0.7 + 0.02 * s, seconds=20.0) for s in range(3)]
    steady += [few_shot_row("frozen", 8, s, 0.65 + 0.02 * s, seconds=5.0) for s in range(3)]
    assert "(95% interval 0.0500 to 0.0500, 3 seeds): the same difference on every seed, too few seeds to tell them apart" in (
        recommendation(aggregate_rows(steady), steady)
    )
    noisy = [few_shot_row("supcon", 8, s, v, seconds=30.0) for s, v in enumerate([0.80, 0.64, 0.75])]
    noisy += [few_shot_row("cosine", 8, s, v, seconds=15.0) for s, v in enumerate([0.70, 0.70, 0.70])]
    line = recommendation(aggregate_rows(noisy), noisy)
    assert line.startswith("at 8 per class: use supcon (0.7300 ± 0.0819 over 3 seeds); next best cosine")
    assert "within what the seeds move, either will do; cosine trains in 0.50x supcon's time" in line
    # without the runs (or with one seed in common) the line stays as it was
    assert "paired" not in recommendation(aggregate_rows(noisy)) and "paired" not in recommendation(
        aggregate_rows(noisy[:1] + noisy[3:4]), noisy[:1] + noisy[3:4]
    )


def test_points_and_run_names_keep_every_size_and_seed_apart():
    from nlp_transfer.compare import Point, comparison_points, parse_per_class

    assert parse_per_class("8, 16,32") == [8, 16, 32]
    for bad, message in (
        ("0", "'0' is not a positive"),
        ("8,x", "'x' is not a positive"),
        ("8,8", "given twice"),
        ("", "at least one"),
    ):
        with pytest.raises(ConfigError, match=message):
            parse_per_class(bad)
    assert comparison_points([50, None]) == [Point(50), Point(None)]  # one seed: the config's, names as before
    assert comparison_points([50], seeds=2) == [Point(50, seed_offset=0), Point(50, seed_offset=1)]
    assert comparison_points(per_class=[2, 4], seeds=2) == [
        Point(per_class=2, seed_offset=0), Point(per_class=2, seed_offset=1),
        Point(per_class=4, seed_offset=0), Point(per_class=4, seed_offset=1),
    ]  # fmt: skip
    with pytest.raises(ConfigError, match="--seeds must be at least 1"):
        comparison_points([50], seeds=0)
    with pytest.raises(ConfigError, match="give one of them"):
        comparison_points([50], per_class=[8])


def test_per_class_runs_share_their_examples_across_strategies(sentiment_files, tmp_path, monkeypatch):
    """Every strategy at a size and seed reads the same sample; seeds differ; epochs follow size x labels; nothing overwrites."""
    import nlp_transfer.compare as compare
    from nlp_transfer.config import load_config
    from nlp_transfer.data.text_rows import load_text_classification_data

    seen = {}

    def fake_child(run_config, *, from_scratch, jobs, debug=False):
        data = load_text_classification_data(run_config.data, seed=run_config.seed)
        seen[run_config.output_dir] = (run_config.seed, run_config.training.epochs, list(data.splits["train"]["text"]))
        seen.setdefault("validation", set()).add(tuple(data.splits["validation"]["text"]))
        run_dir = Path(run_config.output_dir)
        run_dir.mkdir(parents=True)
        (run_dir / "metrics.json").write_text(json.dumps({"test": {"accuracy": 0.5 + len(seen) / 100}}))
        info = {"best_metric": {"accuracy": 0.5}, "examples": {"train": len(data.splits["train"])}}
        (run_dir / "run_info.json").write_text(json.dumps({**info, "trainable_parameters": 1, "total_parameters": 2}))
        return compare.ChildOutcome(returncode=0, peak_rss_bytes=1 << 20)

    monkeypatch.setattr(compare.run, "train_in_child", fake_child)
    config = load_config(None, [f"{k}={v}" for k, v in data_overrides(sentiment_files, **{"training.batch_size": 4}).items()])
    out = tmp_path / "report"
    # 2 classes: 2 per class are 4 examples (1 step an epoch), 4 per class 8 (2 steps): 6 steps need 6 and 3 epochs
    rows = compare.run_comparison(config, ["full", "lora"], per_class=[2, 4], seeds=2, output_dir=out, min_steps=6)
    assert [(r.strategy, r.per_class, r.seed, r.train_examples, r.epochs) for r in rows] == [
        (name, size, seed, 2 * size, 6 if size == 2 else 3)
        for size in (2, 4) for seed in (0, 1) for name in ("full", "lora", "scratch")
    ]  # fmt: skip
    assert len({r.run_dir for r in rows}) == 12 and all(Path(r.run_dir).parent == out / "runs" for r in rows)
    assert Path(rows[0].run_dir).name == "full-2-per-class-seed0"
    samples: dict[tuple[int, int], set[tuple[str, ...]]] = {}
    for r in rows:
        samples.setdefault((r.per_class, r.seed), set()).add(tuple(seen[r.run_dir][2]))
    assert all(len(texts) == 1 for texts in samples.values())  # the same rows whatever the strategy
    assert samples[2, 0] != samples[2, 1] and samples[4, 0] != samples[4, 1]
    assert {seen[r.run_dir][0] for r in rows} == {config.seed}  # the run's own seed stays; only the sample varies
    assert len(seen["validation"]) == 1
    assert "## Over seeds" in (out / "compare.md").read_text()


def fake_children(monkeypatch, scores=None):
    """Replace compare's child process by one that writes a run of ``scores[label]`` (0.5 by default) at once."""
    import nlp_transfer.compare as compare
    from nlp_transfer.data.text_rows import load_text_classification_data

    made = []

    def fake_child(run_config, *, from_scratch, jobs, debug=False):
        rows = len(load_text_classification_data(run_config.data, seed=run_config.seed).splits["train"])
        made.append((Path(run_config.output_dir).name, run_config.training.epochs, rows))
        run_dir = Path(run_config.output_dir)
        run_dir.mkdir(parents=True)
        value = (scores or {}).get(run_dir.name.split("-")[0], 0.5)
        (run_dir / "metrics.json").write_text(json.dumps({"test": {"accuracy": value}}))
        info = {"best_metric": {"accuracy": value}, "examples": {"train": rows}}
        (run_dir / "run_info.json").write_text(json.dumps({**info, "trainable_parameters": 1, "total_parameters": 2}))
        return compare.ChildOutcome(returncode=0, peak_rss_bytes=1 << 20)

    monkeypatch.setattr(compare.run, "train_in_child", fake_child)
    return made


def test_min_steps_reaches_the_all_size_and_the_report_says_what_it_judged_against(sentiment_files, tmp_path, monkeypatch):
    """--min-steps left size `all` at its epochs (a curve whose biggest size trained least); the report named the
    from-scratch run as the baseline whatever --baseline said; a rerun into the folder dropped the earlier rows."""
    import nlp_transfer.compare as compare
    from nlp_transfer.config import load_config

    made = fake_children(monkeypatch, scores={"base": 0.6, "adapted": 0.5})
    values = data_overrides(sentiment_files, **{"training.batch_size": 4, "data.max_train_samples": 60})
    config = load_config(None, [f"{k}={v}" for k, v in values.items()])
    out = tmp_path / "report"
    strategies = {"base": "full", "adapted": "full"}
    compare.run_comparison(config, strategies, [10, None], output_dir=out, scratch=False, min_steps=60, baseline="base")
    # 10 rows at batch 4: 3 steps an epoch, 20 epochs; all = the 60 capped rows: 15 steps an epoch, 4 epochs (not 3)
    assert made == [(f"{n}-10", 20, 10) for n in strategies] + [(f"{n}-all", 4, 60) for n in strategies]
    report = (out / "compare.md").read_text()
    assert "below the baseline (base) at the same training size" in report and "Incomplete" not in report
    saved = json.loads((out / "compare.json").read_text())
    assert (saved["baseline"], saved["planned_runs"], saved["complete"]) == ("base", 4, True)
    with pytest.raises(UserError, match=r"holds an earlier comparison .*Pass --overwrite"):
        compare.run_comparison(config, strategies, [10], output_dir=out, scratch=False)
    assert len(json.loads((out / "compare.json").read_text())["rows"]) == 4
    compare.run_comparison(config, ["full"], [10], output_dir=out, scratch=False, overwrite=True)
    assert "Negative transfer: not checked (no baseline run" in (out / "compare.md").read_text()
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["full-10"]  # the earlier comparison's runs are gone
    # a report written before the last run says so at its top
    rows = compare.run_comparison(config, ["full", "lora"], [10], output_dir=tmp_path / "partial", scratch=False)
    compare.write_report(rows[:1], tmp_path / "partial", compare.ReportContext(planned=2))
    assert (tmp_path / "partial" / "compare.md").read_text().startswith("**Incomplete: 1 of 2 runs so far**")
    # one metric for every run: a label's own selection metric mixed accuracy with f1_macro in one ranking
    with pytest.raises(UserError, match=r"compare ranks every run on one metric, .*frozen: f1_macro"):
        other = load_config(None, [*[f"{k}={v}" for k, v in values.items()], "training.metric_for_best_model=f1_macro"])
        compare.run_comparison(config, ["full", "frozen"], output_dir=tmp_path / "metric", strategy_configs={"frozen": other})


def test_compare_refuses_bad_per_class_before_training(sentiment_files, tmp_path, capsys):
    from nlp_transfer.cli import main

    overrides = [f"{k}={v}" for k, v in data_overrides(sentiment_files, output_dir=tmp_path / "run").items()]
    out = tmp_path / "report"
    cases = [
        (["--per-class", "8", "--train-sizes", "50"], "--per-class and --train-sizes both choose the training rows"),
        (["--per-class", "8", "--seeds", "0"], "--seeds must be at least 1, got 0"),
        (["--per-class", "8,0"], "--per-class: '0' is not a positive number"),
        (["--per-class", "8,300"], "class 'negative' has 200 training rows, fewer than data.per_class=300"),
        (["data.max_train_samples=100", "--per-class", "8"], "data.per_class=8 and data.max_train_samples=100 both"),
        (["--train-sizes", "50,5000"], "--train-sizes 5000: "),  # it was capped at 400 silently
        (["full:strategy=lora"], "compare sets each run's strategy from --strategies"),  # was ignored silently
        (["--strategies", "full,frozen", "frozen:transfer.layer_lr_decay=0.8"], "frozen: transfer.layer_lr_decay applies"),
        # options the model cannot serve: refused from its structure, before the first run, not in every run
        (
            ["--strategies", "full,freeze_layers", "freeze_layers:transfer.freeze_layers=9"],
            "freeze_layers: transfer.freeze_layers=9: this model has 6 encoder layers",
        ),
        (
            ["--strategies", "full,lora", "lora:transfer.lora_target_modules=[nope]"],
            "lora: transfer.lora_target_modules: 'nope' names no encoder module",
        ),
        (["--strategies", "full", "full:transfer.depth=7"], "full: transfer.depth=7: the model has 6 encoder layers"),
    ]
    for flags, expect in cases:
        code = main(["compare", SENTIMENT_CONFIG, *overrides, *flags, "--output", str(out)])
        message = capsys.readouterr().err.strip()
        assert code == 2 and expect in message and "\n" not in message, (flags, message)
        assert not out.exists()


def test_compare_per_class_over_seeds_end_to_end(sentiment_files, tiny_model_dir, tmp_path, capsys):
    """Four runs (each child process spends most of its time importing): one strategy, 2 sizes x 2 seeds."""
    from nlp_transfer.cli import main

    data = data_overrides(sentiment_files, **{"data.max_eval_samples": 32, "training.learning_rate": 5e-3})
    out = tmp_path / "report"
    flags = ["--strategies", "frozen", "--per-class", "2,4", "--seeds", "2", "--no-scratch", "--output", str(out)]
    code = main(["compare", SENTIMENT_CONFIG, *tiny_overrides(tiny_model_dir, tmp_path / "run", **data), *flags])
    assert code == 0
    rows = json.loads((out / "compare.json").read_text())["rows"]
    assert sorted((r["per_class"], r["seed"], r["strategy"]) for r in rows) == [
        (size, seed, "frozen") for size in (2, 4) for seed in (0, 1)
    ]
    for r in rows:
        assert r["error"] == "" and 0 <= r["value"] <= 1
        info = json.loads((Path(r["run_dir"]) / "run_info.json").read_text())
        assert info["examples"]["train"] == r["train_examples"] == 2 * r["per_class"]  # size x labels
        assert info["examples"]["validation"] == 32
        metrics = json.loads((Path(r["run_dir"]) / "metrics.json").read_text())
        assert (r["split"], r["value"], r["validation"]) == (
            "test",
            metrics["test"]["accuracy"],
            metrics["validation"]["accuracy"],
        )
    report = (out / "compare.md").read_text()
    assert "mean ± sample std (ddof=1)" in report and "| frozen | 4 per class | 8 |" in report
    assert "| validation accuracy: mean ± std | test accuracy: mean ± sample std (ddof=1) |" in report
    assert (out / "compare.png").stat().st_size > 1000
    printed = capsys.readouterr().out
    for size in (2, 4):  # the runs have a test split: the line ranks on validation and reports both
        assert f"at {size} per class (ranked on validation): use frozen (validation " in printed
    assert ", test " in printed and "over 2 seeds" in printed


def test_a_run_config_keeps_what_its_point_means_and_scratch_keeps_the_architecture(sentiment_files):
    """A config's per-class sample is the "all" point's; sizes in rows beside it are refused (the run failed, or
    was mislabelled). The from-scratch baseline keeps the config's depth and pooling (it dropped them, so it
    compared a larger model with a different head)."""
    from nlp_transfer.compare import Point
    from nlp_transfer.compare.plan import check_train_sizes, run_config_for, varied_seed
    from nlp_transfer.compare.rows import SCRATCH
    from nlp_transfer.config import load_config
    from nlp_transfer.errors import UserError

    extra = {"data.per_class": 8, "transfer.depth": 1, "transfer.pooling": "mean", "strategy": "frozen"}
    config = load_config(None, [f"{k}={v}" for k, v in data_overrides(sentiment_files, **extra).items()])
    assert run_config_for(config, "frozen", "frozen", Point(None), 1, Path("runs"), 2).data.per_class == 8  # "all"
    assert run_config_for(config, "frozen", "frozen", Point(per_class=4), 1, Path("runs"), 2).data.per_class == 4
    # "all" of a few-shot config over two seeds: each seed its own sample, reported as its own seed (they were
    # reported as one seed, so nothing was paired)
    seeded = [run_config_for(config, "frozen", "frozen", Point(None, None, s), 1, Path("runs"), 2) for s in (0, 1)]
    assert [c.data.sample_seed for c in seeded] == [config.data.sample_seed, config.data.sample_seed + 1]
    assert varied_seed(seeded[0]) != varied_seed(seeded[1]) and seeded[0].output_dir != seeded[1].output_dir
    with pytest.raises(UserError, match="both choose the training rows"):  # rows and a per-class sample contradict
        check_train_sizes({"frozen": config}, [Point(50), Point(None)])
    scratch = run_config_for(config, SCRATCH, "full", Point(50), 1, Path("runs"), 2)
    assert (scratch.transfer.depth, scratch.transfer.pooling, scratch.strategy) == (1, "mean", "full")


def test_a_lead_of_float_noise_reads_zero_not_minus_zero():
    """Two strategies tied on the validation mean but for float noise: the lead reads 0.0000, not -0.0000."""
    from nlp_transfer.compare import aggregate_rows, recommendation

    rows = [
        few_shot_row("frozen", 4, 0, 0.6, validation=0.3),
        few_shot_row("frozen", 4, 1, 0.6, validation=0.5),
        few_shot_row("contrastive", 4, 0, 0.6, validation=0.1 + 0.2),  # 0.30000000000000004: a mean higher, a spread
        few_shot_row("contrastive", 4, 1, 0.6, validation=0.5 + 2**-52),  # wider, by float noise alone
    ]
    text = recommendation(aggregate_rows(rows), rows)
    assert "use frozen" in text and "leads by 0.0000" in text and "-0.0000" not in text, text


def test_a_strategys_own_options_reach_its_runs_only():
    """A LoRA recipe compared with full fine-tuning: its lora_* settings would now be refused under strategy=full;
    they go to the lora runs, a label's own override is checked against the label's strategy."""
    from nlp_transfer.compare import label_config
    from nlp_transfer.compare.plan import fitted_to_strategy
    from nlp_transfer.config import load_config

    lora_recipe = load_config("recipes/configs/sentiment/minilm_lora.yaml")
    assert lora_recipe.transfer.lora_target_modules == ["query", "value"]
    full = fitted_to_strategy(lora_recipe, "full", lora_recipe)
    assert full.transfer.lora_target_modules is None and lora_recipe.transfer.lora_target_modules == ["query", "value"]
    assert fitted_to_strategy(lora_recipe, "lora", lora_recipe).transfer.lora_target_modules == ["query", "value"]
    tuned = label_config(lora_recipe, "full", ["training.learning_rate=1e-4"], "recipe.yaml")
    assert (tuned.strategy, tuned.training.learning_rate, tuned.transfer.lora_target_modules) == ("full", 1e-4, None)
    with pytest.raises(ConfigError, match=r"recipe\.yaml: transfer\.lora_r applies to strategy=lora, not to strategy=full"):
        label_config(lora_recipe, "full", ["transfer.lora_r=4"], "recipe.yaml")
    # a shared override for a compared strategy under a recipe of another strategy, as the CLI loads it
    from nlp_transfer.transfer.base import unread_options_allowed

    with unread_options_allowed():
        shared = load_config("recipes/configs/sentiment/minilm_full.yaml", ["transfer.lora_r=4"])
    assert fitted_to_strategy(shared, "lora", shared).transfer.lora_r == 4
    assert fitted_to_strategy(shared, "full", shared).transfer.lora_r == 8
    # the options a class flag says a strategy reads: a gradual recipe's layer-wise decay stays off its frozen runs
    gradual = load_config("recipes/configs/sentiment/minilm_gradual.yaml")
    assert gradual.transfer.layer_lr_decay == 0.8
    assert fitted_to_strategy(gradual, "frozen", gradual).transfer.layer_lr_decay == 1.0
    assert fitted_to_strategy(gradual, "full", gradual).transfer.layer_lr_decay == 0.8


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_a_run_ends_with_the_comparison_that_started_it(tmp_path):
    """A comparison killed with SIGKILL left its run's process training for a while into a folder a rerun clears."""
    import subprocess
    import textwrap
    import time

    script = tmp_path / "parent.py"
    child_code = (
        "import os, time; from nlp_transfer.compare.child import end_with_parent; end_with_parent(os.getppid()); "
        "print('ready', flush=True); time.sleep(120)"
    )
    script.write_text(
        textwrap.dedent(f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", {child_code!r}], stdout=subprocess.PIPE)
        child.stdout.readline()
        print(child.pid, flush=True)
        time.sleep(120)
        """)
    )
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    parent.kill()
    parent.wait()

    def running(pid: int) -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"  # a zombie has ended
        except FileNotFoundError:
            return False

    deadline = time.monotonic() + 20
    while running(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not running(child)


def test_bad_data_every_run_reads_is_one_error_before_any_run(sentiment_files, tmp_path, monkeypatch):
    """A broken training file failed each run in its own process, one after the other, then blamed one run's settings."""
    import nlp_transfer.compare as compare
    from nlp_transfer.config import load_config

    made = fake_children(monkeypatch)
    broken = tmp_path / "train.csv"
    broken.write_text("text,label\ngreat film,positive\nawful, dull,negative\n", encoding="utf-8")
    values = data_overrides(sentiment_files, **{"data.train_file": broken})
    config = load_config(None, [f"{k}={v}" for k, v in values.items()])
    with pytest.raises(UserError, match=r"train\.csv:3"):
        compare.run_comparison(config, ["full", "frozen"], output_dir=tmp_path / "report")
    assert made == [] and not (tmp_path / "report").exists()


def test_a_shared_override_for_one_compared_strategy_reaches_its_runs_from_the_command_line(
    sentiment_files, tmp_path, monkeypatch, capsys
):
    """`compare minilm_full.yaml --strategies full,lora transfer.lora_r=4` was refused: the shared config was checked
    against the recipe's own strategy (full) before each strategy took its own options."""
    from nlp_transfer.cli import main

    seen = {}

    def fake_child(run_config, *, from_scratch, jobs, debug=False):
        seen[run_config.strategy] = run_config.transfer.lora_r
        return ChildOutcome(returncode=1, peak_rss_bytes=1, error="stopped here")

    from nlp_transfer.compare import ChildOutcome

    monkeypatch.setattr("nlp_transfer.compare.run.train_in_child", fake_child)
    overrides = [f"{k}={v}" for k, v in data_overrides(sentiment_files).items()]
    args = ["compare", SENTIMENT_CONFIG, *overrides, "transfer.lora_r=4", "--strategies", "full,lora", "--no-scratch"]
    code = main([*args, "--output", str(tmp_path / "report")])
    assert code == 2 and seen == {"full": 8, "lora": 4}, capsys.readouterr().err


def test_the_structure_check_of_a_case_vocab_recipe_needs_no_task():
    """compare of the NER recipes stopped at once: case_vocab's model step needs the task's case-aware tokenizer,
    which the structure check (a model on the meta device, no task) never makes."""
    from nlp_transfer.config import load_config
    from nlp_transfer.transfer import check_strategy_fits_model

    recipe = "recipes/configs/ner/conll2003_full.yaml"
    assert load_config(recipe).transfer.case_vocab
    check_strategy_fits_model(load_config(recipe))
    with pytest.raises(UserError, match=r"transfer\.depth=9: the model has 6 encoder layers"):  # still checked
        check_strategy_fits_model(load_config(recipe, ["transfer.depth=9"]))
