"""The bad-input corpus (tests/bad_inputs/cases.yaml): one clear message, exit code 2, no traceback, nothing written."""

from pathlib import Path

import pytest
import yaml

from nlp_transfer.cli import main
from tests.conftest import REPO, synthetic_sentiment, tiny_overrides, write_csv

CORPUS = Path(__file__).parent / "bad_inputs"
CASES = yaml.safe_load((CORPUS / "cases.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_model_dir):
    """A finished one-epoch run of the tiny model, for the predict and evaluate cases."""
    base = tmp_path_factory.mktemp("bad-inputs")
    train = write_csv(base / "train.csv", synthetic_sentiment(64, 1))
    out = base / "run"
    code = main(
        [
            "train",
            "recipes/configs/sentiment/minilm_full.yaml",
            *tiny_overrides(
                tiny_model_dir, out, **{"data.train_file": train, "data.validation_file": train, "data.test_file": "null"}
            ),
        ]
    )
    assert code == 0
    return out


def test_the_corpus_is_large_and_covers_every_kind():
    assert len(CASES) >= 30
    prefixes = {name.split("_")[0] for name in CASES}
    assert {"csv", "tsv", "json", "jsonl", "conll", "config", "cli"} <= prefixes


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_case(name, tmp_path, capsys, monkeypatch, tiny_run):
    monkeypatch.chdir(REPO)
    case = CASES[name]
    out = tmp_path / "out"
    args = [str(a).format(dir=CORPUS.relative_to(REPO), out=out, run=tiny_run) for a in case["args"]]
    if args[0] == "train":
        args.append(f"output_dir={out}")
    code = main(args)
    captured = capsys.readouterr()
    assert code == 2, captured.err
    assert case["expect"] in captured.err, captured.err
    message = captured.err.strip()
    assert message.startswith("error: ") and "Traceback" not in captured.err
    assert message.count("\n") == 0, "one message, one line"
    assert not out.exists(), "nothing may be written for bad input"
