"""Two exports at once: a live export's staging folder is never taken for one a killed export left, and a second
export of a run another nlp-transfer process is writing is refused with one line, before it writes anything."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nlp_transfer.errors import UserError
from nlp_transfer.export import command
from nlp_transfer.export.command import export_run, remove_stale_staging
from nlp_transfer.output_dir import run_lock
from tests.conftest import hold_lock


def sleeping_process() -> subprocess.Popen:
    """A live process, standing in for another export while it runs."""
    return subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)


def ended(process: subprocess.Popen) -> None:
    """Let a :func:`sleeping_process` end."""
    process.stdin.close()
    process.wait(timeout=60)


def dead_pid() -> int:
    """The id of a process that has ended (as an export killed outright has)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait(timeout=60)
    return process.pid


@pytest.fixture()
def fake_run(tmp_path, monkeypatch):
    """A run folder whose export is stubbed: no model loads, the "export" writes a file and passes its check."""

    def build(run_dir: Path, folder: Path, *, int8: bool, batch_size: int, **load: bool) -> dict:
        (folder / "model.onnx").write_bytes(b"graph")
        return {"run": run_dir.name, "built_in": folder.name}

    run = tmp_path / "run"
    run.mkdir()
    (run / "run_info.json").write_text("{}")
    monkeypatch.setattr("nlp_transfer.export.onnx_backend.require_onnxruntime", lambda: None)
    monkeypatch.setattr(command, "check_run_dir", lambda run_dir: None)
    monkeypatch.setattr(command, "build_export", build)
    monkeypatch.setattr(command, "refusal", lambda report, max_drop: None)
    return run


def test_a_live_exports_staging_folder_stays_and_a_killed_ones_goes(tmp_path):
    """Planted fault (QA repro5): every .onnx.partial-* was deleted at start-up as if a killed export had left it, so a
    second export pulled the staging folder from under a running one ("No such file or directory")."""
    live = sleeping_process()
    try:
        folders = {
            "live": tmp_path / f".onnx.partial-{live.pid}-abc123",
            "mine": tmp_path / f".onnx.partial-{os.getpid()}-def456",
            "killed": tmp_path / f".onnx.partial-{dead_pid()}-ghi789",
            "older version": tmp_path / ".onnx.partial-k1lled_x",
            "another output's": tmp_path / f".served.partial-{dead_pid()}-jkl012",
        }
        for folder in folders.values():
            folder.mkdir()
            (folder / "model.onnx").write_bytes(b"half")
        remove_stale_staging(tmp_path / "onnx")
        # its own pid cannot be a live export's: a container runs every export as pid 1 (a killed one's stayed for ever)
        assert {name for name, folder in folders.items() if folder.exists()} == {"live", "another output's"}
        with run_lock(tmp_path):  # the export holds the folder's lock: no other export can be writing there
            remove_stale_staging(tmp_path / "onnx")
        assert {name for name, folder in folders.items() if folder.exists()} == {"another output's"}
    finally:
        ended(live)


def test_an_export_names_its_staging_by_pid_and_clears_leftovers_whatever_pid_they_carry(fake_run):
    """Holding the run's lock, an export knows no other export is writing beside it: a leftover whose pid a live
    process has taken again (containers run every export as pid 1; ids come back after a reboot) stayed for ever."""
    other = sleeping_process()
    try:
        leftover = fake_run / f".onnx.partial-{other.pid}-abc123"
        leftover.mkdir()
        (leftover / "model.onnx").write_bytes(b"a killed export's half graph")
        report = export_run(fake_run)
        assert report["built_in"].startswith(f".onnx.partial-{os.getpid()}-")
        assert (fake_run / "onnx" / "model.onnx").read_bytes() == b"graph"
        assert json.loads((fake_run / "onnx" / "export.json").read_text())["run"] == "run"
        assert not leftover.exists()
    finally:
        ended(other)
    assert sorted(p.name for p in fake_run.parent.iterdir()) == ["run"]  # no lock file left beside the run


@pytest.mark.parametrize("held", ["run", "output"])
def test_an_export_of_a_folder_in_use_is_refused_with_one_line_and_writes_nothing(fake_run, tmp_path, held):
    """Planted fault: nothing kept an export from writing into a run that another process was writing (or replacing
    with --overwrite), nor two exports from moving their folders into one --output at once."""
    output = tmp_path / "served"
    holder = hold_lock(fake_run if held == "run" else output)
    try:
        with pytest.raises(UserError) as refused:
            export_run(fake_run, output=output)
    finally:
        ended(holder)
    folder = fake_run if held == "run" else output
    assert str(refused.value) == (
        f"{folder} is in use by another nlp-transfer process (pid {holder.pid}); wait for it to end, then export again."
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"] and sorted(p.name for p in fake_run.iterdir()) == [
        "run_info.json"
    ]


def test_the_cli_says_it_in_one_line_with_exit_code_2(fake_run, capsys):
    """`nlp-transfer export RUN` while a training run writes RUN: one `error:` line, exit code 2."""
    from nlp_transfer.cli import main

    holder = hold_lock(fake_run)
    try:
        code = main(["export", str(fake_run)])
    finally:
        ended(holder)
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and f"(pid {holder.pid})" in err
    assert not (fake_run / "onnx").exists()
