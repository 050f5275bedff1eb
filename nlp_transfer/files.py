"""Writing files so that an interruption never leaves a half-written one in place of a good one.

Each file is written to a sibling ``NAME.partial`` and moved over ``NAME`` (``os.replace``, atomic within a folder) only
once complete; a write that fails (a full disk, a file-size limit, Ctrl-C) removes the partial file and leaves ``NAME``
as it was. This module also says what a write that ran out of room means and what to do about it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

#: errno values that mean there is no room for the write, with what each means and what to do
DISK_ERRORS: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("the disk is full", "Free space on that disk, or write to another one"),
    errno.EFBIG: ("a file is over the file-size limit", "Raise the limit (ulimit -f unlimited), or write to another disk"),
    errno.EDQUOT: ("the disk quota is exceeded", "Free space within your quota, or write to another disk"),
    errno.EROFS: ("the file system is read-only", "Give a folder on a writable disk"),
}

#: what a file torch cut short most likely means, and what to do
SHORT_WRITE = "a file was cut short while written: the disk filled up or a file-size limit was reached"
SHORT_WRITE_ADVICE = "Free space, or raise the file-size limit (ulimit -f unlimited)"

#: how torch's writer reports a file cut short (it gives no errno): "unexpected pos 576 vs 534", "file write failed"
_SHORT_WRITE = re.compile(r"unexpected pos \d+ vs \d+|file write failed|PytorchStreamWriter failed writing")


def partial_path(path: str | Path) -> Path:
    """The sibling file ``path`` is written to before it is moved into place."""
    path = Path(path)
    return path.with_name(path.name + ".partial")


def write_together(writers: Mapping[Path, Callable[[Path], Any]]) -> None:
    """Call each ``write(partial)`` of ``writers`` (final path -> writer), then move every partial file into place.

    Nothing is replaced unless every file was written: a failure (or an interrupt) removes the partial files and leaves
    the older files as they were, so files written together (a report and its plot) never mix two versions.
    """
    staged = {Path(path): partial_path(path) for path in writers}
    current: Path | None = None
    try:
        for current, write in writers.items():
            write(staged[Path(current)])
        for current, partial in staged.items():
            os.replace(partial, current)
    except BaseException as err:
        for partial in staged.values():
            with contextlib.suppress(OSError):  # a read-only disk refuses even this: the first error is the one to tell
                partial.unlink(missing_ok=True)
        if isinstance(err, OSError) and current is not None:
            _name_final_file(err, Path(current))
        raise


def _name_final_file(err: OSError, path: Path) -> None:
    """Make ``err`` name ``path``, where it names no file (a library writing through a file object) or a partial file
    of ``path`` (the user never named that one)."""
    if err.filename is None or str(err.filename).startswith(str(partial_path(path))):
        err.filename = str(path)


def write_atomic(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(partial)`` on a sibling of ``path``, then move it over ``path``; returns ``path``.

    A reader sees either the old file or the whole new one; a failed write leaves the old file and no partial file.
    """
    path = Path(path)
    write_together({path: write})
    return path


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a sibling ``.partial`` file moved into place when complete.

    A reader sees either the old file or the whole new one; a crash mid-write leaves the old file as it was.
    """
    write_atomic(path, lambda partial: partial.write_text(text, encoding="utf-8"))


def disk_error(err: BaseException) -> OSError | None:
    """The OSError behind a write that found no room (errno in :data:`DISK_ERRORS`), else None.

    Libraries report it in their own words: safetensors as ``SafetensorError(... (os error 27))``, torch as
    ``RuntimeError("write(): fd 3 failed with File too large")``; both are read back into an OSError.
    """
    if isinstance(err, OSError):
        return err if err.errno in DISK_ERRORS else None
    text = str(err)
    found = re.search(r"\(os error (\d+)\)", text)
    if found and int(found[1]) in DISK_ERRORS:
        return OSError(int(found[1]), os.strerror(int(found[1])))
    for number in DISK_ERRORS:
        if os.strerror(number) in text:
            return OSError(number, os.strerror(number))
    return None


def write_error(err: BaseException) -> OSError | None:
    """The OSError behind a failed write: any OSError, one read back by :func:`disk_error`, or a file torch cut short
    (reported without an errno; most often the disk filled up); None for anything else (a bug, a wrong argument)."""
    if isinstance(err, OSError):
        return err
    found = disk_error(err)
    if found is None and _SHORT_WRITE.search(str(err)):
        found = OSError(errno.EIO, SHORT_WRITE)
    return found


def disk_error_message(err: OSError, filename: str | os.PathLike[str] | None = None) -> str:
    """One line for a write that found no room: the file when known, what happened and what to do."""
    reason, advice = DISK_ERRORS.get(err.errno or 0, (err.strerror or str(err), SHORT_WRITE_ADVICE))
    where = filename if filename is not None else err.filename
    return f"{where}: cannot write ({reason}). {advice}." if where else f"cannot write a file ({reason}). {advice}."
