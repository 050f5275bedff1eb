"""Checkpoints that are either complete or absent.

A checkpoint is written into a temporary folder and renamed into place only once complete, so a
crash mid-write never replaces a good checkpoint. Only the newest ``keep`` are kept.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from accelerate.checkpointing import load_accelerator_state, save_accelerator_state

from nlp_transfer.errors import UserError
from nlp_transfer.files import DISK_ERRORS, SHORT_WRITE, SHORT_WRITE_ADVICE, write_error

STATE_FILE = "trainer_state.json"
PREFIX = "step-"
#: marks a checkpoint written when nothing was left to train: it holds no model, optimizer or scheduler state
TRAINING_OVER_FILE = "training_over"
#: every other file of a checkpoint and its size in bytes, written last: a file cut short or lost since is caught on
#: --resume (Accelerate skips random states it cannot read, which resumed a run that was no longer exact)
SIZES_FILE = "file_sizes.json"


def checkpoint_dir(output_dir: Path) -> Path:
    """Where a run's checkpoints live."""
    return Path(output_dir) / "checkpoints"


def list_checkpoints(output_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    root = checkpoint_dir(output_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.name.startswith(PREFIX) and (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX) :]))


def latest_checkpoint(output_dir: Path) -> Path | None:
    """The newest complete checkpoint, or None."""
    found = list_checkpoints(output_dir)
    return found[-1] if found else None


def _reason(err: OSError) -> str:
    """What a failed write ran into, in a few words."""
    if err.errno in DISK_ERRORS:
        return DISK_ERRORS[err.errno][0]
    return {errno.EACCES: "permission denied"}.get(err.errno or 0, err.strerror or str(err))


def _advice(err: OSError | None) -> str:
    """What to do about a failed write of a checkpoint or the best model (the earlier ones are kept)."""
    if err is not None and err.errno in DISK_ERRORS and err.errno != errno.ENOSPC:  # a full disk: the usual advice
        advice = DISK_ERRORS[err.errno][1]
    else:
        advice = SHORT_WRITE_ADVICE if err is not None and err.strerror == SHORT_WRITE else "Free space or fix permissions"
    return f"{advice}; earlier checkpoints are intact."


