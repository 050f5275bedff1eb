"""A write that finds no room (a full disk, a file-size limit, a quota, a read-only disk): one `error:` line, exit 2,
and the files written before are kept byte for byte (no cut file in place of a good one, no temporary left)."""

from __future__ import annotations

import errno
import hashlib
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from matplotlib.figure import Figure
from safetensors import SafetensorError

from nlp_transfer.cli import main
from nlp_transfer.cli.guard import guard
from nlp_transfer.compare.report import write_report as write_compare_report
from nlp_transfer.compare.rows import ComparisonRow
from nlp_transfer.config import load_config
from nlp_transfer.pipeline import run_training
from nlp_transfer.shift import report as shift_report
from tests.conftest import REPO, sentiment_splits, tiny_overrides

RECIPE = "recipes/configs/sentiment/minilm_full.yaml"
ADVICE = {
    errno.ENOSPC: "Free space",
    errno.EFBIG: "ulimit -f",
    errno.EDQUOT: "quota",
    errno.EROFS: "writable disk",
}


def digests(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` by relative path, with a hash of its bytes."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def leftovers(folder: Path) -> list[str]:
    """Temporary files or folders a failed write left under ``folder``."""
    return [p.name for p in folder.rglob("*") if p.name.startswith(".tmp-") or p.name.endswith(".partial")]


def one_error_line(err: str) -> str:
    """The single `error:` line of ``err``, asserting there is no traceback and nothing after it."""
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip()]
    assert "Traceback" not in err, err[-2000:]
    assert [line for line in lines if line.startswith("error: ")] == [lines[-1]], err[-2000:]
    return lines[-1]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_model_dir):
    """A trained tiny run and its training overrides (the run folder is copied by each test that changes it)."""
    base = tmp_path_factory.mktemp("disk")
    files = sentiment_splits(base, 200, 60)
    out = base / "run"
    overrides = tiny_overrides(tiny_model_dir, out, **{f"data.{split}_file": path for split, path in files.items()})
    run_training(load_config(None, overrides))
    return out, overrides


# --- the guard: every verb ends through it ---------------------------------------------------------------------------


@pytest.mark.parametrize("number", sorted(ADVICE))
@pytest.mark.parametrize("filename", [None, "/data/run/model.safetensors"])
def test_a_write_with_no_room_is_one_line_and_exit_2(number, filename, capsys):
    def action():
        raise OSError(number, os.strerror(number), filename)

    assert guard(False, action) == 2
    line = one_error_line(capsys.readouterr().err)
    assert ADVICE[number] in line
    assert (filename in line) if filename else line.startswith("error: cannot write a file (")


@pytest.mark.parametrize(
    "error",
    [
        SafetensorError("Error while serializing: I/O error: File too large (os error 27)"),
        RuntimeError("write(): fd 3 failed with No space left on device"),
    ],
)
def test_a_library_s_own_report_of_no_room_is_one_line_too(error, capsys):
    def action():
        raise error

    assert guard(False, action) == 2
    assert "cannot write a file" in one_error_line(capsys.readouterr().err)


def test_other_os_errors_still_end_in_a_traceback():
    """Not every OSError is the user's to fix: a reset connection is not turned into a one-line user error."""

    def action():
        raise OSError(errno.ECONNRESET, os.strerror(errno.ECONNRESET))

    with pytest.raises(ConnectionResetError):
        guard(False, action)


# --- training: the best model and checkpoints ------------------------------------------------------------------------


def test_train_overwrite_past_a_file_size_limit_keeps_the_earlier_run(finished_run, tmp_path):
    """The real thing, as `ulimit -f 200` gives it: a child process whose files may not pass 200 kB (safetensors then
    raised SafetensorError, a traceback)."""
    source, overrides = finished_run
    run = tmp_path / "run"
    shutil.copytree(source, run)
    before = digests(run)

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # as bash's ulimit -f: the write fails with EFBIG, no signal
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, resource.RLIM_INFINITY))

    command = [sys.executable, "-m", "nlp_transfer.cli", "train", RECIPE, *overrides, f"output_dir={run}", "--overwrite"]
    done = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=600, preexec_fn=limit_file_size, env={**os.environ}
    )
    line = one_error_line(done.stderr)
    assert done.returncode == 2 and "file-size limit" in line and "ulimit -f" in line, done.stderr[-2000:]
    assert digests(run) == before
    assert not leftovers(tmp_path)


def test_a_fresh_run_that_cannot_write_its_best_model_leaves_no_temporary_folder(finished_run, tmp_path, monkeypatch, capsys):
    """Planted fault: safetensors reports a full disk in its own error type; `.tmp-best` used to stay behind."""
    from accelerate import Accelerator

    def disk_full(self, *args, **kwargs):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(Accelerator, "save_model", disk_full)
    monkeypatch.chdir(REPO)
    _, overrides = finished_run
    run = tmp_path / "fresh"
    assert main(["train", RECIPE, *overrides, f"output_dir={run}"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "cannot write the best model (the disk is full)" in line and "earlier checkpoints are intact" in line
    assert not leftovers(tmp_path)


# --- check, shift and compare: reports and plots ---------------------------------------------------------------------


def cut_savefig(monkeypatch, number=errno.EFBIG):
    """Planted fault: every figure gets a few bytes into its file, then the write fails with ``number``."""

    def cut(self, target, *args, **kwargs):
        Path(target).write_bytes(b"\x89PNG cut")
        raise OSError(number, os.strerror(number))

    monkeypatch.setattr(Figure, "savefig", cut)


def test_check_past_the_limit_keeps_its_earlier_report_and_plots(finished_run, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished_run[0], run)
    assert main(["check", str(run)]) == 0
    capsys.readouterr()
    before = digests(run / "check")
    assert {"check.json", "report.md", "reliability.png"} <= set(before)
    cut_savefig(monkeypatch)
    assert main(["check", str(run), "--calibrator", "isotonic"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"{run / 'check'}" in line and ".png: cannot write (a file is over the file-size limit)" in line
    assert digests(run / "check") == before
    assert not leftovers(run)


def test_check_json_and_report_md_are_replaced_together_or_not_at_all(finished_run, tmp_path, monkeypatch, capsys):
    """Planted fault: report.md finds the disk full after check.json was written; the earlier pair stays."""
    run = tmp_path / "run"
    shutil.copytree(finished_run[0], run)
    assert main(["check", str(run)]) == 0
    before = digests(run / "check")
    write_text = Path.write_text

    def full_at_report(self, *args, **kwargs):
        if self.name == "report.md.partial":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full_at_report)
    capsys.readouterr()
    assert main(["check", str(run), "--calibrator", "isotonic"]) == 2
    assert f"{run / 'check' / 'report.md'}: cannot write (the disk is full)" in one_error_line(capsys.readouterr().err)
    assert digests(run / "check") == before
    assert not leftovers(run)


class StubShift:
    """What shift's json writer reads of a report."""

    def to_dict(self) -> dict:
        return {"proxy_a_distance": 1.5}


def test_shift_keeps_its_earlier_json_and_plot_when_the_plot_cannot_be_written(tmp_path, monkeypatch):
    """It used to write the new shift.json, then a cut shift.png in place of the good one."""
    (tmp_path / "shift.json").write_text('{"proxy_a_distance": 0.2}\n', encoding="utf-8")
    (tmp_path / "shift.png").write_bytes(b"\x89PNG good")
    before = digests(tmp_path)

    def cut(report, path):
        Path(path).write_bytes(b"\x89PNG cut")
        raise OSError(errno.EFBIG, os.strerror(errno.EFBIG))

    monkeypatch.setattr(shift_report, "write_plot", cut)
    with pytest.raises(OSError, match="File too large") as raised:
        shift_report.write_report(StubShift(), tmp_path)
    assert raised.value.filename == str(tmp_path / "shift.png")
    assert digests(tmp_path) == before and not leftovers(tmp_path)


def test_shift_s_real_plot_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    """write_plot itself: a cut figure never lands at shift.png."""
    report = StubShift()
    report.lengths = {"source": [3, 4, 5], "target": [4, 6, 9]}
    report.texts = {"compared_per_side": 3}
    report.target_probability = report.projection = None
    (tmp_path / "shift.png").write_bytes(b"\x89PNG good")
    cut_savefig(monkeypatch, errno.ENOSPC)
    with pytest.raises(OSError, match="No space left"):
        shift_report.write_report(report, tmp_path)
    assert (tmp_path / "shift.png").read_bytes() == b"\x89PNG good" and not (tmp_path / "shift.json").exists()
    monkeypatch.undo()
    shift_report.write_report(report, tmp_path)
    drawn = (tmp_path / "shift.png").read_bytes()
    assert drawn.startswith(b"\x89PNG\r\n") and len(drawn) > 1000 and not leftovers(tmp_path)


def test_compare_keeps_its_earlier_report_when_the_plot_cannot_be_written(tmp_path, monkeypatch):
    def row(strategy, size, value):
        return ComparisonRow(strategy, size, size, "accuracy", "test", value, 1, 1, 0.0, 0.0, "child_peak_rss", "")

    rows = [row("full", 50, 0.8), row("scratch", 50, 0.6), row("full", 100, 0.85), row("scratch", 100, 0.7)]
    write_compare_report(rows, tmp_path)
    before = digests(tmp_path)
    cut_savefig(monkeypatch, errno.EDQUOT)
    with pytest.raises(OSError, match="quota"):
        write_compare_report(rows[:2], tmp_path)
    assert digests(tmp_path) == before and not leftovers(tmp_path)
