"""What ``--overwrite`` may replace, and replacing an earlier run only once the new one has finished.

An earlier run moves aside to ``.NAME.replaced`` beside it while the new run trains. When the new run finishes, that
folder is deleted; when it fails before its first checkpoint, the earlier run moves back, so a run that dies on bad
settings never costs the run it was meant to replace. A run that failed after a checkpoint stays for ``--resume``, and
the earlier one waits in ``.NAME.replaced`` until a run in that folder finishes: a run is finished only once both
report files are whole (:func:`is_finished`), so a run interrupted between writing them never takes its place.

One process at a time writes a run folder: :func:`run_lock` holds an advisory lock on ``PARENT/.NAME.lock`` and
refuses a second nlp-transfer process with one line, before it touches anything.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from nlp_transfer.errors import UserError

try:
    import fcntl
except ImportError:  # no advisory locks on this platform: run folders go unguarded, as before
    fcntl = None  # type: ignore[assignment]

#: files and folders of which any one says "a run of nlp-transfer wrote this folder"
RUN_MARKERS = ("config.yaml", "run_info.json", "metrics.json", "checkpoints", "adapt.json", "self_training")
#: the report files a finished run holds, each a whole JSON object (training writes run_info.json last)
REPORT_FILES = ("metrics.json", "run_info.json")
#: what a second writer is told to do by default
LOCK_ADVICE = "wait for it or choose another output_dir"

_held: dict[Path, int] = {}  # the lock files this process holds: a nested lock of the same folder is not refused


def replaced_path(output_dir: Path) -> Path:
    """Where an earlier run waits while ``--overwrite`` trains its replacement."""
    return output_dir.parent / f".{output_dir.name}.replaced"


def check_replaceable(output_dir: Path, data_files: Iterable[str | None]) -> None:
    """Refuse ``--overwrite`` of a folder no run wrote, or one that holds the run's own data files."""
    if not any((output_dir / marker).exists() for marker in RUN_MARKERS):
        raise UserError(
            f"output_dir={output_dir} holds files but no earlier run (no config.yaml or run_info.json); --overwrite only "
            "replaces runs. Empty the folder or set output_dir to another one."
        )
    target = output_dir.resolve()
    if target == Path.cwd().resolve() or target in Path.cwd().resolve().parents:
        raise UserError(
            f"output_dir={output_dir} is the folder this command runs in (or holds it), which --overwrite cannot move "
            "aside. Run the command from another folder, or set output_dir to another folder."
        )
    for path in data_files:
        if path and Path(path).exists() and target in Path(path).resolve().parents:
            raise UserError(
                f"output_dir={output_dir} holds this run's data file {path}, which --overwrite would delete. "
                "Move the data out of it or set output_dir to another folder."
            )


def has_checkpoint(output_dir: Path) -> bool:
    """Whether a failed run left a complete checkpoint in ``output_dir`` that ``--resume`` continues from, its own or
    one of a phase's (``checkpoints/contrastive/checkpoints/step-*``)."""
    from nlp_transfer.training.checkpoints import PREFIX, STATE_FILE, checkpoint_dir

    return output_dir.is_dir() and any(checkpoint_dir(output_dir).glob(f"**/{PREFIX}*/{STATE_FILE}"))


