"""Guards: a NaN loss stops the run, a full disk is reported, over-long texts are counted."""

import errno

import pytest
import torch
from safetensors import SafetensorError

from nlp_transfer.config import load_config
from nlp_transfer.errors import UserError
from nlp_transfer.pipeline import run_training
from nlp_transfer.tasks.classification import SequenceClassificationTask
from nlp_transfer.training import checkpoints
from tests.conftest import REPO, tiny_overrides


def config_for(files, model_dir, out, **extra):
    return load_config(
        None,
        tiny_overrides(
            model_dir,
            out,
            **{
                "data.train_file": files["train"],
                "data.validation_file": files["validation"],
                "data.test_file": files["test"],
                "training.epochs": 2,
                "training.logging_steps": 1,
                **extra,
            },
        ),
    )


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_checkpoint(sentiment_files, tiny_model_dir, tmp_path, monkeypatch):
    calls = {"n": 0}
    original = SequenceClassificationTask.loss

    def poisoned(self, logits, labels):
        calls["n"] += 1
        loss = original(self, logits, labels)
        return loss * torch.tensor(float("nan")) if calls["n"] > 12 else loss

    monkeypatch.setattr(SequenceClassificationTask, "loss", poisoned)
    out = tmp_path / "run"
    config = config_for(sentiment_files, tiny_model_dir, out, **{"training.eval_strategy": "steps", "training.eval_steps": 5})
    with pytest.raises(UserError, match=r"training loss became nan at step 13.*last good checkpoint is .*step-00000010"):
        run_training(config)
    survivors = sorted(p.name for p in (out / "checkpoints").glob("step-*"))
    assert survivors == ["step-00000005", "step-00000010"]
    assert not (out / "model.safetensors").exists()


def test_weights_spoiled_between_loss_logs_are_never_checkpointed(sentiment_files, tiny_model_dir, tmp_path, monkeypatch):
    """Loss logged every 50 steps, checkpoints every 5: a step whose loss was finite but whose update was not."""
    from nlp_transfer.training import loop as training_loop

    original = training_loop.clip_gradients
    calls = {"n": 0}

    def infinite_gradients(accelerator, model, max_norm):
        calls["n"] += 1
        if calls["n"] == 8:  # step 8's update writes infinities into the weights; its loss was finite
            next(p for p in model.parameters() if p.grad is not None).grad.fill_(float("inf"))
        else:
            original(accelerator, model, max_norm)

    monkeypatch.setattr(training_loop, "clip_gradients", infinite_gradients)
    out = tmp_path / "run"
    extra = {
        "training.logging_steps": 50,
        "training.eval_strategy": "steps",
        "training.eval_steps": 5,
        "training.max_grad_norm": 1.0,
    }
    with pytest.raises(UserError, match=r"NaN or infinite values at step 10.*last good checkpoint is .*step-00000005"):
        run_training(config_for(sentiment_files, tiny_model_dir, out, **extra))
    assert sorted(p.name for p in (out / "checkpoints").glob("step-*")) == ["step-00000005"]


def test_a_failed_write_keeps_the_previous_version(tmp_path):
    target = tmp_path / "best"
    checkpoints.write_atomically(target, lambda tmp: (tmp / "model.safetensors").write_text("good"))

    def disk_full(tmp):
        (tmp / "model.safetensors").write_text("half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(UserError, match=r"the disk is full.*earlier checkpoints are intact"):
        checkpoints.write_atomically(target, disk_full)
    assert (target / "model.safetensors").read_text() == "good"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]


