"""Python's cyclic garbage collector around the heavy imports and at exit of a command-line process.

Importing torch, transformers, datasets and accelerate creates about half a million Python objects that live as
long as the process. The cyclic collector scans them again and again while they are being created (nine full
passes during the imports of a training run) and once more when the interpreter exits, although none of them is
garbage. Measured on a 2-core VM (BENCHMARKS.md, fourteenth session): the imports take about 1 s less with the
collector paused, and exit about 0.5 s less when the survivors are frozen first.

- :func:`imports_paused` pauses the collector while a block imports modules for the first time, then moves every
  object alive at that point to the collector's permanent generation (``gc.freeze``), so later passes skip them.
- :func:`skip_final_collection` freezes what is alive when the interpreter begins to exit, so the last pass does
  not walk it. Objects are still freed by reference counting throughout; only the collector's scans are skipped.

Only the command line and the recipe scripts use these, and only once :func:`mark_command_line` has seen the
process's own arguments: ``nlp_transfer.cli.main([...])`` called from a notebook or a program leaves the collector
alone (a freeze there would pin the caller's garbage for good), as importing the package does.
"""

from __future__ import annotations

import atexit
import gc
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

_exit_hook_registered = False
_command_line = False  # set by mark_command_line: this process runs one nlp-transfer command and exits


def mark_command_line(argv: Sequence[str] | None) -> None:
    """Note that this process is an nlp-transfer command when ``argv`` is its own command line (``None``, or
    ``sys.argv[1:]``: the console script or a recipe run as a script); arguments passed from Python are not."""
    global _command_line
    if argv is None or list(argv) == sys.argv[1:]:
        _command_line = True


@contextmanager
def imports_paused(module: str) -> Iterator[None]:
    """Pause the collector for the block when ``module`` is not imported yet; freeze what lives after it.

    When ``module`` is already in ``sys.modules`` (a second run in one process, a test suite) the block runs with
    the collector as it was and nothing is frozen, so long-lived processes do not pin their garbage.
    """
    if not _command_line or module in sys.modules or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def skip_final_collection() -> None:
    """At interpreter exit, freeze every live object first, so the collector's last pass has nothing to walk.

    Registered once per process with :mod:`atexit`; it runs after the command has finished and written its files.
    """
    global _exit_hook_registered
    if _command_line and not _exit_hook_registered:
        atexit.register(gc.freeze)
        _exit_hook_registered = True
