"""Two processes on one run folder, and a run interrupted between its two report files.

A run counts as finished only once metrics.json and run_info.json are both whole; ``--overwrite`` of an unfinished run
never replaces the finished one waiting in ``.NAME.replaced``. One process at a time writes a run folder: a second is
refused with one line before it touches anything.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from nlp_transfer.errors import UserError
from nlp_transfer.output_dir import is_finished, lock_path, move_aside, replaced_on_success, replaced_path, run_lock
from tests.conftest import REPO, hold_lock

MAIN_PROCESS = SimpleNamespace(is_main_process=True, wait_for_everyone=lambda: None)
OTHER_PROCESS = SimpleNamespace(is_main_process=False, wait_for_everyone=lambda: None)


def finished_run(folder: Path, weights: bytes) -> Path:
    """A run folder as a finished training run leaves it: both reports whole, and its weights."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text("task: classification\n")
    (folder / "metrics.json").write_text(json.dumps({"test": {"accuracy": 0.9}}))
    (folder / "run_info.json").write_text(json.dumps({"task": "classification"}))
    (folder / "model.safetensors").write_bytes(weights)
    return folder


@pytest.mark.parametrize(
    "run_info",
    [None, "", '{"task": "classif', "[]"],
    ids=["missing", "empty", "half-written", "not-an-object"],
)
def test_a_run_is_finished_only_with_both_reports_whole(tmp_path, run_info):
    """Planted fault: "has metrics.json" was "finished", though training writes run_info.json after it."""
    run = finished_run(tmp_path / "run", b"A")
    assert is_finished(run)
    (run / "run_info.json").unlink()
    if run_info is not None:
        (run / "run_info.json").write_text(run_info)
    assert not is_finished(run)


def test_overwrite_of_a_run_interrupted_between_its_reports_keeps_the_finished_one_aside(tmp_path, capsys):
    """Planted fault (QA repro3): the first --overwrite was stopped after metrics.json, before run_info.json; the second
    took that folder for a finished run and moved it over the finished one in .NAME.replaced, then lost both when it
    was stopped before its first checkpoint."""
    run, aside = tmp_path / "run", replaced_path(tmp_path / "run")
    finished_run(run, b"A")

    def interrupted(after_reports: bool) -> None:
        with pytest.raises(KeyboardInterrupt), replaced_on_success(run, True, MAIN_PROCESS):
            run.mkdir()
            (run / "config.yaml").write_text("task: classification\n")
            if after_reports:  # a checkpoint (kept for --resume) and metrics.json, but no run_info.json yet
                (run / "checkpoints/step-00000010").mkdir(parents=True)
                (run / "checkpoints/step-00000010/trainer_state.json").write_text("{}")
                (run / "metrics.json").write_text("{}")
                (run / "model.safetensors").write_bytes(b"B")
            raise KeyboardInterrupt

    interrupted(after_reports=True)  # B stays for --resume; A waits aside
    assert (aside / "model.safetensors").read_bytes() == b"A" and (run / "metrics.json").is_file()
    interrupted(after_reports=False)  # C: nothing to resume, so A comes back
    assert "the finished one still waits" in capsys.readouterr().err
    assert (run / "model.safetensors").read_bytes() == b"A" and is_finished(run) and not aside.exists()


def test_move_aside_replaces_the_waiting_run_only_with_a_finished_one(tmp_path):
    """A finished run in the folder replaces the one aside; an unfinished one goes, and the one aside stays."""
    run, aside = tmp_path / "run", replaced_path(tmp_path / "run")
    finished_run(aside, b"A")
    finished_run(run, b"B")
    move_aside(run, aside)
    assert (aside / "model.safetensors").read_bytes() == b"B" and not run.exists()
    finished_run(run, b"C")
    (run / "run_info.json").write_text('{"task": ')  # cut off mid-write
    move_aside(run, aside)
    assert (aside / "model.safetensors").read_bytes() == b"B" and not run.exists()


def release(holder: subprocess.Popen) -> None:
    """Let the holder of :func:`hold_lock` end."""
    holder.stdin.close()
    assert holder.wait(timeout=60) == 0


def test_a_second_process_is_refused_with_one_line_naming_the_holder(tmp_path):
    """Planted fault (QA repro1, repro2): nothing kept two processes from writing one run folder at once."""
    run = finished_run(tmp_path / "run", b"A")
    holder = hold_lock(run)
    try:
        with pytest.raises(UserError) as refused, run_lock(run):
            raise AssertionError("the lock of a folder in use was granted")
        message = str(refused.value)
        assert message == (
            f"{run} is in use by another nlp-transfer process (pid {holder.pid}); wait for it or choose another output_dir."
        )
    finally:
        release(holder)
    assert not lock_path(run).exists()  # the holder removed its lock file
    with run_lock(run):  # free again
        assert lock_path(run).read_text().strip() == str(os.getpid())
    assert not lock_path(run).exists()


