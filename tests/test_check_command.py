"""nlp-transfer check: calibration and selective prediction of a saved run, the stored temperature, release gates."""

import csv
import json
import random
import shutil

import numpy as np
import pytest
from safetensors.torch import load_file, save_file

from nlp_transfer.check import accuracy_at_coverage
from nlp_transfer.check.command import check_run
from nlp_transfer.config import load_config
from nlp_transfer.errors import UserError
from nlp_transfer.inference import load_run, predict, predict_texts
from nlp_transfer.pipeline import run_training
from tests.conftest import synthetic_sentiment, tiny_overrides, write_csv
from tests.test_cli import cli, cli_in_process


def noisy(rows, seed, rate=0.2):
    """The rows with ``rate`` of their labels flipped: no model can be sure, so confidence has something to match."""
    rng = random.Random(seed)
    flip = {"positive": "negative", "negative": "positive"}
    return [(text, flip[label] if rng.random() < rate else label) for text, label in rows]


@pytest.fixture(scope="module")
def noisy_run(tmp_path_factory, tiny_model_dir):
    base = tmp_path_factory.mktemp("check")
    files = {
        split: write_csv(base / f"{split}.csv", noisy(synthetic_sentiment(n, seed), seed))
        for split, n, seed in (("train", 400, 1), ("validation", 300, 2), ("test", 300, 3))
    }
    out = base / "run"
    values = {f"data.{split}_file": path for split, path in files.items()}
    run_training(
        load_config(None, tiny_overrides(tiny_model_dir, out, **values, **{"training.epochs": 3, "training.learning_rate": 5e-3}))
    )
    return out, files


def unchecked_copy(run_dir, target):
    """A copy of the shared run without what an earlier check wrote into it."""
    shutil.copytree(run_dir, target)
    shutil.rmtree(target / "check", ignore_errors=True)
    (target / "calibration.json").unlink(missing_ok=True)
    return target


def make_overconfident(run_dir, factor=6.0):
    """The planted fault: the classifier's weights and bias scaled up, so every score is pushed towards 0 or 1."""
    path = run_dir / "model.safetensors"
    weights = load_file(path)
    for name in ("classifier.weight", "classifier.bias"):
        weights[name] = weights[name] * factor
    save_file(weights, path, metadata={"format": "pt"})


def test_temperature_repairs_a_model_made_overconfident_on_purpose(noisy_run, tmp_path):
    run_dir = unchecked_copy(noisy_run[0], tmp_path / "overconfident")
    make_overconfident(run_dir)
    report = check_run(run_dir)
    c = report["calibration"]
    assert "test split" in report["scored_on"] and "validation split" in report["fitted_on"] and not report["same_rows"]
    assert c["temperature"] > 2.0  # the fit undoes most of the factor 6
    assert c["ece"] > 0.1 and c["ece_after_temperature"] < c["ece"] / 2, c
    assert c["brier_after_temperature"] < c["brier"]
    assert c["validation_ece"] > 0.1 and c["validation_ece_after_temperature"] < c["validation_ece"] / 2  # in-sample too
    assert 0 < c["ece_noise_floor"]["median"] <= c["ece_noise_floor"]["p95"] < c["ece"]  # the fault is beyond sampling
    for name in ("check.json", "report.md", "reliability.png", "accuracy_coverage.png"):
        assert (run_dir / "check" / name).stat().st_size > 0
    saved = json.loads((run_dir / "check" / "check.json").read_text())
    assert saved["calibration"]["ece_after_temperature"] == pytest.approx(c["ece_after_temperature"])
    assert "in-sample" in (run_dir / "check" / "report.md").read_text()
    assert "perfectly calibrated model with these scores" in (run_dir / "check" / "report.md").read_text()
    # --data naming the validation file is the fitting rows again: said so, not reported as held-out figures
    again = check_run(run_dir, data_path=str(noisy_run[1]["validation"]))
    assert again["same_rows"] and "optimistic" in (run_dir / "check" / "report.md").read_text()


def test_a_data_file_is_the_validation_rows_when_its_text_and_label_pairs_are(noisy_run, tmp_path):
    """Texts alone decided it: validation texts with every label flipped were scored with the run's labels (accuracy
    as on validation, the file's labels dropped), and the validation rows in another order were taken for new rows."""
    run_dir = unchecked_copy(noisy_run[0], tmp_path / "run")
    rows = list(csv.reader(noisy_run[1]["validation"].open(newline="", encoding="utf-8")))[1:]
    reversed_rows = write_csv(tmp_path / "reversed.csv", [(text, label) for text, label in rows[::-1]])
    flip = {"positive": "negative", "negative": "positive"}
    relabelled = write_csv(tmp_path / "relabelled.csv", [(text, flip[label]) for text, label in rows])
    again = check_run(run_dir, data_path=str(reversed_rows))
    assert again["same_rows"] and "optimistic" in (run_dir / "check" / "report.md").read_text()
    validation_accuracy = again["calibration"]["accuracy"]
    flipped = check_run(run_dir, data_path=str(relabelled))
    assert not flipped["same_rows"] and "relabelled.csv" in flipped["scored_on"]
    assert flipped["calibration"]["accuracy"] == pytest.approx(1 - validation_accuracy)  # the file's own labels


