"""How every verb ends: a user error becomes one line and exit code 2, and nothing is left running."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import traceback
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from nlp_transfer.errors import UserError, without_secrets
from nlp_transfer.files import disk_error, disk_error_message
from nlp_transfer.process_group import end_process_group

EXIT_USER_ERROR = 2
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a writer whose reader closed the pipe

#: what a path the user named can do wrong (an output folder that cannot be made, a file where a folder goes, ...)
PATH_ERRORS = (FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError, NotADirectoryError)


def quiet_libraries(debug: bool) -> None:
    """Keep library chatter (load reports, progress bars of datasets) out of normal runs."""
    if debug:
        return
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.getLogger("accelerate").setLevel(logging.ERROR)
    # deprecation notices one library raises about another's API (peft loading an adapter warned of transformers')
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"(transformers|peft|accelerate|datasets|torch)\b")
    transformers, datasets = sys.modules.get("transformers"), sys.modules.get("datasets")
    if transformers is None:  # not imported yet: their own variables quiet them, and a verb that never needs them
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # does not pay seconds to import them
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    else:
        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    if datasets is None:
        os.environ.setdefault("DATASETS_VERBOSITY", "error")
        os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    else:
        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()


#: what an interrupted verb says; training verbs (``resumable``) can continue from their last checkpoint
INTERRUPTED = "interrupted; files already complete are kept, and nothing half-written replaced them."
INTERRUPTED_RESUMABLE = "interrupted; rerun with --resume to continue from the last checkpoint."
INTERRUPTED_BEFORE_CHECKPOINT = (
    "interrupted before the first checkpoint, so there is nothing to resume; start again (with --overwrite where the "
    "run folder exists), and set training.save_steps to checkpoint within an epoch."
)


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While the block runs, SIGTERM (``timeout``, ``docker stop``, a cancelled CI job) ends it as Ctrl-C does.

    Python's default is to die at once, skipping ``finally`` blocks, so staging folders and partial files would stay
    behind; raising ``KeyboardInterrupt`` runs them. The earlier handler comes back afterwards. Only the main thread
    can set a handler; elsewhere the block runs unchanged.
    """

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    earlier = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, earlier)


def guard(
    debug: bool,
    action: Callable[[], Any],
    rename: Callable[[str], str] = str,
    *,
    resumable: bool | Callable[[], bool] = False,
) -> int:
    """Run ``action``; user errors, paths that cannot be read or written, and writes that find no room (a full disk, a
    file-size limit, a quota, a read-only disk) become one message and exit code 2.

    ``rename`` rewrites a user error's message (verbs that take flags name the flag where readers name a config key);
    ``resumable``: the verb takes ``--resume``, which its interrupted message then names; a callable says whether
    the run has a checkpoint to resume from by then. SIGTERM ends the verb as Ctrl-C does (exit 130), so its cleanup
    runs.
    """
    try:
        with sigterm_as_interrupt():
            action()
    except UserError as err:
        if debug:
            traceback.print_exc()
        print(f"error: {without_secrets(rename(str(err)))}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(_interrupted_message(resumable), file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`nlp-transfer config | head`): stop quietly, as `yes | head` does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes at exit
        return EXIT_BROKEN_PIPE
    except Exception as err:
        message = _path_or_disk_message(err)
        if message is None:
            raise
        if debug:
            traceback.print_exc()
        print(f"error: {without_secrets(message)}", file=sys.stderr)
        return EXIT_USER_ERROR
    finally:
        end_process_group()
    return 0


def _path_or_disk_message(err: Exception) -> str | None:
    """The one line for a path the user named that cannot be used, or for a write that found no room (a full disk, a
    file-size limit, a quota, a read-only disk; also as safetensors or torch report it); None for anything else."""
    if isinstance(err, PATH_ERRORS) and err.filename is not None:
        return f"{err.filename}: {err.strerror}. Give a path that exists and that you may write to."
    found = disk_error(err)
    return None if found is None else disk_error_message(found)


def _interrupted_message(resumable: bool | Callable[[], bool]) -> str:
    """What an interrupted verb says: resume when it has a checkpoint, start again when it stopped before one."""
    if not resumable:
        return INTERRUPTED
    if callable(resumable) and not resumable():
        return INTERRUPTED_BEFORE_CHECKPOINT
    return INTERRUPTED_RESUMABLE
