"""nlp-transfer export and predict --backend onnx: the exported model agrees with the run, and a broken one is refused.

Three tiny runs are trained and exported once per module (a single-label run with int8, a multi-label run whose head
reads mean-pooled features, and a NER run); the refusal tests plant a fault in a copy of the good export.
"""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file, save_file

from nlp_transfer.cli import main
from nlp_transfer.config import load_config
from nlp_transfer.errors import UserError
from nlp_transfer.export.command import ExportRefused, export_run
from nlp_transfer.export.onnx_backend import OnnxModel, export_info, open_session
from nlp_transfer.export.onnx_export import fused_operators, write_onnx
from nlp_transfer.inference import batched_logits, load_backend, load_run, predict_texts
from nlp_transfer.pipeline import run_training
from nlp_transfer.transfer.feature_extraction import MeanPooledModel
from tests.conftest import synthetic_sentiment, tiny_overrides, write_csv

TEXTS = ["a superb and lovely film", "dreadful boring plot", "the staff was very poor", "great", "Alice met Bob in Oslo"]


def train(base: Path, tiny_model_dir: str, **values: object) -> Path:
    """A tiny run trained in-process with ``values`` as overrides; returns its output_dir."""
    out = base / "run"
    run_training(load_config(None, tiny_overrides(tiny_model_dir, out, **values)))
    return out


@pytest.fixture(scope="module")
def sentiment(tmp_path_factory, tiny_model_dir):
    """A single-label run that learned the synthetic data, exported with --int8."""
    base = tmp_path_factory.mktemp("export-sentiment")
    train_file = write_csv(base / "train.csv", synthetic_sentiment(200, 1))
    val_file = write_csv(base / "val.csv", synthetic_sentiment(60, 2))
    values = {"data.train_file": train_file, "data.validation_file": val_file, "training.epochs": 2}
    run = train(base, tiny_model_dir, **values, **{"training.learning_rate": 3e-3})
    return run, export_run(run, int8=True)


@pytest.fixture(scope="module")
def mean_multilabel(tmp_path_factory, tiny_model_dir):
    """A multi-label feature-extraction run whose head reads the mean of the token states, exported in float32."""
    base = tmp_path_factory.mktemp("export-multilabel")
    rows = [(text, label if i % 3 else f"{label}|extra") for i, (text, label) in enumerate(synthetic_sentiment(120, 1))]
    values = {
        "task": "multilabel",
        "strategy": "frozen",
        "transfer.pooling": "mean",
        "data.train_file": write_csv(base / "train.csv", rows),
        "data.validation_file": write_csv(base / "val.csv", rows[:40]),
    }
    run = train(base, tiny_model_dir, **values)
    return run, export_run(run)


@pytest.fixture(scope="module")
def tagger(tmp_path_factory, tiny_model_dir):
    """A NER run, exported in float32."""
    base = tmp_path_factory.mktemp("export-ner")
    sentence = "Alice B-PER\nmet O\nBob B-PER\nin O\nOslo B-LOC\n"
    (base / "tagged.conll").write_text("\n".join([sentence] * 40), encoding="utf-8")
    values = {"task": "ner", "data.train_file": base / "tagged.conll", "data.validation_file": base / "tagged.conll"}
    run = train(base, tiny_model_dir, **values)
    return run, export_run(run)