def test_stored_temperature_changes_scores_not_labels(noisy_run, tmp_path):
    run_dir = unchecked_copy(noisy_run[0], tmp_path / "run")
    texts = [line.rsplit(",", 1)[0] for line in noisy_run[1]["test"].read_text().splitlines()[1:40]]
    before = predict(run_dir, texts)
    report = check_run(run_dir)
    assert json.loads((run_dir / "calibration.json").read_text())["temperature"] == pytest.approx(
        report["calibration"]["temperature"]
    )
    _, task = load_run(run_dir)
    assert task.temperature == pytest.approx(report["calibration"]["temperature"]) and task.temperature != 1.0
    after = predict(run_dir, texts)
    assert [r["label"] for r in after] == [r["label"] for r in before]
    assert any(abs(a["score"] - b["score"]) > 1e-4 for a, b in zip(after, before, strict=True))
    # a checked run checked again fits the same temperature (it starts from the raw scores, not the stored ones),
    # and a damaged calibration.json is replaced by the check its message advises (the check stopped on it too)
    (run_dir / "calibration.json").write_text('{"temperature": "abc"}', encoding="utf-8")
    again = check_run(run_dir)
    assert again["calibration"]["temperature"] == pytest.approx(report["calibration"]["temperature"])
    assert load_run(run_dir)[1].temperature == pytest.approx(report["calibration"]["temperature"])


def test_isotonic_calibrator_maps_the_chosen_score_and_keeps_labels(noisy_run, tmp_path, capsys):
    import numpy as np

    run_dir = unchecked_copy(noisy_run[0], tmp_path / "run")
    texts = [line.rsplit(",", 1)[0] for line in noisy_run[1]["test"].read_text().splitlines()[1:40]]
    report = check_run(run_dir, calibrator="isotonic")
    c = report["calibration"]
    stored = json.loads((run_dir / "calibration.json").read_text())
    assert c["calibrator"] == stored["calibrator"] == "isotonic" and stored["top_label_map"] == c["top_label_map"]
    points = stored["top_label_map"]
    after = predict(run_dir, texts)
    for row in after:  # score: the temperature's probability of the label, then the map; scores: the distribution
        assert row["score"] == pytest.approx(np.interp(row["scores"][row["label"]], points["confidence"], points["calibrated"]))
        assert row["label"] == max(row["scores"], key=row["scores"].get)
    assert c["ece_after_calibration"] == pytest.approx(c["ece_after_isotonic"])
    auto = check_run(run_dir, calibrator="auto")["calibration"]
    lower = min(("temperature", "isotonic"), key=lambda m: auto[f"validation_ece_after_{m}_cross_fitted"])
    assert auto["calibrator"] == lower
    check_run(run_dir)  # back to the temperature: the map is gone and scores are probabilities again
    assert "top_label_map" not in json.loads((run_dir / "calibration.json").read_text())
    assert all(r["score"] == pytest.approx(r["scores"][r["label"]]) for r in predict(run_dir, texts))
    stored["top_label_map"] = {"confidence": [0.9, 0.5], "calibrated": [0.1, 0.2]}  # not ordered
    (run_dir / "calibration.json").write_text(json.dumps(stored))
    code, _, err = cli_in_process(capsys, "predict", run_dir, "a fine film")
    assert code == 2 and "calibration.json: top_label_map must hold" in err and "Traceback" not in err
    (run_dir / "calibration.json").write_text("[1.5]")  # valid JSON, not a calibration file
    code, _, err = cli_in_process(capsys, "predict", run_dir, "a fine film")
    assert code == 2 and "calibration.json: not a calibration file written by nlp-transfer check" in err
    with pytest.raises(UserError, match="--calibrator platt: unknown"):  # refused before the run is even loaded
        check_run(tmp_path / "no-such-run", calibrator="platt")


