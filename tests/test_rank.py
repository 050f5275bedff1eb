"""nlp-transfer rank: candidates and their variants, the report, the real model against a random control, bad input."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nlp_transfer.cli import main
from nlp_transfer.config import load_config
from nlp_transfer.errors import UserError
from nlp_transfer.rank import Candidate, encode_candidate, parse_candidates, run_ranking
from nlp_transfer.rank.candidates import SharedEncodingMismatch, balanced_layer_mean, encode_shared, hidden_state
from nlp_transfer.rank.estimators import logme
from nlp_transfer.tasks import build_task_and_data
from tests.conftest import REPO, shared_dataset, synthetic_sentiment, tiny_overrides, write_csv

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
DEFAULT = "sentence-transformers/all-MiniLM-L6-v2"


def cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "nlp_transfer.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env or ENV,
        timeout=600,
    )


@pytest.fixture()
def sentiment_config(tmp_path, tiny_model_dir):
    train = write_csv(tmp_path / "train.csv", synthetic_sentiment(200, 1))
    return tmp_path, train, tiny_overrides(tiny_model_dir, tmp_path / "run", **{"data.train_file": train})


def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "rank.yaml"
    path.write_text("task: classification\n", encoding="utf-8")
    return path


def fake_hub_cache(cache: Path, repo_id: str, model_dir: str) -> None:
    """Put a model folder into a Hugging Face cache as if ``repo_id`` had been downloaded."""
    owner, name = repo_id.split("/")
    root = cache / f"models--{owner}--{name}"
    shutil.copytree(model_dir, root / "snapshots" / ("0" * 40))
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text("0" * 40)


# --------------------------------------------------------------------------- candidates


def test_candidate_specs_parse_with_their_variants():
    candidates = parse_candidates("org/a, org/a@depth=2+pooling=mean, @layer=mean, ./b@init=random", default_model="org/m")
    assert candidates == [
        Candidate("org/a"),
        Candidate("org/a", depth=2, pooling="mean"),
        Candidate("org/m", layer="mean"),
        Candidate("./b", init="random"),
    ]
    assert candidates[1].name == "org/a@pooling=mean+depth=2"


@pytest.mark.parametrize(
    "specs, message",
    [
        ("a,b,a", r"candidate 'a' is given twice"),
        ("a@size=3", r"'size=3' is not a variant; write MODEL@key=value\+key=value with keys layer, pooling, depth, init"),
        ("a@pooling=max", r"pooling=max is unknown; choose cls or mean"),
        ("a@depth=0", r"depth=0 must be a whole number from 1"),
        (" , ", r"--models names no candidate"),
    ],
)
def test_bad_candidate_specs_are_one_line_errors(specs, message):
    with pytest.raises(UserError, match=message):
        parse_candidates(specs, default_model="m")


def test_the_layer_mean_weighs_every_layer_alike_whatever_its_spread():
    """Scaling one layer's features by any factor leaves the mean unchanged; one layer comes out at unit total variance."""
    rng = np.random.default_rng(0)
    layers = [rng.normal(size=(50, 8)) * scale + shift for scale, shift in ((1.0, 0.0), (0.1, 3.0), (40.0, -2.0))]
    mean = balanced_layer_mean(layers)
    rescaled = balanced_layer_mean([layers[0], layers[1] * 1000.0, layers[2] / 7.0])
    np.testing.assert_allclose(rescaled, mean, rtol=1e-5, atol=1e-6)
    assert balanced_layer_mean([layers[2]]).var(axis=0).sum() == pytest.approx(1.0, rel=1e-5)
    constant = np.ones((50, 8))  # no spread: left as it is, no division by zero
    np.testing.assert_allclose(balanced_layer_mean([constant, constant]), constant)


def test_a_wide_noisy_layer_does_not_drown_the_informative_ones():
    """Planted fault of a plain mean: one layer spreads 20 times as far as the others and carries no label signal.
    Averaged plainly it decides the features and LogME falls to that of noise; the balanced mean keeps the signal."""
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, size=300)
    informative = rng.normal(size=(300, 6))
    informative[np.arange(300), labels] += 3.0
    noise = 20.0 * rng.normal(size=(300, 6))
    plain = np.mean([informative, informative, noise], axis=0)
    balanced = balanced_layer_mean([informative, informative, noise])
    assert logme(balanced, labels) > logme(plain, labels) + 0.1
    assert logme(plain, labels) < logme(noise, labels) + 0.05  # the plain mean is about as bad as noise alone