def logits_of_both(run: Path, onnx_file: Path, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The torch model's and the ONNX file's logits for ``texts`` (tokenized by the run's task)."""
    model, task = load_run(run, device="cpu")
    rows = dict(task.tokenizer(texts, truncation=True, max_length=task.max_length))
    exported = OnnxModel(open_session(onnx_file))
    return batched_logits(model, task, rows), batched_logits(exported, task, rows)


# --------------------------------------------------------------------------- agreement


def test_export_writes_checked_float_and_int8_models(sentiment):
    run, report = sentiment
    folder = run / "onnx"
    assert sorted(p.name for p in folder.iterdir()) == ["export.json", "model.int8.onnx", "model.onnx"]
    assert not [p for p in run.iterdir() if p.name.startswith(".onnx")]  # no staging folder left behind
    saved = json.loads((folder / "export.json").read_text())
    assert saved["model_file"] == "model.int8.onnx" and saved["int8"] is True and saved["max_drop"] == 0.5
    assert saved == {k: v for k, v in report.items() if k != "output"}
    float32, int8 = saved["checks"]["model.onnx"], saved["checks"]["model.int8.onnx"]
    assert float32["label_agreement"] == 1.0 and float32["max_logit_difference"] < 1e-4
    assert float32["before"] == float32["after"] > 0.9  # the run learned the data, and the export scores the same
    assert int8["label_agreement"] >= 0.95 and int8["drop_points"] <= 0.5
    assert (folder / "model.int8.onnx").stat().st_size < (folder / "model.onnx").stat().st_size / 2


def test_a_bert_encoder_is_exported_with_fused_attention_and_matches_torch(sentiment, mean_multilabel, tagger):
    """The fused route: one Attention node per layer (and the other fusions) for a mean-pooling wrapper and a tagger;
    a plain sequence classifier's last layer computes its first position alone (training/first_position.py), so its one
    query is left unfused. Float32 logits equal torch's on texts the check did not see."""
    for (run, report), unfused in ((sentiment, 1), (mean_multilabel, 0), (tagger, 0)):
        layers = load_run(run, device="cpu")[0].config.num_hidden_layers
        fused = report["fused_operators"]
        assert fused.get("Attention") == layers - unfused, (run, fused)
        assert fused.get("SkipLayerNormalization", 0) >= layers, (run, fused)
        reference, exported = logits_of_both(run, run / "onnx" / "model.onnx", [*TEXTS, "x " * 40])
        np.testing.assert_allclose(exported, reference, atol=1e-4)


def test_first_position_false_exports_every_position_of_the_last_layer(sentiment, tmp_path):
    """write_onnx(first_position=False) fuses the last layer's attention too (every query), with the same logits."""
    model, task = load_run(sentiment[0], device="cpu")
    path = tmp_path / "every.onnx"
    write_onnx(model, task, path, first_position=False)
    assert fused_operators(path).get("Attention") == model.config.num_hidden_layers
    reference, exported = logits_of_both(sentiment[0], path, TEXTS)
    np.testing.assert_allclose(exported, reference, atol=1e-4)


def test_the_dynamo_route_is_taken_when_fusion_fails(sentiment, tmp_path, monkeypatch):
    """A failure of the fused route falls back to the dynamo exporter: nothing fused, the same labels."""

    def broken(*args, **kwargs):
        raise RuntimeError("planted: the optimizer cannot read this graph")

    monkeypatch.setattr("onnxruntime.transformers.optimizer.optimize_model", broken)
    report = export_run(sentiment[0], output=tmp_path / "plain")
    assert report["fused_operators"] == {} and report["checks"]["model.onnx"]["label_agreement"] == 1.0
    assert sorted(p.name for p in (tmp_path / "plain").iterdir()) == ["export.json", "model.onnx"]  # no raw graph left
    reference, exported = logits_of_both(sentiment[0], tmp_path / "plain" / "model.onnx", TEXTS)
    np.testing.assert_allclose(exported, reference, atol=1e-4)


def test_exported_logits_match_torch_on_new_texts(sentiment):
    run, _ = sentiment
    reference, float32 = logits_of_both(run, run / "onnx" / "model.onnx", TEXTS)
    np.testing.assert_allclose(float32, reference, atol=1e-4)
    _, int8 = logits_of_both(run, run / "onnx" / "model.int8.onnx", TEXTS)
    np.testing.assert_allclose(int8, reference, atol=0.05)
    assert (int8.argmax(-1) == reference.argmax(-1)).all()


def test_mean_pooled_multilabel_run_exports_with_its_pooling(mean_multilabel):
    run, report = mean_multilabel
    model, task = load_run(run, device="cpu")
    assert isinstance(model, MeanPooledModel) and task.multi_label
    assert report["task"] == "multilabel" and report["checks"]["model.onnx"]["label_agreement"] == 1.0
    reference, exported = logits_of_both(run, run / "onnx" / "model.onnx", TEXTS)
    np.testing.assert_allclose(exported, reference, atol=1e-4)
    onnx_model, onnx_task = load_backend(run, "onnx")
    for ours, theirs in zip(predict_texts(onnx_model, onnx_task, TEXTS), predict_texts(model, task, TEXTS), strict=True):
        assert ours["label"] == theirs["label"] and ours["score"] == pytest.approx(theirs["score"], abs=1e-5)


def test_ner_run_exports_and_gives_the_same_entities(tagger):
    run, report = tagger
    assert report["task"] == "ner" and report["checks"]["model.onnx"]["label_agreement"] == 1.0
    reference, exported = logits_of_both(run, run / "onnx" / "model.onnx", TEXTS)
    assert reference.ndim == 3
    np.testing.assert_allclose(exported, reference, atol=1e-4)
    torch_rows = predict_texts(*load_run(run, device="cpu"), TEXTS)
    onnx_rows = predict_texts(*load_backend(run, "onnx"), TEXTS)
    for ours, theirs in zip(onnx_rows, torch_rows, strict=True):
        assert [(e["text"], e["type"]) for e in ours["entities"]] == [(e["text"], e["type"]) for e in theirs["entities"]]


LONG_TEXTS = [" ".join(["a superb and lovely film"] * k) for k in (1, 3, 6, 9)] + TEXTS


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_the_cpu_token_budget_changes_batches_not_predictions(sentiment, tagger, backend):
    """A budget of 16 tokens cuts every batch of these texts into single rows or pairs; logits stay the same."""
    for run in (sentiment[0], tagger[0]):
        model, task = load_run(run, device="cpu") if backend == "torch" else load_backend(run, "onnx")
        rows = dict(task.tokenizer(LONG_TEXTS, truncation=True, max_length=task.max_length))
        whole = batched_logits(model, task, rows, batch_size=32, max_batch_tokens=None)
        budgeted = batched_logits(model, task, rows, batch_size=32, max_batch_tokens=16)
        assert whole.shape == budgeted.shape
        int8 = backend == "onnx" and run == sentiment[0]  # each int8 batch quantizes its activations on its own scale
        for i, ids in enumerate(rows["input_ids"]):  # token logits: only a row's own positions (the rest is padding)
            own = slice(None) if whole.ndim == 2 else slice(len(ids))
            np.testing.assert_allclose(budgeted[i, own], whole[i, own], atol=1e-2 if int8 else 1e-4)
        budgeted_rows, whole_rows = (predict_texts(model, task, LONG_TEXTS, max_batch_tokens=b) for b in (16, None))
        assert [labels_of(p) for p in budgeted_rows] == [labels_of(p) for p in whole_rows]


def labels_of(prediction: dict) -> object:
    """A prediction's label, or its entities' texts and types (NER)."""
    return prediction["label"] if "label" in prediction else [(e["text"], e["type"]) for e in prediction["entities"]]


def test_predict_backend_onnx_writes_the_same_lines_with_the_temperature(sentiment, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(sentiment[0], run)

    def lines(*flags: str) -> list[dict]:
        assert main(["predict", str(run), *TEXTS, *flags]) == 0
        return [json.loads(line) for line in capsys.readouterr().out.splitlines()]

    plain = lines("--backend", "onnx")
    (run / "calibration.json").write_text(json.dumps({"temperature": 2.0}))
    torch_rows, onnx_rows = lines(), lines("--backend", "onnx")
    for ours, theirs, untempered in zip(onnx_rows, torch_rows, plain, strict=True):
        assert set(ours) == set(theirs) == {"text", "label", "score", "scores"}
        assert ours["text"] == theirs["text"] and ours["label"] == theirs["label"]
        assert ours["score"] == pytest.approx(theirs["score"], abs=0.01)  # the int8 model is served
        assert abs(ours["score"] - 0.5) < abs(untempered["score"] - 0.5)  # the temperature softens the scores


# --------------------------------------------------------------------------- the check refuses a broken export


def plant_flipped_classifier(good: Path):
    """A stand-in for the exporter that writes the good export with its classifier negated: every label flips."""
    import onnx
    from onnx import numpy_helper

    def write(model, task, path):
        graph = onnx.load(str(good))
        for tensor in graph.graph.initializer:
            if tensor.name.endswith(("classifier.weight", "classifier.bias")):
                tensor.CopyFrom(numpy_helper.from_array(-numpy_helper.to_array(tensor), tensor.name))
        onnx.save(graph, str(path))
        return ["input_ids", "attention_mask", "token_type_ids"]

    return write


def test_a_broken_export_is_refused_and_nothing_is_written(sentiment, tmp_path, monkeypatch, capsys):
    run = sentiment[0]
    monkeypatch.setattr("nlp_transfer.export.onnx_export.write_onnx", plant_flipped_classifier(run / "onnx" / "model.onnx"))
    earlier = tmp_path / "served"
    earlier.mkdir()
    (earlier / "export.json").write_text("{}")  # an earlier export: a refused one must not replace it
    with pytest.raises(ExportRefused) as refused:
        export_run(run, output=earlier)
    check = refused.value.report["checks"]["model.onnx"]
    assert check["drop_points"] > 50 and check["label_agreement"] < 0.1
    with pytest.raises(SystemExit) as exited:
        main(["export", str(run), "--output", str(tmp_path / "new"), "--max-drop", "1"])
    assert exited.value.code == 1
    assert "export refused" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["served"]  # no new folder, no staging folder
    assert [p.name for p in earlier.iterdir()] == ["export.json"] and (earlier / "export.json").read_text() == "{}"


def plant_shifted_bias(good: Path, shift: float):
    """A stand-in for the exporter that writes the good export with ``shift`` added to the classifier's first bias."""
    import onnx
    from onnx import numpy_helper

    def write(model, task, path):
        graph = onnx.load(str(good))
        for tensor in graph.graph.initializer:
            if tensor.name.endswith("classifier.bias"):
                values = numpy_helper.to_array(tensor).copy()
                values[0] += shift
                tensor.CopyFrom(numpy_helper.from_array(values, tensor.name))
        onnx.save(graph, str(path))
        return [i.name for i in graph.graph.input]

    return write


def test_a_broken_graph_is_refused_even_where_the_metric_cannot_show_it(sentiment, mean_multilabel, tmp_path, monkeypatch):
    """Planted faults: only the metric's drop was checked, so a graph flipping every decision passed --max-drop 100
    (as it passes on a model near chance or a small split), a shifted bias that left a multi-label metric as it was
    passed too, and max_drop=NaN from Python turned the check off."""
    sentiment_run, multilabel_run = sentiment[0], mean_multilabel[0]
    monkeypatch.setattr(
        "nlp_transfer.export.onnx_export.write_onnx", plant_flipped_classifier(sentiment_run / "onnx" / "model.onnx")
    )
    with pytest.raises(ExportRefused, match=r"model\.onnx's logits differ from the PyTorch model's by up to"):
        export_run(sentiment_run, output=tmp_path / "flipped", max_drop=100)
    shifted = plant_shifted_bias(multilabel_run / "onnx" / "model.onnx", 0.5)
    monkeypatch.setattr("nlp_transfer.export.onnx_export.write_onnx", shifted)
    with pytest.raises(ExportRefused, match=r"differ from the PyTorch model's by up to 0\.5"):
        export_run(multilabel_run, output=tmp_path / "shifted", max_drop=100)
    with pytest.raises(UserError, match=r"--max-drop must be a number of points, 0 or more, got nan"):
        export_run(sentiment_run, output=tmp_path / "nan", max_drop=float("nan"))
    assert not any(tmp_path.iterdir())


def test_an_int8_graph_that_disagrees_on_many_decisions_is_refused(sentiment, tmp_path, monkeypatch):
    """Planted fault: the int8 file's agreement was never checked, so a quantized graph flipping every decision
    passed wherever the metric could not drop (here --max-drop 100)."""
    run = sentiment[0]
    flipped = plant_flipped_classifier(run / "onnx" / "model.onnx")
    monkeypatch.setattr("nlp_transfer.export.onnx_export.quantize_int8", lambda source, target: flipped(None, None, target))
    with pytest.raises(ExportRefused, match=r"model\.int8\.onnx agrees with the PyTorch model on \d+\.\d % of the decisions"):
        export_run(run, output=tmp_path / "int8", int8=True, max_drop=100)
    assert not any(tmp_path.iterdir())


def test_sigterm_mid_export_cleans_up_and_a_killed_exports_staging_is_removed_next_time(sentiment, tmp_path, monkeypatch, capsys):
    """SIGTERM (timeout, docker stop) ends an export as Ctrl-C does; what SIGKILL leaves, the next export removes."""
    import os
    import signal

    from nlp_transfer.cli.guard import INTERRUPTED

    run = sentiment[0]
    stale = tmp_path / ".served.partial-killed"
    stale.mkdir()
    (stale / "model.onnx").write_bytes(b"half an export")

    def terminated(run_dir, staging, **kwargs):
        (staging / "model.onnx").write_bytes(b"half written")
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM did not stop the export")

    monkeypatch.setattr("nlp_transfer.export.command.build_export", terminated)
    assert main(["export", str(run), "--output", str(tmp_path / "served")]) == 130
    assert capsys.readouterr().err.strip() == INTERRUPTED
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # its own staging and the stale one both gone
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is the verb's only


# --------------------------------------------------------------------------- bad input: one line, exit 2


def one_error(capsys, argv: list[str], message: str) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.err.startswith("error: ") and captured.err.count("\n") == 1
    assert captured.out == ""


def test_exporting_a_folder_that_is_not_a_run(tmp_path, capsys):
    (tmp_path / "notes").mkdir()
    one_error(capsys, ["export", str(tmp_path / "notes")], "not a saved model (no config.json)")
    one_error(capsys, ["export", str(tmp_path / "missing")], "no such run directory")
    assert [p.name for p in tmp_path.iterdir()] == ["notes"] and not any((tmp_path / "notes").iterdir())


def test_a_run_with_pickled_weights_exports_only_with_allow_pickle(sentiment, tmp_path, capsys):
    """export refused a pytorch_model.bin run with "pass --allow-pickle", a flag it did not have (nor
    --trust-remote-code, which a model with its own code needs): it takes predict's loading flags now."""
    import torch

    from nlp_transfer.cli.command import build_parser

    run = tmp_path / "pickled"
    shutil.copytree(sentiment[0], run, ignore=shutil.ignore_patterns("onnx", "checkpoints"))
    torch.save(load_file(run / "model.safetensors"), run / "pytorch_model.bin")
    (run / "model.safetensors").unlink()
    out = tmp_path / "out"
    one_error(capsys, ["export", str(run), "--output", str(out)], "--allow-pickle")
    assert not out.exists()
    assert main(["export", str(run), "--output", str(out), "--allow-pickle"]) == 0, capsys.readouterr().err
    assert export_info(out)["labels"] == export_info(sentiment[0] / "onnx")["labels"]
    args = build_parser().parse_args(["export", str(run), "--trust-remote-code", "--allow-pickle"])
    assert (args.trust_remote_code, args.allow_pickle, args.batch_size) == (True, True, 64)


def test_missing_onnxruntime_names_the_extra(sentiment, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    hint = 'pip install "nlp-transfer[export]"'
    one_error(capsys, ["export", str(sentiment[0]), "--output", str(tmp_path / "out")], hint)
    one_error(capsys, ["predict", str(sentiment[0]), "hello", "--backend", "onnx"], hint)
    assert not (tmp_path / "out").exists()


def test_an_architecture_neither_exporter_handles_is_one_error_and_nothing_is_written(sentiment, tmp_path, monkeypatch, capsys):
    def fails(message):
        def planted(*args, **kwargs):
            raise RuntimeError(message)

        return planted

    monkeypatch.setattr("onnxruntime.transformers.optimizer.optimize_model", fails("planted: no fused graph"))
    monkeypatch.setattr("torch.onnx.export", fails("planted: unsupported operator aten::mystery"))
    out = tmp_path / "out"
    one_error(capsys, ["export", str(sentiment[0]), "--output", str(out)], "cannot export this bert model to ONNX")
    assert not out.exists()


def test_corrupt_or_missing_export_given_to_predict(sentiment, tmp_path, capsys):
    run = sentiment[0]
    corrupt = tmp_path / "corrupt"
    shutil.copytree(run / "onnx", corrupt)
    (corrupt / "model.int8.onnx").write_bytes(b"\x08\x07not an onnx graph")
    one_error(capsys, ["predict", str(run), "hello", "--backend", "onnx", "--export-dir", str(corrupt)], "not a valid ONNX model")
    one_error(
        capsys, ["predict", str(run), "hello", "--backend", "onnx", "--export-dir", str(tmp_path / "none")], "no ONNX export"
    )


def test_an_export_of_other_weights_is_refused_by_predict_push_and_export_output(sentiment, mean_multilabel, tmp_path, capsys):
    """An export made from other weights (another run's, or before the run was trained again) answers for a model the
    run no longer is: predict --backend onnx and push --onnx refuse it, and export will not write into another run."""
    from nlp_transfer.export.hub_files import onnx_push_files

    run, other = sentiment[0], mean_multilabel[0]
    argv = ["predict", str(run), "hello", "--backend", "onnx", "--export-dir", str(other / "onnx")]
    one_error(capsys, argv, "an export of other weights than")  # the multi-label run's graph under the sentiment run
    retrained = tmp_path / "retrained"
    shutil.copytree(run, retrained)
    weights = load_file(retrained / "model.safetensors")
    weights["classifier.bias"] = weights["classifier.bias"] + 1.0  # the run trained again: its export is stale
    save_file(weights, retrained / "model.safetensors", metadata={"format": "pt"})
    one_error(capsys, ["predict", str(retrained), "hello", "--backend", "onnx"], "an export of other weights than")
    with pytest.raises(UserError, match="an export of other weights than"):
        onnx_push_files(retrained)
    one_error(capsys, ["export", str(run), "--output", str(other / "onnx")], "is inside another run")
    assert export_info(other / "onnx")["labels"] != export_info(run / "onnx")["labels"]  # the other export untouched


# --------------------------------------------------------------------------- push --onnx


def fake_hub(commits: list, remote: list[str] | None = None) -> type:
    """An ``HfApi`` stand-in: a new repository, or one holding the files ``remote``; each commit's operations go to
    ``commits``."""

    class FakeApi:
        def __init__(self, token=None):
            pass

        def whoami(self):
            return {"name": "someone"}

        def repo_exists(self, repo_id):
            return remote is not None

        def list_repo_files(self, repo_id):
            return list(remote or [])

        def create_repo(self, repo_id, private=False, exist_ok=True):
            return f"https://hub.example/{repo_id}"

        def create_commit(self, repo_id, operations, commit_message):
            commits.append(operations)

    return FakeApi


def test_push_onnx_uploads_the_export_and_the_card_runs_with_onnxruntime_alone(sentiment, monkeypatch, capsys):
    import huggingface_hub

    from nlp_transfer import hub

    run = sentiment[0]
    commits = []
    monkeypatch.setattr(huggingface_hub, "HfApi", fake_hub(commits))
    monkeypatch.setattr(hub.push, "_check_online", lambda: None)
    hub.push_run(run, repo_id="someone/sentiment", token="hf_" + "x" * 30, onnx=True)
    (files,) = ({op.path_in_repo: op.path_or_fileobj for op in operations} for operations in commits)
    assert {"onnx/model.onnx", "onnx/model.int8.onnx", "onnx/export.json", "model.safetensors"} <= set(files)
    card = files["README.md"].decode()
    assert "## ONNX" in card and "onnxruntime" in card
    snippet = card.split("## ONNX", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    assert "torch" not in snippet and "transformers" not in snippet
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda repo_id, name: str(run / name))
    exec(snippet, {})  # the card's code, with the repository's files read from the run directory
    printed = capsys.readouterr().out.strip()
    expected = predict_texts(*load_backend(run, "onnx"), ["The staff were lovely."])[0]["label"]
    assert printed == repr([expected])


def test_a_later_push_without_onnx_deletes_the_earlier_exports_files(sentiment, monkeypatch):
    """A repository that holds an earlier push's ONNX export loses it when the next push carries none (or another):
    a graph of the earlier weights would answer for the new model."""
    import huggingface_hub

    from nlp_transfer import hub

    run = sentiment[0]
    remote = ["README.md", "config.json", "model.safetensors", "notes.md", "onnx/export.json", "onnx/model.int8.onnx"]
    commits = []  # a repository an earlier push --onnx wrote, and a file its owner added
    monkeypatch.setattr(huggingface_hub, "HfApi", fake_hub(commits, remote))
    monkeypatch.setattr(hub.push, "_check_online", lambda: None)
    hub.push_run(run, repo_id="someone/sentiment", token="hf_" + "x" * 30, license="mit")
    deleted = {op.path_in_repo for op in commits[-1] if type(op).__name__ == "CommitOperationDelete"}
    assert deleted == {"onnx/export.json", "onnx/model.int8.onnx"}  # the owner's notes.md stays
    hub.push_run(run, repo_id="someone/sentiment", token="hf_" + "x" * 30, license="mit", onnx=True)
    deleted = {op.path_in_repo for op in commits[-1] if type(op).__name__ == "CommitOperationDelete"}
    assert deleted == set()  # the same files uploaded again: nothing to delete


def test_the_onnx_card_section_of_a_windows_run_says_its_snippet_truncates(sentiment, tmp_path):
    """The snippet truncates at max_length; a run served over windows says so beside it (8 of 70 long texts differed)."""
    from nlp_transfer.export.hub_files import onnx_card_section
    from nlp_transfer.tasks.windows import CONFIG_KEY

    run = tmp_path / "run"
    shutil.copytree(sentiment[0], run, ignore=shutil.ignore_patterns("checkpoints", "logs"))
    assert "truncates each text" not in onnx_card_section(run, "a/b")
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, CONFIG_KEY: {"stride": 32, "pool": "mean"}}))
    assert "truncates each text at" in onnx_card_section(run, "a/b") and "training.long_text=windows" in onnx_card_section(
        run, "a/b"
    )
