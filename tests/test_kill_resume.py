"""A run killed mid-epoch (SIGKILL, or cut back to an earlier checkpoint) resumes to exactly the uninterrupted result.

The data are real SST-2 sentences (1 to 50+ words), so batches differ in width and the tiny random
model does not saturate: a resumed run that drifts anywhere (data order, dropout RNG, optimizer)
shows in the final weights. The final checkpoint's weights are compared as well as the best model,
because a best model chosen before the interruption would hide any drift after it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import datasets
import pytest
import torch

from nlp_transfer.config import TrainingConfig
from nlp_transfer.training.accelerator import make_accelerator
from nlp_transfer.training.batches import LengthSortedBatches, make_dataloader
from tests.conftest import REPO, shared_dataset, tiny_overrides

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
STEPS_PER_EPOCH = 20  # 320 rows, batch 16
LAST_STEP = 2 * STEPS_PER_EPOCH


def overrides(model_dir: str, output_dir: Path) -> list[str]:
    """The first 320 SST-2 sentences, 2 epochs, a checkpoint every 7 steps (mid-epoch) and at each epoch end, all kept."""
    return tiny_overrides(
        model_dir,
        output_dir,
        **{
            "data.train_file": shared_dataset("sst2", "train.tsv"),
            "data.validation_file": shared_dataset("sst2", "dev.tsv"),
            "data.max_train_samples": 320,
            "data.max_eval_samples": 100,
            "training.epochs": 2,
            "training.learning_rate": 1e-3,
            "training.eval_strategy": "epoch",
            "training.save_steps": 7,
            "training.save_total_limit": 20,
            "training.keep_checkpoints": "true",
        },
    )


def train_command(model_dir: str, output_dir: Path, *flags: str) -> list[str]:
    """The CLI command that trains (or with --resume, continues) the run in ``output_dir``."""
    config = "recipes/configs/sentiment/sst2_full.yaml"
    return [sys.executable, "-m", "nlp_transfer.cli", "train", config, *overrides(model_dir, output_dir), *flags]


def train(model_dir: str, output_dir: Path, *flags: str) -> subprocess.CompletedProcess:
    """Run the CLI to completion; fails the test with its stderr when it fails."""
    done = subprocess.run(
        train_command(model_dir, output_dir, *flags), cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def step_dir(output_dir: Path, step: int) -> Path:
    """The checkpoint folder of ``step``."""
    return output_dir / "checkpoints" / f"step-{step:08d}"


def assert_same_run(resumed: Path, reference: Path) -> None:
    """Same metrics (with the history of every evaluation), same best model, same final weights: byte for byte."""
    final = f"checkpoints/step-{LAST_STEP:08d}/model.safetensors"
    assert (resumed / final).read_bytes() == (reference / final).read_bytes(), "the final weights differ"
    assert json.loads((resumed / "metrics.json").read_text()) == json.loads((reference / "metrics.json").read_text())
    assert (resumed / "model.safetensors").read_bytes() == (reference / "model.safetensors").read_bytes()


@pytest.fixture(scope="module")
def reference(tiny_model_dir: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted run with every checkpoint kept."""
    output_dir = tmp_path_factory.mktemp("kill-resume") / "reference"
    train(tiny_model_dir, output_dir)
    assert step_dir(output_dir, LAST_STEP).is_dir()
    return output_dir


def test_resume_from_a_mid_epoch_checkpoint_of_epoch_two_is_exact(tiny_model_dir, reference, tmp_path):
    # the run as a kill right after step 28 (8 batches into epoch 2) leaves it
    cut = tmp_path / "cut"
    shutil.copytree(reference, cut)
    for name in ("metrics.json", "model.safetensors"):
        (cut / name).unlink()
    for checkpoint in (cut / "checkpoints").glob("step-*"):
        if int(checkpoint.name.removeprefix("step-")) > 28:
            shutil.rmtree(checkpoint)

    resumed = train(tiny_model_dir, cut, "--resume")
    assert "Resuming from" in resumed.stdout and "step-00000028" in resumed.stdout
    assert_same_run(cut, reference)


