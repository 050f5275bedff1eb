"""Ending the process group of a multi-process run once, when the whole run is over (light: no torch import)."""

from __future__ import annotations

import sys


def end_process_group() -> None:
    """Tear down a process group a multi-process run started, whatever way the run ended.

    ``Accelerator.end_training()`` does this too, which is why no single training run calls it: a self-training run
    trains several in one process group. A run that stops on an error would otherwise leave the group to the
    interpreter's exit, where gloo's threads can abort the process (``terminate called without an active exception``,
    exit -6 instead of 2).
    """
    distributed = sys.modules.get("torch.distributed")  # a verb that never imported torch started no group
    if distributed is not None and distributed.is_available() and distributed.is_initialized():
        distributed.destroy_process_group()