def test_disk_full_during_a_run_is_reported_and_the_last_checkpoint_survives(
    sentiment_files, tiny_model_dir, tmp_path, monkeypatch
):
    saves = {"n": 0}
    from accelerate import Accelerator

    original = Accelerator.save_state

    def flaky(self, *args, **kwargs):
        saves["n"] += 1
        if saves["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Accelerator, "save_state", flaky)
    out = tmp_path / "run"
    with pytest.raises(UserError, match=r"cannot write checkpoint \(the disk is full\)"):  # after epoch 2 of 3
        run_training(config_for(sentiment_files, tiny_model_dir, out, **{"training.epochs": 3}))
    assert [p.name for p in (out / "checkpoints").glob("step-*")] == ["step-00000025"]
    assert not list((out / "checkpoints").glob(".tmp-*"))


def test_over_long_texts_are_truncated_and_counted(sentiment_files, tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer

    result = run_training(
        config_for(sentiment_files, tiny_model_dir, tmp_path / "run", **{"training.max_length": 8, "training.epochs": 1})
    )
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    texts = [line.split(",")[0] for line in sentiment_files["train"].read_text().splitlines()[1:]]
    expected = sum(len(tokenizer(t)["input_ids"]) > 8 for t in texts)
    assert expected > 0
    assert result.info["truncated_texts"]["train"] == expected


def test_output_dir_naming_an_existing_file_is_one_line_error(sentiment_files, tiny_model_dir, tmp_path, capsys):
    """It used to end in a NotADirectoryError traceback."""
    from nlp_transfer.cli import main

    existing = tmp_path / "results.txt"
    existing.write_text("keep me\n", encoding="utf-8")
    args = tiny_overrides(tiny_model_dir, existing, **{"data.train_file": sentiment_files["train"]})
    assert main(["train", str(REPO / "recipes/configs/sentiment/minilm_full.yaml"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "is an existing file, not a directory" in err and "Traceback" not in err
    assert existing.read_text(encoding="utf-8") == "keep me\n"


def test_a_checkpoint_written_when_training_is_over_restores_the_random_states(tmp_path):
    import random

    import numpy as np
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)
    torch.manual_seed(3), random.seed(3), np.random.seed(3)
    saved = checkpoints.save_checkpoint(accelerator, tmp_path, 7, {"epoch": 2}, keep=2, training_over=True)
    drawn = (torch.rand(3), random.random(), np.random.rand())
    torch.manual_seed(99), random.seed(99), np.random.seed(99)
    assert checkpoints.load_checkpoint(accelerator, saved) == {"epoch": 2}
    assert torch.equal(torch.rand(3), drawn[0]) and (random.random(), np.random.rand()) == drawn[1:]
    assert not list(saved.glob("model*")) and not list(saved.glob("optimizer*"))


def test_an_error_during_training_starts_its_own_line_after_the_progress_bar(sentiment_files, tiny_model_dir, tmp_path, capsys):
    """`grep '^error:'` finds it: the bar is closed (its line ended) before the message is printed."""
    from nlp_transfer.cli import main
    from tests.conftest import tiny_overrides

    overrides = tiny_overrides(
        tiny_model_dir,
        tmp_path / "run",
        **{
            "data.train_file": sentiment_files["train"],
            "data.validation_file": sentiment_files["validation"],
            "training.learning_rate": 1e30,
            "training.max_grad_norm": "null",
            "training.logging_steps": 2,
        },
    )
    assert main(["train", "recipes/configs/sentiment/minilm_full.yaml", *overrides]) == 2
    err = capsys.readouterr().err
    assert "training:" in err  # the bar was drawn
    assert err.rstrip("\n").split("\n")[-1].startswith("error: "), err[-500:]


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (SafetensorError("Error while serializing: I/O error: File too large (os error 27)"), "over the file-size limit"),
        (RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534"), "cut short while written"),
        (OSError(errno.EROFS, "Read-only file system"), "the file system is read-only"),
    ],
)
def test_a_library_s_failed_write_keeps_the_best_model_and_leaves_no_temporary(tmp_path, error, reason):
    """Planted fault: safetensors and torch report a write with no room in their own error types (not OSError), so the
    failure escaped as a traceback and `.tmp-best` stayed behind."""
    from accelerate import Accelerator

    accelerator, target = Accelerator(cpu=True), tmp_path / "best"
    checkpoints.write_collectively(accelerator, target, lambda tmp: (tmp / "model.safetensors").write_text("good"))

    def cut(tmp):
        (tmp / "model.safetensors").write_text("ha")
        raise error

    for write_all, write_main in ((cut, None), (lambda tmp: None, cut)):
        with pytest.raises(UserError, match=rf"best: cannot write the best model \(.*{reason}.*earlier checkpoints are intact"):
            checkpoints.write_collectively(accelerator, target, write_all, write_main)
        assert (target / "model.safetensors").read_text() == "good"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]
    with pytest.raises(UserError, match=rf"cannot write \(.*{reason}"):
        checkpoints.write_atomically(target, cut)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]


def test_a_bug_in_a_collective_write_is_raised_as_it_is_and_cleaned_up(tmp_path):
    """Not every error is a full disk: a bug keeps its own type and traceback, and still leaves no temporary folder."""
    from accelerate import Accelerator

    def bug(tmp):
        (tmp / "model.safetensors").write_text("ha")
        raise ValueError("a tensor of the wrong shape")

    with pytest.raises(ValueError, match="wrong shape"):
        checkpoints.write_collectively(Accelerator(cpu=True), tmp_path / "best", bug)
    with pytest.raises(KeyboardInterrupt):
        checkpoints.write_collectively(
            Accelerator(cpu=True), tmp_path / "best", lambda tmp: (_ for _ in ()).throw(KeyboardInterrupt)
        )
    assert list(tmp_path.iterdir()) == []