def test_selective_prediction_and_abstention(noisy_run):
    run_dir = noisy_run[0]
    report = check_run(run_dir, data_path=str(noisy_run[1]["test"]))
    assert "test.csv" in report["scored_on"]
    # the figure is that of the run's own most confident 80 % of the test rows (a temperature keeps a binary model's
    # order); no claim that those rows are more accurate: 20 % of these labels are flipped at random, which no
    # confidence can foresee
    model, task = load_run(run_dir)
    rows = list(csv.reader(noisy_run[1]["test"].open(newline="", encoding="utf-8")))[1:]
    predicted = predict_texts(model, task, [text for text, _ in rows])
    scores = np.array([p["score"] for p in predicted])
    correct = np.array([p["label"] == label for p, (_, label) in zip(predicted, rows, strict=True)])
    assert report["selective"]["accuracy_at_80"] == pytest.approx(accuracy_at_coverage(scores, correct, 0.8), abs=0.005)
    assert report["calibration"]["accuracy"] == pytest.approx(correct.mean(), abs=1e-9)
    result = cli("predict", run_dir, "superb lovely film", "the plot", "--min-score", "0.999")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.returncode == 0 and [r["abstain"] for r in rows] == [r["score"] < 0.999 for r in rows]
    assert any(r["abstain"] for r in rows)


def test_gates_exit_1_when_missed_and_bad_input_exits_2(noisy_run, tmp_path, capsys):
    run_dir = noisy_run[0]
    with pytest.raises(SystemExit) as missed:  # in process: the verb exits 1 itself
        cli_in_process(capsys, "check", run_dir, "--fail-under", "selective.accuracy_at_80=1.0", "calibration.ece=0.0")
    err = capsys.readouterr().err
    assert missed.value.code == 1, err
    assert "selective.accuracy_at_80" in err and "calibration.ece" in err and "Traceback" not in err
    code, out, err = cli_in_process(capsys, "check", run_dir, "--fail-under", "selective.accuracy_at_80=0.5")
    assert code == 0 and "ECE" in out, err
    code, _, err = cli_in_process(capsys, "check", run_dir, "--fail-under", "calibration.magic=1")
    assert code == 2 and "--fail-under calibration.magic=1: write KEY=VALUE with KEY one of" in err
    assert cli_in_process(capsys, "check", tmp_path)[0] == 2  # not a run
    model_only = tmp_path / "model-folder"  # a saved model, not a run: no config.yaml to find its validation split in
    shutil.copytree(run_dir, model_only, ignore=shutil.ignore_patterns("config.yaml", "check"))
    code, _, err = cli_in_process(capsys, "check", model_only)
    assert code == 2 and "not a run of nlp-transfer train (no config.yaml)" in err and "file not found" not in err, err


def test_a_ner_run_gets_recall_per_group_of_names_and_places(tiny_model_dir, tmp_path, capsys):
    (tmp_path / "train.conll").write_text("John B-PER\nruns O\n\nMary B-PER\nsings O\n\n" * 20, encoding="utf-8")
    out = tmp_path / "ner"
    overrides = tiny_overrides(tiny_model_dir, out, task="ner", **{"data.train_file": tmp_path / "train.conll"})
    run_training(load_config(None, overrides))
    code, stdout, err = cli_in_process(capsys, "check", out, "--fail-under", "behaviour.places_by_region.failure_rate=1")
    assert code == 0 and "behaviour failure rates: person_names_by_origin" in stdout, err
    report = json.loads((out / "check" / "check.json").read_text())
    assert "calibration" not in report and report["task"] == "ner"
    names = report["behaviour"]["person_names_by_origin"]
    assert set(names["groups"]) >= {"anglo", "african", "east_asian"} and 0 <= names["failure_rate"] <= 1
    assert all(0 <= g["recall"] <= 1 and g["count"] > 0 for g in names["groups"].values())
    code, _, err = cli_in_process(capsys, "check", out, "--fail-under", "calibration.ece=0.1")  # no calibration for NER
    assert code == 2 and "--fail-under calibration.ece=0.1: write KEY=VALUE" in err and "Traceback" not in err


def test_the_card_of_a_checked_run_states_its_calibration(noisy_run, tmp_path):
    from nlp_transfer.hub import build_model_card, collect_files

    run_dir = unchecked_copy(noisy_run[0], tmp_path / "carded")
    plain = str(build_model_card(run_dir, repo_id="me/model"))
    assert "## Bias, risks and limitations" in plain and "expected calibration error" not in plain
    report = check_run(run_dir)
    card = str(build_model_card(run_dir, repo_id="me/model"))
    c = report["calibration"]
    assert (
        f"expected calibration error {c['ece']:.4f}, {c['ece_after_temperature']:.4f} after temperature {c['temperature']:.3f}"
        in card
    )
    assert f"accuracy {report['selective']['accuracy_at_80']:.4f} on the 80 % most confident" in card
    assert "calibration.json" in collect_files(run_dir, "merged") and "top-label isotonic map" not in card
    mapped = check_run(run_dir, calibrator="isotonic")["calibration"]
    card = str(build_model_card(run_dir, repo_id="me/model"))
    assert "top-label isotonic map stored in `calibration.json`" in card
    assert f"expected calibration error {mapped['ece_after_calibration']:.4f}. It changes no label." in card


