"""Callbacks: how a strategy acts during training without the loop knowing which strategy runs.

The loop calls every callback at three points. Each gets the unwrapped model, the optimizer and a
counter, and must derive what it does from those alone, so a resumed run is set up exactly as the
uninterrupted one was.
"""

from __future__ import annotations

from typing import Any

from torch import nn


class TrainingCallback:
    """Override the points you need; the defaults do nothing."""

    def on_train_start(self, model: nn.Module, optimizer: Any, global_step: int) -> None:
        """Before the first batch of this process's run (``global_step`` > 0 on resume)."""

    def on_epoch_start(self, model: nn.Module, optimizer: Any, epoch: int) -> None:
        """Before each epoch (0-based), on resume too."""

    def on_step_end(self, model: nn.Module, optimizer: Any, global_step: int) -> None:
        """After every optimizer step."""