def commit_dir(tmp: Path, target: Path) -> None:
    """Move the complete folder ``tmp`` to ``target``, replacing an older ``target`` only after."""
    if target.exists():
        old = target.with_name(f".old-{target.name}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)


def write_atomically(target: Path, write: Any) -> Path:
    """Call ``write(tmp_dir)`` then rename ``tmp_dir`` to ``target`` (replacing an older one).

    Disk-full and permission errors (also as safetensors and torch report them) become a :class:`UserError`; the
    older ``target`` survives, and no temporary folder is left.
    """
    target = Path(target)
    tmp = target.with_name(f".tmp-{target.name}")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        write(tmp)
        commit_dir(tmp, target)
    except BaseException as err:  # Ctrl-C and a library's own error type too: no half-written folder stays behind
        shutil.rmtree(tmp, ignore_errors=True)
        failure = write_error(err) if isinstance(err, Exception) else None
        if failure is None:
            raise
        raise UserError(f"{target}: cannot write ({_reason(failure)}). {_advice(failure)}") from None
    return target


def link_or_copy(source: Path, target: Path) -> None:
    """Hard-link ``source`` to ``target`` (no extra space), copying where links are not possible."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def write_collectively(
    accelerator: Any, target: Path, write_all: Any, write_main: Any = None, *, what: str = "the best model"
) -> Path:
    """Write a folder that every process contributes to, then rename it into place (main process).

    ``write_all(tmp)`` runs on every process (Accelerate's collective saves: sharded FSDP or ZeRO-3
    weights are gathered there), ``write_main(tmp)`` on the main process only. The processes agree on
    the outcome before anything is committed: a failure on any of them leaves the older ``target``
    intact and becomes a :class:`UserError` naming ``what`` on every process (none is left waiting).
    """
    target = Path(target)
    tmp = target.with_name(f".tmp-{target.name}")
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    failure = _attempt(accelerator, tmp, write_all)
    if _failed_anywhere(accelerator, failure is not None):
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        _refuse(target, what, failure, "another process could not write its part")
    if accelerator.is_main_process:

        def finish(tmp: Path) -> None:
            if write_main is not None:
                write_main(tmp)
            commit_dir(tmp, target)

        failure = _attempt(accelerator, tmp, finish)
        if failure is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    if _failed_anywhere(accelerator, failure is not None):
        _refuse(target, what, failure, "the main process could not finish it")
    return target


def _attempt(accelerator: Any, tmp: Path, write: Any) -> Exception | None:
    """Run ``write(tmp)``; the error it raised (None: it succeeded), for the processes to agree on before raising it.

    An interrupt (Ctrl-C, SIGTERM) removes the main process's ``tmp`` and goes on at once.
    """
    try:
        write(tmp)
    except Exception as err:
        return err
    except BaseException:
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    return None


def _refuse(target: Path, what: str, failure: Exception | None, elsewhere: str) -> None:
    """Raise the failed write of ``target`` as one :class:`UserError` (``elsewhere``: why, when another process
    failed); an error that is not a failed write (a bug) is raised as it was."""
    found = write_error(failure) if failure is not None else None
    if failure is not None and found is None:
        raise failure
    reason = _reason(found) if found is not None else elsewhere
    raise UserError(f"{target}: cannot write {what} ({reason}). {_advice(found)}") from None


def _failed_anywhere(accelerator: Any, failed: bool) -> bool:
    """Whether ``failed`` is true on any process (one small all-reduce; also a barrier)."""
    if accelerator.num_processes == 1:
        return failed
    flag = torch.tensor([1.0 if failed else 0.0], device=accelerator.device)
    return bool(accelerator.reduce(flag, reduction="sum").item() > 0)


def save_checkpoint(
    accelerator: Any,
    output_dir: Path,
    step: int,
    state: dict[str, Any],
    keep: int,
    extra_files: dict[str, Path] | None = None,
    *,
    training_over: bool = False,
) -> Path:
    """Save model, optimizer, scheduler and RNG states through Accelerate, plus ``state`` as JSON.

    Every process writes its part into one temporary folder; the main process renames it into place.
    ``extra_files`` (name -> existing file) are linked into the checkpoint, e.g. the best model so far.
    ``training_over``: no step is left to take and the best model is among ``extra_files``, so the
    model, optimizer and scheduler states would never be read again; only the random-number states are
    written (what runs after the fit may draw from them), not the hundreds of megabytes of AdamW's moments.
    """

    def finish(tmp: Path) -> None:
        for name, source in (extra_files or {}).items():
            if Path(source).is_file():
                link_or_copy(Path(source), tmp / name)
        (tmp / STATE_FILE).write_text(json.dumps(state, indent=2), encoding="utf-8")
        if training_over:
            (tmp / TRAINING_OVER_FILE).write_text("", encoding="utf-8")
        sizes = {p.relative_to(tmp).as_posix(): p.stat().st_size for p in sorted(tmp.rglob("*")) if p.is_file()}
        (tmp / SIZES_FILE).write_text(json.dumps(sizes, indent=1), encoding="utf-8")

    def write_all(tmp: Path) -> None:
        if training_over:
            save_accelerator_state(str(tmp), [], [], [], [], accelerator.process_index, step)
        else:
            accelerator.save_state(str(tmp), safe_serialization=True)

    target = write_collectively(
        accelerator, checkpoint_dir(output_dir) / f"{PREFIX}{step:08d}", write_all, finish, what="checkpoint"
    )
    if accelerator.is_main_process:
        for old in list_checkpoints(output_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return target


def load_checkpoint(accelerator: Any, checkpoint: Path) -> dict[str, Any]:
    """Restore what ``checkpoint`` holds into the prepared objects (all, or the RNG alone); returns its loop state.

    A file of it that cannot be read (cut short, edited, deleted) is one :class:`UserError` naming the checkpoint.
    """
    check_process_count(checkpoint, accelerator.num_processes)
    check_file_sizes(checkpoint)
    try:
        if (Path(checkpoint) / TRAINING_OVER_FILE).is_file():
            override = load_accelerator_state(str(checkpoint), [], [], [], [], accelerator.process_index)
            accelerator.step = override.get("step", accelerator.step)
        else:
            accelerator.load_state(str(checkpoint))
        state = read_state(checkpoint)
    except Exception as err:  # torch, safetensors, pickle and json each raise their own kind for a damaged file
        detail = (str(err).splitlines() or [""])[0][:160]
        raise UserError(
            f"{checkpoint}: a damaged checkpoint ({type(err).__name__}: {detail}). Delete that folder to resume from "
            "the one before it, or start again with --overwrite."
        ) from err
    if not isinstance(state, dict):
        raise UserError(f"{checkpoint / STATE_FILE}: not a loop state. Delete {checkpoint} to resume from the one before it.")
    return state


def check_process_count(checkpoint: Path, processes: int) -> None:
    """Refuse to resume with another number of processes than wrote ``checkpoint`` (one random-state file each):
    the rows a step takes, the steps an epoch has and the schedule would all change mid-run."""
    written = len(list(Path(checkpoint).glob("random_states_*.pkl")))
    if written and written != processes:
        raise UserError(
            f"{checkpoint}: written by {written} process(es), resumed with {processes}; the batches of a step and the "
            f"schedule would change, so --resume would mix two different trainings. Resume with {written} process(es) "
            f"({'accelerate launch --num_processes ' + str(written) if written > 1 else 'without accelerate launch'}), "
            "or start again with --overwrite."
        )


def check_file_sizes(checkpoint: Path) -> None:
    """Refuse a checkpoint a file of which is missing or has another size than it was written with (checkpoints
    written before the sizes were recorded are not checked)."""
    sizes_file = Path(checkpoint) / SIZES_FILE
    if not sizes_file.is_file():
        return
    try:
        sizes = json.loads(sizes_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        sizes = None
    if not isinstance(sizes, dict):
        raise UserError(f"{sizes_file}: damaged. Delete {checkpoint} to resume from the checkpoint before it.")
    for name, size in sizes.items():
        path = Path(checkpoint) / name
        found = path.stat().st_size if path.is_file() else None
        if found != size:
            now = "missing" if found is None else f"{found:,} bytes"
            raise UserError(
                f"{checkpoint}: a damaged checkpoint ({name} was written with {size:,} bytes, now {now}). Delete that "
                "folder to resume from the one before it, or start again with --overwrite."
            )


def read_state(checkpoint: Path) -> dict[str, Any]:
    """The loop state saved with a checkpoint."""
    return json.loads((Path(checkpoint) / STATE_FILE).read_text(encoding="utf-8"))


def remove_checkpoints(output_dir: Path) -> None:
    """Delete RUN_DIR/checkpoints once the final model is saved."""
    shutil.rmtree(checkpoint_dir(output_dir), ignore_errors=True)