def test_depth_and_layer_variants_give_the_same_features(sentiment_config, tiny_model_dir):
    """The bottom-1-layer model's output is the full model's first hidden state, so the two variants agree."""
    _, _, overrides = sentiment_config
    task, data = build_task_and_data(load_config(None, overrides))
    sample = data.splits["train"].select(range(40))
    by_depth = encode_candidate(Candidate(tiny_model_dir, depth=1), task, sample)
    by_layer = encode_candidate(Candidate(tiny_model_dir, layer=1), task, sample)
    last = encode_candidate(Candidate(tiny_model_dir), task, sample)
    np.testing.assert_allclose(by_depth.features, by_layer.features, atol=1e-5)
    assert not np.allclose(by_layer.features, last.features)
    assert by_depth.layers == 1 and last.layers == 2 and by_depth.parameters < last.parameters
    assert by_depth.features.shape == (40, 64) and sorted(set(by_depth.labels)) == [0, 1]


def test_variants_of_one_model_share_one_pass_with_the_features_each_would_get_alone(sentiment_config, tiny_model_dir):
    """One pass of the whole model gives every variant (depth, layer, pooling) what encoding it alone gives."""
    _, _, overrides = sentiment_config
    task, data = build_task_and_data(load_config(None, overrides))
    sample = data.splits["train"].select(range(40))
    group = [
        Candidate(tiny_model_dir),
        Candidate(tiny_model_dir, depth=1),
        Candidate(tiny_model_dir, depth=1, layer="mean", pooling="mean"),
        Candidate(tiny_model_dir, layer="mean"),
        Candidate(tiny_model_dir, layer=0, pooling="mean"),
    ]
    shared = encode_shared(group, task, sample, batch_size=16)
    for candidate, together in zip(group, shared, strict=True):
        alone = encode_candidate(candidate, task, sample, batch_size=16)
        np.testing.assert_allclose(together.features, alone.features, atol=1e-5, err_msg=candidate.name)
        np.testing.assert_array_equal(together.labels, alone.labels)
        assert (together.parameters, together.layers) == (alone.parameters, alone.layers), candidate.name
        assert together.shared_by == 5 and alone.shared_by == 1
    assert not np.allclose(shared[0].features, shared[1].features)  # the variants really differ


def test_a_model_whose_cut_output_differs_is_encoded_variant_by_variant(sentiment_config, tiny_model_dir, monkeypatch):
    """Planted fault: a step after the layer stack (as a final norm) rewrites the last hidden state, so the model
    cut to 1 layer no longer outputs hidden state 1. The shared pass notices on its first batch; ranking falls
    back to one pass per variant and still gets each variant's own features."""
    import nlp_transfer.rank.candidates as candidates_module

    original = candidates_module.load_encoder

    def with_final_step(candidate, task, *, seed=0):
        model, own_task = original(candidate, task, seed=seed)

        def rewrite_last(module, inputs, output):
            output.hidden_states = (*output.hidden_states[:-1], output.hidden_states[-1] * 2.0)
            return output

        model.register_forward_hook(rewrite_last)
        return model, own_task

    monkeypatch.setattr(candidates_module, "load_encoder", with_final_step)
    tmp_path, _, overrides = sentiment_config
    config = load_config(None, overrides)
    task, data = build_task_and_data(config)
    sample = data.splits["train"].select(range(40))
    group = [Candidate(tiny_model_dir), Candidate(tiny_model_dir, depth=1)]
    with pytest.raises(SharedEncodingMismatch, match="cut to 1 layers"):
        encode_shared(group, task, sample, batch_size=16)
    rows, _, _ = run_ranking(config, group, sample_size=40, output_dir=tmp_path / "rank")
    assert [(r.error, r.encode_shared_by, r.layers) for r in rows] == [(None, 1, 2), (None, 1, 1)]


def test_a_windows_run_is_ranked_on_one_feature_row_per_text(sentiment_config, tiny_model_dir):
    """With training.long_text=windows each text's windows are encoded and averaged: rows and labels stay per text."""
    _, _, overrides = sentiment_config
    windowed = [*overrides, "training.long_text=windows", "training.max_length=8", "training.window_stride=1"]
    sample_of = lambda values: build_task_and_data(load_config(None, values))  # noqa: E731
    task, data = sample_of(windowed)
    sample = data.splits["train"].select(range(40))
    assert len(task.preprocess(sample, "probe")) > 40  # the short max_length really cuts texts into windows
    windows = encode_candidate(Candidate(tiny_model_dir), task, sample)
    plain_task, _ = sample_of([*overrides, "training.max_length=8"])
    truncated = encode_candidate(Candidate(tiny_model_dir), plain_task, sample)
    assert windows.features.shape == truncated.features.shape == (40, 64)
    np.testing.assert_array_equal(windows.labels, truncated.labels)
    assert not np.allclose(windows.features, truncated.features)  # later windows were read too


