"""write_text_atomic and write_together: the new files whole, or the old ones untouched; what a write with no room means."""

from __future__ import annotations

import errno
import os

import pytest

import nlp_transfer.files as files
from nlp_transfer.files import write_text_atomic


def test_a_write_replaces_the_file_and_leaves_nothing_beside_it(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text("old", encoding="utf-8")
    write_text_atomic(target, "new\n")
    assert target.read_text(encoding="utf-8") == "new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_an_interrupted_write_leaves_the_old_file_as_it_was(tmp_path, monkeypatch):
    """Planted fault: the process stops after writing the new text but before moving it into place."""
    target = tmp_path / "calibration.json"
    target.write_text('{"temperature": 1.5}', encoding="utf-8")

    def interrupted(source, destination):
        raise KeyboardInterrupt

    monkeypatch.setattr(files.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_text_atomic(target, '{"temperature": 2.0, "half": ')
    assert target.read_text(encoding="utf-8") == '{"temperature": 1.5}'


def test_files_written_together_are_all_replaced_or_none(tmp_path):
    """Planted fault: the second file finds the disk full; the first, already written, must not replace its old one."""
    report, plot = tmp_path / "check.json", tmp_path / "reliability.png"
    report.write_text("old report", encoding="utf-8")
    plot.write_bytes(b"old plot")

    def disk_full(partial):
        partial.write_bytes(b"half a plot")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(OSError) as raised:
        files.write_together({report: lambda partial: partial.write_text("new report", encoding="utf-8"), plot: disk_full})
    assert raised.value.filename == str(plot)  # named for the guard's one line
    assert report.read_text(encoding="utf-8") == "old report" and plot.read_bytes() == b"old plot"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["check.json", "reliability.png"]


def test_a_failed_text_write_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "metrics.json"
    target.write_text("old", encoding="utf-8")

    def file_too_large(source, destination):
        raise OSError(errno.EFBIG, os.strerror(errno.EFBIG))

    monkeypatch.setattr(files.os, "replace", file_too_large)
    with pytest.raises(OSError):
        write_text_atomic(target, "new")
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"] and target.read_text(encoding="utf-8") == "old"


@pytest.mark.parametrize(
    ("error", "number"),
    [
        (OSError(errno.EROFS, "Read-only file system"), errno.EROFS),
        (RuntimeError("Error while serializing: I/O error: File too large (os error 27)"), errno.EFBIG),
        (RuntimeError("write(): fd 3 failed with Disk quota exceeded"), errno.EDQUOT),
        (OSError(errno.ECONNRESET, "Connection reset by peer"), None),
        (ValueError("expected a tensor"), None),
    ],
)
def test_disk_error_reads_what_libraries_say(error, number):
    found = files.disk_error(error)
    assert (found.errno if found is not None else None) == number


def test_a_file_torch_cut_short_is_a_write_error_but_a_bug_is_not():
    assert (
        files.write_error(RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")).errno
        == errno.EIO
    )
    assert files.write_error(RuntimeError("shape mismatch")) is None


def test_disk_error_message_names_the_file_and_the_fix():
    message = files.disk_error_message(OSError(errno.EFBIG, "File too large", "/runs/a/model.safetensors"))
    assert message == (
        "/runs/a/model.safetensors: cannot write (a file is over the file-size limit). "
        "Raise the limit (ulimit -f unlimited), or write to another disk."
    )


def test_on_a_read_only_disk_the_error_names_the_file_asked_for_not_its_partial(tmp_path, monkeypatch):
    """The cleanup's own unlink failed on a read-only disk and replaced the first error: the message named
    reliability.png.partial, a file the user never asked for."""
    plot = tmp_path / "reliability.png"

    def read_only(partial):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(partial))

    def unlink_refused(self, missing_ok=False):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))

    monkeypatch.setattr(type(plot), "unlink", unlink_refused)
    with pytest.raises(OSError) as raised:
        files.write_together({plot: read_only})
    assert raised.value.errno == errno.EROFS and raised.value.filename == str(plot)
