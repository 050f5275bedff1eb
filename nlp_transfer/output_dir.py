"""What ``--overwrite`` may replace, and replacing an earlier run only once the new one has finished.

An earlier run moves aside to ``.NAME.replaced`` beside it while the new run trains. When the new run finishes, that
folder is deleted; when it fails before its first checkpoint, the earlier run moves back, so a run that dies on bad
settings never costs the run it was meant to replace. A run that failed after a checkpoint stays for ``--resume``, and
the earlier one waits in ``.NAME.replaced`` until a run in that folder finishes.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from nlp_transfer.errors import UserError

#: files and folders of which any one says "a run of nlp-transfer wrote this folder"
RUN_MARKERS = ("config.yaml", "run_info.json", "metrics.json", "checkpoints", "adapt.json", "self_training")


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


def move_aside(output_dir: Path, aside: Path) -> None:
    """Make way for a new run in ``output_dir``, never losing a finished run.

    A finished run there (``metrics.json``) moves to ``aside``. An unfinished one, left for ``--resume`` by an earlier
    ``--overwrite`` that failed after a checkpoint, is deleted: the finished run it was to replace already waits in
    ``aside`` and stays there.
    """
    if aside.is_dir() and not (output_dir / "metrics.json").is_file():
        shutil.rmtree(output_dir)
        print(f"replacing the unfinished run in {output_dir}; the finished one still waits in {aside}", file=sys.stderr)
        return
    shutil.rmtree(aside, ignore_errors=True)
    output_dir.rename(aside)
    print(f"replacing {output_dir}: the earlier run waits in {aside} until this one finishes", file=sys.stderr)


@contextmanager
def replaced_on_success(
    output_dir: Path, replace: bool, accelerator: Any, resumable: Callable[[Path], bool] = has_checkpoint
) -> Iterator[None]:
    """Move an earlier run aside (``replace``) while the block trains; delete it on success, restore it on early failure.

    The main process of ``accelerator`` (an ``Accelerator`` or a ``PartialState``) moves the folders; the others wait
    until the earlier run is out of the way. A failed run is kept instead when ``resumable(output_dir)`` says that
    ``--resume`` can continue it (by default: it wrote a checkpoint).
    """
    aside, main = replaced_path(output_dir), accelerator.is_main_process
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