def test_a_model_without_hidden_states_is_refused():
    class NoStates(torch.nn.Module):
        def forward(self, **inputs):
            return {"last_hidden_state": torch.zeros(1, 2, 3)}

    with pytest.raises(UserError, match="does not return hidden states"):
        hidden_state(NoStates(), {"input_ids": torch.zeros(1, 2, dtype=torch.long)}, None)


# --------------------------------------------------------------------------- the command


def test_rank_cli_ranks_hub_candidates_and_writes_the_report(tmp_path, tiny_model_dir):
    """Two tiny random models served from a Hugging Face cache as Hub ids, a variant, and a broken candidate."""
    cache = tmp_path / "hf-cache"
    fake_hub_cache(cache, "tiny/alpha", tiny_model_dir)
    fake_hub_cache(cache, "tiny/beta", tiny_model_dir)
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    train = write_csv(tmp_path / "train.csv", synthetic_sentiment(200, 1))
    out = tmp_path / "report"
    env = {**ENV, "HF_HUB_CACHE": str(cache)}
    models = f"tiny/alpha,tiny/beta@pooling=mean,tiny/alpha@depth=1,{broken}"
    result = cli(
        "rank",
        config_file(tmp_path),
        f"data.train_file={train}",
        f"model={tiny_model_dir}",
        "--models",
        models,
        "--sample",
        150,
        "--output",
        out,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "rank.json").read_text())
    rows = {row["name"]: row for row in report["candidates"]}
    assert set(rows) == {"tiny/alpha", "tiny/beta@pooling=mean", "tiny/alpha@depth=1", str(broken)}
    for name in ("tiny/alpha", "tiny/beta@pooling=mean", "tiny/alpha@depth=1"):
        assert rows[name]["error"] is None
        assert all(np.isfinite(rows[name][e]) for e in ("logme", "hscore", "knn", "linear_probe"))
        assert rows[name]["encode_seconds"] > 0 and rows[name]["parameters"] > 0
    assert rows["tiny/alpha@depth=1"]["layers"] == 1 and rows["tiny/alpha"]["layers"] == 2
    assert rows["tiny/alpha@depth=1"]["encode_shared_by"] == rows["tiny/alpha"]["encode_shared_by"] == 2  # one pass
    assert rows["tiny/beta@pooling=mean"]["encode_shared_by"] == 1
    assert rows[str(broken)]["error"] and "logme" not in rows[str(broken)]
    assert report["recommended"] == max((r for r in report["candidates"] if r["error"] is None), key=lambda r: r["logme"])["name"]
    assert report["sample"] == 150 and (out / "rank.png").stat().st_size > 0
    assert f"**{report['recommended']}** (recommended)" in (out / "rank.md").read_text()
    assert "could not be scored" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--models", "nobody/no-such-model"], "model 'nobody/no-such-model': not in the local Hugging Face cache"),
        (["--models", "@depth=1,@depth=1"], "is given twice"),
        (["--models", "@depth=1", "--estimators", "logme,magic"], "unknown estimator 'magic'"),
        (["--models", "@depth=1", "--output", "FILE"], "an existing file; the report is a folder"),
        (["--models", "NOT_A_MODEL"], "the folder has no config.json, so it is not a saved model"),
    ],
)
def test_rank_bad_input_exits_2_with_one_line(sentiment_config, extra, message, capsys, monkeypatch):
    tmp_path, _, overrides = sentiment_config
    if "FILE" in extra:  # refused before any candidate is encoded
        (tmp_path / "report.log").write_text("a file", encoding="utf-8")
        extra = [str(tmp_path / "report.log") if value == "FILE" else value for value in extra]
        monkeypatch.setattr("nlp_transfer.rank.ranking.sample_split", lambda *a, **k: pytest.fail("encoded first"))
    if "NOT_A_MODEL" in extra:  # a folder of notes named as a candidate: the message must not speak of model=
        (tmp_path / "notes").mkdir(exist_ok=True)
        (tmp_path / "notes" / "todo.txt").write_text("not a model", encoding="utf-8")
        extra = [str(tmp_path / "notes") if value == "NOT_A_MODEL" else value for value in extra]
    code = main(["rank", str(config_file(tmp_path)), *overrides, *extra])  # in process: the console script is tested in test_cli
    stderr = capsys.readouterr().err
    assert code == 2, stderr
    assert message in stderr and "Traceback" not in stderr and "model=" not in stderr
    assert len(stderr.strip().splitlines()) == 1


