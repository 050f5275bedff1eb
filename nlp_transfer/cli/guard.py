"""How every verb ends: a user error becomes one line and exit code 2, and nothing is left running."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

from nlp_transfer.errors import UserError

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


def guard(debug: bool, action: Callable[[], Any], rename: Callable[[str], str] = str) -> int:
    """Run ``action``; user errors, and paths that cannot be read or written, become one message and exit code 2.

    ``rename`` rewrites a user error's message (verbs that take flags name the flag where readers name a config key).
    """
    try:
        action()
    except UserError as err:
        if debug:
            traceback.print_exc()
        print(f"error: {rename(str(err))}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted; rerun with --resume to continue from the last checkpoint.", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`nlp-transfer config | head`): stop quietly, as `yes | head` does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes at exit
        return EXIT_BROKEN_PIPE
    except OSError as err:
        if err.filename is None or not isinstance(err, PATH_ERRORS):
            raise
        if debug:
            traceback.print_exc()
        print(f"error: {err.filename}: {err.strerror}. Give a path that exists and that you may write to.", file=sys.stderr)
        return EXIT_USER_ERROR
    finally:
        end_process_group()
    return 0


def end_process_group() -> None:
    """Tear down a process group a multi-process run started, whatever way the verb ended.

    A run that stops on an error never reaches ``Accelerator.end_training()``; left to the interpreter's exit, gloo's
    threads can abort the process (``terminate called without an active exception``, exit -6 instead of 2).
    """
    distributed = sys.modules.get("torch.distributed")  # a verb that never imported torch started no group
    if distributed is not None and distributed.is_available() and distributed.is_initialized():
        distributed.destroy_process_group()