def test_overwrite_refused_while_the_folder_is_in_use_touches_nothing(tmp_path):
    """--overwrite of a folder another process writes: refused before the earlier run moves aside."""
    run = finished_run(tmp_path / "run", b"A")
    holder = hold_lock(run)
    try:
        with pytest.raises(UserError, match="in use by another nlp-transfer process"):
            with replaced_on_success(run, True, MAIN_PROCESS):
                raise AssertionError("the block ran")
        with replaced_on_success(run, False, OTHER_PROCESS):  # under accelerate launch only the main process locks
            pass
    finally:
        release(holder)
    assert (run / "model.safetensors").read_bytes() == b"A" and not replaced_path(run).exists()


def test_the_lock_is_reentrant_and_a_killed_holders_lock_file_is_taken_over(tmp_path):
    """A nested lock of the same folder in one process (export inside a run, a check inside a train) is not refused;
    a lock file left by a process killed outright (SIGKILL) holds no lock."""
    run = tmp_path / "run"
    lock_path(run).write_text("999999999\n")  # as a killed process leaves it
    with run_lock(run), run_lock(tmp_path / "." / "run"):
        assert lock_path(run).read_text().strip() != "999999999"
    assert not lock_path(run).exists()


def test_train_overwrite_while_another_process_writes_the_run_exits_2_and_touches_nothing(tmp_path, tiny_model_dir, capsys):
    """The CLI end to end: `train --overwrite` of a run another nlp-transfer process holds says so in one line."""
    from nlp_transfer.cli import main
    from tests.conftest import sentiment_splits, tiny_overrides

    (tmp_path / "data").mkdir()
    files = sentiment_splits(tmp_path / "data", 40, 20)
    run = finished_run(tmp_path / "runs" / "a", b"A")
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    data = {f"data.{split}_file": path for split, path in files.items()}
    holder = hold_lock(run)
    started = time.monotonic()
    try:
        code = main(
            ["train", str(REPO / "tests/bad_inputs/good.yaml"), *tiny_overrides(tiny_model_dir, run, **data), "--overwrite"]
        )
    finally:
        release(holder)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert err[-1].startswith("error: ") and f"pid {holder.pid}" in err[-1] and "in use" in err[-1]
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before and not replaced_path(run).exists()
    assert time.monotonic() - started < 300


@pytest.mark.parametrize("cut", ["metrics.json", "run_info.json"])
def test_a_report_cut_off_mid_write_never_stands_in_the_run_folder(tmp_path, monkeypatch, cut):
    """Planted fault: metrics.json and run_info.json were written in place, so a run stopped mid-write left half a
    JSON file where predict, check and --overwrite read a whole one. run_info.json comes last: with it, the run is done."""
    from nlp_transfer.pipeline import save_reports
    from nlp_transfer.run_info import RunInfo

    write_text = Path.write_text

    def cut_off(self: Path, text: str, *args: object, **kwargs: object) -> int:
        if self.name.startswith(cut):
            write_text(self, text[: len(text) // 2], *args, **kwargs)
            raise KeyboardInterrupt
        return write_text(self, text, *args, **kwargs)

    run = tmp_path / "run"
    run.mkdir()
    task = SimpleNamespace(tokenizer=SimpleNamespace(save_pretrained=lambda folder: None))
    monkeypatch.setattr(Path, "write_text", cut_off)
    with pytest.raises(KeyboardInterrupt):
        save_reports(run, task, {"test": {"accuracy": 1.0}}, RunInfo(task="classification"))
    monkeypatch.undo()
    assert not (run / cut).exists() and not is_finished(run)
    assert cut == "metrics.json" or json.loads((run / "metrics.json").read_text()) == {"test": {"accuracy": 1.0}}
    save_reports(run, task, {"test": {"accuracy": 1.0}}, RunInfo(task="classification"))
    assert is_finished(run) and json.loads((run / "run_info.json").read_text())["task"] == "classification"


def test_check_of_a_run_another_process_holds_is_refused_before_it_loads(tmp_path):
    """QA repro2: `check` during a `train --overwrite` fitted the old model's temperature into the new run."""
    from nlp_transfer.check.command import check_run

    run = finished_run(tmp_path / "run", b"A")
    holder = hold_lock(run)
    try:
        with pytest.raises(UserError, match=rf"in use by another nlp-transfer process \(pid {holder.pid}\); wait for it"):
            check_run(run)
    finally:
        release(holder)