def test_when_every_candidate_fails_each_reason_is_printed_once(sentiment_config, capsys):
    tmp_path, _, overrides = sentiment_config
    code = main(["rank", str(config_file(tmp_path)), *overrides, "--models", "@layer=99"])
    captured = capsys.readouterr()
    assert code == 2, captured.err
    assert (captured.out + captured.err).count("layer=99: the model has hidden states") == 1
    assert "no candidate could be scored (1 failed" in captured.err and len(captured.err.strip().splitlines()) == 1


def test_rank_refuses_a_sample_with_one_class(sentiment_config, capsys):
    tmp_path, _, overrides = sentiment_config
    code = main(["rank", str(config_file(tmp_path)), *overrides, "--models", "@depth=1", "--sample", "1"])
    stderr = capsys.readouterr().err
    assert code == 2 and "the ranking sample (1 rows) has 1 class" in stderr, stderr
    assert "--sample" in stderr and "Traceback" not in stderr


# --------------------------------------------------------------------------- the real model on real slices


def real_config(tmp_path, **extra):
    values = {"model": DEFAULT, "output_dir": str(tmp_path / "run"), "training.torch_threads": 2, **extra}
    return load_config(None, [f"{k}={v}" for k, v in values.items()])


def test_pretrained_model_outranks_its_random_control_on_sst2(tmp_path):
    """300 SST-2 rows: LogME, kNN and the probe score the pretrained encoder above the same architecture at random weights.

    (H-score does not, at 300 rows of 384-wide features: 0.62 against 0.77 when this test was written; BENCHMARKS.md
    measures each estimator against fine-tuning.)
    """
    config = real_config(tmp_path, **{"data.train_file": shared_dataset("sst2", "train.tsv"), "data.text_column": "sentence"})
    candidates = parse_candidates("@pooling=mean,@pooling=mean+init=random", default_model=DEFAULT)
    rows, recommended, _ = run_ranking(config, candidates, sample_size=300, output_dir=tmp_path / "rank")
    pretrained, random = rows
    assert recommended == pretrained.name
    for estimator in ("logme", "knn", "linear_probe"):
        assert pretrained.scores[estimator] > random.scores[estimator], estimator
    assert pretrained.scores["linear_probe"] >= 0.7  # 60 held-out rows, chance about 0.5


def test_pretrained_model_outranks_its_random_control_on_conll_tokens(tmp_path):
    """NER ranks on word features: 300 CoNLL-2003 sentences, the pretrained encoder above the random control."""
    config = real_config(
        tmp_path, task="ner", **{"data.train_file": shared_dataset("conll2003", "train.txt"), "data.format": "conll"}
    )
    rows, recommended, _ = run_ranking(
        config, parse_candidates("@depth=6,@init=random", default_model=DEFAULT), sample_size=300, output_dir=tmp_path / "rank"
    )
    pretrained, random = rows
    assert recommended == pretrained.name
    assert pretrained.scores["logme"] > random.scores["logme"]
    assert pretrained.scores["linear_probe"] > random.scores["linear_probe"] + 0.1


def test_the_table_leads_with_and_sorts_by_the_estimator_that_recommends():
    """--estimators knn showed and sorted by knn while logme picked the bold row, which then did not follow."""
    from nlp_transfer.rank.ranking import RankRow, markdown_table

    rows = [
        RankRow("a", {"knn": 0.9, "logme": -1.0}, 1.0, 10, 2),
        RankRow("b", {"knn": 0.5, "logme": 2.0}, 1.0, 10, 2),
    ]
    table = markdown_table(rows, ["knn", "logme"], "b", by="logme").splitlines()
    assert table[0].startswith("| candidate | logme | knn |") and table[2].startswith("| **b** (recommended) | 2.0000")
    assert markdown_table(rows, ["knn"], None).splitlines()[2].startswith("| a |")  # without by: the first estimator