def is_finished(output_dir: Path) -> bool:
    """Whether ``output_dir`` holds a finished run: every one of :data:`REPORT_FILES` is there and reads as a whole JSON
    object (a run interrupted after ``metrics.json`` and before ``run_info.json``, or mid-write, is not finished)."""
    for name in REPORT_FILES:
        try:
            report = json.loads((output_dir / name).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            return False
        if not isinstance(report, dict):
            return False
    return True


def move_aside(output_dir: Path, aside: Path) -> None:
    """Make way for a new run in ``output_dir``, never losing a finished run.

    A finished run there (:func:`is_finished`) moves to ``aside``. An unfinished one, left for ``--resume`` by an
    earlier ``--overwrite`` that failed (after a checkpoint, or between writing its reports), is deleted: the finished
    run it was to replace already waits in ``aside`` and stays there. ``aside`` is only ever replaced by a finished run.
    """
    if aside.is_dir() and not is_finished(output_dir):
        shutil.rmtree(output_dir)
        print(f"replacing the unfinished run in {output_dir}; the finished one still waits in {aside}", file=sys.stderr)
        return
    shutil.rmtree(aside, ignore_errors=True)
    output_dir.rename(aside)
    print(f"replacing {output_dir}: the earlier run waits in {aside} until this one finishes", file=sys.stderr)


def lock_path(folder: Path) -> Path:
    """The lock file of the run folder ``folder``: ``PARENT/.NAME.lock`` beside it (it stays put while ``--overwrite``
    renames the folder), symbolic links resolved so that every name of one folder shares one lock."""
    folder = Path(folder).resolve()
    return folder.parent / f".{folder.name}.lock"


def lock_holder(path: Path) -> str:
    """Who holds the lock file ``path``, as its holder wrote it ("pid N"), or "pid unknown" while it writes it."""
    try:
        pid = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        pid = ""
    return f"pid {pid}" if pid.isdigit() else "pid unknown"


def acquire_lock(path: Path, folder: Path, advice: str) -> int | None:
    """Lock ``path`` for this process and write its pid there; the open file, or None where no lock file can be made
    (a read-only parent folder): the folder then goes unguarded. A UserError when another process holds it."""
    while True:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UserError(f"{folder} is in use by another nlp-transfer process ({lock_holder(path)}); {advice}.") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        os.close(fd)  # the holder removed this file as it let go: lock the one now at ``path``


@contextmanager
def run_lock(folder: Path, advice: str = LOCK_ADVICE) -> Iterator[None]:
    """Hold the advisory lock of the run folder ``folder`` (:func:`lock_path`) while the block writes it.

    Another process holding it is refused at once with one line naming it and ``advice`` (a UserError: exit code 2),
    before the block starts. Within one process the lock is reentrant. Under ``accelerate launch`` only the main
    process takes it. The lock file is removed on release; one left by a killed process is no longer locked.
    """
    path = lock_path(folder)
    if fcntl is None or path in _held:
        yield
        return
    fd = acquire_lock(path, Path(folder), advice)
    if fd is None:
        yield
        return
    _held[path] = fd
    try:
        yield
    finally:
        del _held[path]
        path.unlink(missing_ok=True)  # while still locked: a process that opened it meanwhile sees it go and retries
        os.close(fd)


def holds_lock(folder: Path) -> bool:
    """Whether this process holds the lock of the run folder ``folder`` (:func:`run_lock`)."""
    return lock_path(folder) in _held


@contextmanager
def replaced_on_success(
    output_dir: Path, replace: bool, accelerator: Any, resumable: Callable[[Path], bool] = has_checkpoint
) -> Iterator[None]:
    """Move an earlier run aside (``replace``) while the block trains; delete it on success, restore it on early failure.

    The main process of ``accelerator`` (an ``Accelerator`` or a ``PartialState``) holds the folder's lock
    (:func:`run_lock`) for the whole block and moves the folders; the others wait until the earlier run is out of the
    way. A failed run is kept instead when ``resumable(output_dir)`` says that ``--resume`` can continue it (by
    default: it wrote a checkpoint).
    """
    aside, main = replaced_path(output_dir), accelerator.is_main_process
    with run_lock(output_dir) if main else nullcontext():  # a second writer is refused before anything moves
        if replace and main:
            move_aside(output_dir, aside)
        accelerator.wait_for_everyone()  # every process, whatever it saw: the others looked before the main one moved it
        try:
            yield
        except BaseException:
            # only the command that moved it aside puts it back: a failed --resume leaves both as they were (it swapped
            # the finished run back in silently, and its advice, --overwrite, would then have replaced that run)
            if replace and main and aside.is_dir() and not resumable(output_dir):
                shutil.rmtree(output_dir, ignore_errors=True)
                aside.rename(output_dir)  # nothing to resume: the earlier run comes back as it was
            raise
        if main:
            shutil.rmtree(aside, ignore_errors=True)
