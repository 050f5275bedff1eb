"""A training process killed with SIGKILL mid-epoch resumes to exactly the uninterrupted result."""

import json
import os
import signal
import subprocess
import sys
import time

from tests.conftest import REPO, synthetic_sentiment, tiny_overrides, write_csv

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def train_command(config_overrides, *flags):
    return [
        sys.executable,
        "-m",
        "nlp_transfer.cli",
        "train",
        "recipes/configs/sentiment/minilm_full.yaml",
        *config_overrides,
        *flags,
    ]


def test_sigkill_mid_epoch_then_resume_is_exact(tiny_model_dir, tmp_path):
    train = write_csv(tmp_path / "train.csv", synthetic_sentiment(1600, 11))
    val = write_csv(tmp_path / "val.csv", synthetic_sentiment(200, 12))
    common = {
        "data.train_file": train,
        "data.validation_file": val,
        "data.test_file": val,
        "training.epochs": 2,
        "training.save_steps": 20,
        "training.save_total_limit": 3,
        "training.learning_rate": 1e-3,
    }

    reference = tmp_path / "reference"
    done = subprocess.run(
        train_command(tiny_overrides(tiny_model_dir, reference, **common)),
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]

    killed = tmp_path / "killed"
    process = subprocess.Popen(
        train_command(tiny_overrides(tiny_model_dir, killed, **common)),
        cwd=REPO,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # 100 steps an epoch: wait for a checkpoint inside the second epoch, then kill without warning
    deadline = time.time() + 240
    target = killed / "checkpoints" / "step-00000120"
    while not target.is_dir() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert target.is_dir(), "the run ended before a mid-epoch checkpoint appeared"
    assert not (killed / "metrics.json").exists(), "the run finished before it was killed"

    resumed = subprocess.run(
        train_command(tiny_overrides(tiny_model_dir, killed, **common), "--resume"),
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Resuming from" in resumed.stdout
    ref_metrics = json.loads((reference / "metrics.json").read_text())
    assert json.loads((killed / "metrics.json").read_text()) == ref_metrics
    assert (killed / "model.safetensors").read_bytes() == (reference / "model.safetensors").read_bytes()