# --------------------------------------------------------------------------- one bad candidate among good ones


def nan_model(tmp_path: Path, model_dir: str) -> Path:
    """A copy of ``model_dir`` with one NaN in a LayerNorm weight: it loads and runs, and every feature is NaN."""
    from safetensors.torch import load_file, save_file

    target = tmp_path / "nan-model"
    shutil.copytree(model_dir, target)
    weights = load_file(target / "model.safetensors")
    name = next(k for k in weights if "LayerNorm.weight" in k)
    weights[name][0] = float("nan")
    save_file(weights, target / "model.safetensors", metadata={"format": "pt"})
    return target


def test_a_candidate_with_nan_features_fails_alone_and_the_others_rank(sentiment_config, tiny_model_dir):
    """Planted fault: a model with a NaN weight. Its features reached the estimators outside the per-candidate
    guard, so their error aborted the ranking and no report was written; now only its row fails."""
    tmp_path, _, overrides = sentiment_config
    candidates = [Candidate(tiny_model_dir), Candidate(str(nan_model(tmp_path, tiny_model_dir)))]
    rows, recommended, paths = run_ranking(
        load_config(None, overrides), candidates, sample_size=60, estimators=["logme", "knn"], output_dir=tmp_path / "rank"
    )
    assert rows[0].error is None and recommended == rows[0].name
    assert "NaN or infinite values in 60 of 60 rows" in rows[1].error and not rows[1].scores
    assert json.loads(paths["rank.json"].read_text())["candidates"][1]["error"] == rows[1].error


def test_a_folder_that_is_not_a_model_fails_alone_and_the_others_rank(sentiment_config, tiny_model_dir):
    """Planted fault: every candidate was resolved up front, so one folder of notes stopped the whole run."""
    tmp_path, _, overrides = sentiment_config
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "readme.txt").write_text("not a model", encoding="utf-8")
    candidates = [Candidate(str(notes)), Candidate(tiny_model_dir), Candidate(str(notes), layer=1)]
    rows, recommended, _ = run_ranking(
        load_config(None, overrides), candidates, sample_size=60, estimators=["logme"], output_dir=tmp_path / "rank"
    )
    assert [r.error is None for r in rows] == [False, True, False] and recommended == tiny_model_dir
    assert "the folder has no config.json" in rows[0].error and rows[0].error == rows[2].error


def test_an_estimator_that_fails_on_one_candidate_leaves_its_other_scores(sentiment_config, tiny_model_dir, monkeypatch):
    """One estimator's failure is that estimator's cell, not the candidate's row nor the whole ranking."""
    from nlp_transfer.rank.estimators import ESTIMATORS
    from nlp_transfer.rank.ranking import markdown_table

    def broken(*args, **kwargs):
        raise UserError("the probe cannot split these rows")

    monkeypatch.setitem(ESTIMATORS, "linear_probe", broken)
    tmp_path, _, overrides = sentiment_config
    rows, recommended, paths = run_ranking(
        load_config(None, overrides),
        [Candidate(tiny_model_dir), Candidate(tiny_model_dir, layer=1)],
        sample_size=60,
        estimators=["linear_probe", "knn"],
        recommend_by="knn",
        output_dir=tmp_path / "rank",
    )
    assert all(r.error is None and r.estimator_errors == {"linear_probe": "the probe cannot split these rows"} for r in rows)
    assert all(np.isnan(r.scores["linear_probe"]) and np.isfinite(r.scores["knn"]) for r in rows) and recommended
    report = json.loads(paths["rank.json"].read_text())
    assert report["candidates"][0]["linear_probe"] is None and "NaN" not in paths["rank.json"].read_text()
    assert "failed: the probe cannot split these rows" in markdown_table(rows, ["linear_probe", "knn"], recommended, "knn")


def test_a_class_of_one_row_does_not_stop_the_ranking(tmp_path, tiny_model_dir):
    """Planted fault: one row of a class among 53 of another. With seed 3 a plain 80 / 20 split held the lone row
    out, and the probe's 'only one class' error ended the ranking with no report."""
    rows = synthetic_sentiment(120, 1)
    train = write_csv(tmp_path / "train.csv", [r for r in rows if r[1] == "positive"] + [rows[1]])
    config = load_config(None, tiny_overrides(tiny_model_dir, tmp_path / "run", **{"data.train_file": train, "seed": 3}))
    ranked, recommended, _ = run_ranking(config, [Candidate(tiny_model_dir)], output_dir=tmp_path / "rank")
    assert ranked[0].error is None and not ranked[0].estimator_errors and recommended == tiny_model_dir
    assert all(np.isfinite(ranked[0].scores[e]) for e in ("logme", "hscore", "knn", "linear_probe"))