def test_a_multi_label_run_is_checked_per_decision_and_its_threshold_kept(tiny_model_dir, tmp_path):
    """Multi-label: calibration over every (text, label) decision; the temperature is reported, not stored."""
    from tests.conftest import REPO

    data = REPO / "data" / "support_tickets"
    values = {
        "task": "multilabel",
        "data.train_file": data / "train.csv",
        "data.validation_file": data / "validation.csv",
        "data.test_file": data / "test.csv",
        "data.label_column": "labels",
        "training.epochs": 2,
        "training.learning_rate": 5e-3,
    }
    out = tmp_path / "multi"
    run_training(load_config(None, tiny_overrides(tiny_model_dir, out, **values)))
    report = check_run(out)
    c = report["calibration"]
    assert c["applied"] is False and 0.0 <= c["ece"] <= 1.0 and c["temperature"] > 0
    assert not (out / "calibration.json").exists()
    assert "reported only" in (out / "check" / "report.md").read_text()
    assert 0.0 <= report["selective"]["accuracy_at_80"] <= 1.0
    # a calibrator it would not apply, and gates on figures it does not measure: refused up front (they were
    # accepted, the check ran, then the gates missed as "not measured")
    with pytest.raises(UserError, match="--calibrator isotonic: a multi-label run keeps its decision threshold"):
        check_run(out, calibrator="isotonic")
    with pytest.raises(UserError, match=r"--fail-under calibration\.brier=0\.5: write KEY=VALUE"):
        check_run(out, fail_under=["calibration.brier=0.5"])
    assert check_run(out, fail_under=["calibration.ece=1.0"])["gates"]["missed"] == []


def test_drift_separates_new_inputs_of_another_kind_from_more_of_the_same(noisy_run, tmp_path, capsys):
    """--drift: texts like the training ones pass a drift gate; questions about geography (the planted shift) miss it."""
    run_dir = unchecked_copy(noisy_run[0], tmp_path / "run")
    same = tmp_path / "same.txt"
    same.write_text("\n".join(text for text, _ in synthetic_sentiment(200, 7)) + "\n", encoding="utf-8")
    rng = random.Random(0)
    places = ["Peru", "Ghana", "Norway", "Laos", "Chile", "Kenya", "Oman", "Fiji", "Nepal", "Malta"]
    asks = ["what is the capital of", "how many people live in", "which river crosses", "when was the flag of"]
    shifted = tmp_path / "shifted.txt"
    shifted.write_text("\n".join(f"{rng.choice(asks)} {rng.choice(places)} ?" for _ in range(200)) + "\n", encoding="utf-8")
    gate = "drift.domain_classifier_accuracy=0.75"
    code, out, err = cli_in_process(capsys, "check", run_dir, "--drift", same, "--fail-under", gate)
    assert code == 0, err
    report = json.loads((run_dir / "check" / "check.json").read_text())
    assert report["drift"]["domain_classifier_accuracy"] < 0.75 and "drift of" in out
    assert (run_dir / "check" / "drift" / "shift.png").is_file() and "## Drift" in (run_dir / "check" / "report.md").read_text()
    with pytest.raises(SystemExit) as missed:
        cli_in_process(capsys, "check", run_dir, "--drift", shifted, "--fail-under", gate)
    assert missed.value.code == 1
    report = json.loads((run_dir / "check" / "check.json").read_text())
    assert report["drift"]["domain_classifier_accuracy"] > 0.9 and report["drift"]["label_total_variation"] is not None


def test_multi_label_decisions_are_taken_at_the_runs_threshold():
    """Multi-label calibration accuracy and selective figures decide at training.threshold, as predict does (they
    used 0.5 whatever the run's threshold)."""
    import numpy as np

    from nlp_transfer.check.run_calibration import Scored, multi_label_figures

    logits = np.full((40, 3), np.log(0.45 / 0.55))  # every score 0.45: a label at 0.4, none at 0.5
    rows = Scored(logits, np.ones((40, 3)), "planted")
    at_run_threshold, selective, _ = multi_label_figures(rows, rows, bins=10, threshold=0.4)
    assert at_run_threshold["accuracy"] == 1.0 and selective["accuracy_at_80"] == 1.0
    assert multi_label_figures(rows, rows, bins=10)[0]["accuracy"] == 0.0  # the 0.5 default misses every label