def test_sigkill_mid_epoch_then_resume_is_exact(tiny_model_dir, reference, tmp_path):
    killed = tmp_path / "killed"
    process = subprocess.Popen(
        train_command(tiny_model_dir, killed), cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    # wait for the first mid-epoch checkpoint (step 7 of 20), then kill without warning
    deadline = time.time() + 240
    target = step_dir(killed, 7)
    while not target.is_dir() and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert target.is_dir(), "the run ended before a mid-epoch checkpoint appeared"
    assert not (killed / "metrics.json").exists(), "the run finished before it was killed"

    resumed = train(tiny_model_dir, killed, "--resume")
    assert "Resuming from" in resumed.stdout
    assert_same_run(killed, reference)


def test_a_pass_over_the_batches_leaves_the_global_rng_alone():
    # dropout draws from torch's global RNG, which a checkpoint saves and --resume restores; a resumed run starts
    # with a pass that skips the batches done, the uninterrupted run started its pass before the checkpoint:
    # a draw per pass (DataLoader's iterator seed) would shift every later dropout mask of the resumed run
    lengths = [3, 17, 5, 40, 9, 12, 4, 28, 6, 21]
    rows = datasets.Dataset.from_dict({"input_ids": [[1] * n for n in lengths], "length": lengths, "labels": [0] * 10})
    train, _ = make_dataloader(rows, len, 2, shuffle=True, seed=42, group_by_length=True)
    accelerator = make_accelerator(TrainingConfig(), log=False)
    prepared = accelerator.prepare(train)
    passes = {
        "a training pass": prepared,
        "a resumed pass": accelerator.skip_first_batches(prepared, 2),
        "an evaluation pass": LengthSortedBatches.build(rows.to_list(), len, 4, accelerator).loader,
    }
    for name, loader in passes.items():
        before = torch.get_rng_state()
        assert list(loader), name
        assert torch.equal(torch.get_rng_state(), before), f"{name} drew from the global RNG"


def test_an_overwrite_stopped_between_its_reports_never_costs_the_finished_run(tiny_model_dir, tmp_path, monkeypatch, capsys):
    """QA repro3 end to end. Planted fault: the first --overwrite, stopped after metrics.json and before run_info.json,
    counted as finished; the second --overwrite moved it over the finished run waiting in .NAME.replaced and, stopped
    before its first checkpoint, put it back in place of the finished run, which was gone."""
    from nlp_transfer.cli import main
    from nlp_transfer.output_dir import is_finished, replaced_path
    from tests.conftest import sentiment_splits

    (tmp_path / "data").mkdir()
    files = sentiment_splits(tmp_path / "data", 40, 20)
    run = tmp_path / "runs" / "a"
    data = {f"data.{split}_file": path for split, path in files.items()}

    def train_cli(seed: int, *flags: str) -> int:
        config = str(REPO / "tests/bad_inputs/good.yaml")
        return main(["train", config, *tiny_overrides(tiny_model_dir, run, **data, seed=seed), *flags])

    assert train_cli(1) == 0
    finished = (run / "model.safetensors").read_bytes()
    import nlp_transfer.files
    import nlp_transfer.training.loop

    write_text_atomic = nlp_transfer.files.write_text_atomic

    def stopped_at_run_info(path: Path, text: str) -> None:
        if Path(path).name == "run_info.json":
            raise KeyboardInterrupt
        write_text_atomic(path, text)

    monkeypatch.setattr(nlp_transfer.files, "write_text_atomic", stopped_at_run_info)  # RunInfo.write reads it from there
    assert train_cli(2, "--overwrite") == 130
    monkeypatch.undo()
    assert (run / "metrics.json").is_file() and not is_finished(run)  # kept for --resume: it has a checkpoint
    assert (replaced_path(run) / "model.safetensors").read_bytes() == finished

    def stopped_in_first_step(*args: object, **kwargs: object) -> bool:
        raise KeyboardInterrupt

    monkeypatch.setattr(nlp_transfer.training.loop, "train_step", stopped_in_first_step)
    assert train_cli(3, "--overwrite") == 130
    monkeypatch.undo()
    assert (run / "model.safetensors").read_bytes() == finished and is_finished(run)
    assert not replaced_path(run).exists()
    capsys.readouterr()