@pytest.mark.parametrize(
    "specs",
    ["@,{model}/", "@,./{base}", "{model},@layer=2", "@depth=2,@", "@pooling=mean,./{base}@layer=2+pooling=mean+depth=2"],
)
def test_one_candidate_written_two_ways_is_refused_before_encoding(sentiment_config, tiny_model_dir, specs, monkeypatch):
    """Planted fault: duplicates were compared as written, so a trailing slash, a relative path or the 2-layer
    model's layer=2 gave a second, identical row and a second encoding pass."""
    tmp_path, _, overrides = sentiment_config
    monkeypatch.chdir(Path(tiny_model_dir).parent)
    monkeypatch.setattr("nlp_transfer.rank.ranking.sample_split", lambda *a, **k: pytest.fail("encoded first"))
    written = specs.format(model=tiny_model_dir, base=Path(tiny_model_dir).name)
    candidates = parse_candidates(written, default_model=tiny_model_dir)
    with pytest.raises(UserError, match=r"written another way .* remove one"):
        run_ranking(load_config(None, overrides), candidates, output_dir=tmp_path / "rank")


def test_variants_that_differ_are_not_taken_for_duplicates(sentiment_config, tiny_model_dir):
    from nlp_transfer.rank.ranking import resolve_candidates

    candidates = parse_candidates("@,@layer=1,@depth=1,@pooling=mean,@init=random,@layer=mean", default_model=tiny_model_dir)
    assert resolve_candidates(candidates, token_level=False) == {}
    with pytest.raises(UserError, match="written another way"):  # NER reads words, not a pooled text: pooling is moot
        resolve_candidates(candidates, token_level=True)


def test_an_estimator_given_twice_is_refused(sentiment_config, tiny_model_dir):
    _, _, overrides = sentiment_config
    with pytest.raises(UserError, match="--estimators: 'logme' is given twice"):
        run_ranking(load_config(None, overrides), [Candidate(tiny_model_dir)], estimators=["logme", "knn", "logme"])


def test_the_printed_table_shows_every_estimator_when_the_first_candidate_failed(sentiment_config, capsys):
    """The table's columns came from the first row's scores: a failed first candidate left only one column."""
    tmp_path, _, overrides = sentiment_config
    notes = tmp_path / "first-notes"
    notes.mkdir(exist_ok=True)
    (notes / "readme.txt").write_text("not a model", encoding="utf-8")
    code = main(
        ["rank", str(config_file(tmp_path)), *overrides, "--models", f"{notes},@depth=1", "--output", str(tmp_path / "r")]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    header = next(line for line in out.splitlines() if line.startswith("|") and "logme" in line)
    assert "knn" in header and "hscore" in header, header


def test_rank_samples_the_files_rows_not_a_config_s_augmented_copies(tmp_path, tiny_model_dir):
    """Planted fault: rank sampled the training split after ``data.augment``; on randomly labelled rows each copy sat
    beside its original, and kNN scored 1.0 (the linear probe met copies of its test rows in training)."""
    rng = np.random.default_rng(0)
    rows = [(text, ["negative", "positive"][rng.integers(2)]) for text, _ in synthetic_sentiment(120, 1)]
    train = write_csv(tmp_path / "train.csv", rows)
    pseudo = tmp_path / "pseudo.jsonl"  # a model's labels are not the task's either: left out too
    pseudo.write_text("".join(f'{{"text": "extra {i}", "label": "positive"}}\n' for i in range(9)), encoding="utf-8")
    augmented = {"data.train_file": train, "data.augment": "[word_swap]", "data.augment_copies": 3}
    augmented["data.pseudo_labeled_file"] = pseudo
    config = load_config(None, tiny_overrides(tiny_model_dir, tmp_path / "run", **augmented))
    ranked, _, paths = run_ranking(config, [Candidate(tiny_model_dir)], estimators=["knn"], output_dir=tmp_path / "rank")
    assert json.loads(paths["rank.json"].read_text())["sample"] == 120 - 12  # the files' training rows (10 % held out)
    assert ranked[0].scores["knn"] < 0.75  # random labels: near chance (it was 1.0 on the copies)
