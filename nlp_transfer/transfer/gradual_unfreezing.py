"""ULMFiT's gradual unfreezing: the head trains first, then one more block from the top each phase.

A phase is ``transfer.unfreeze_every`` epochs, or ``transfer.unfreeze_every_steps`` optimizer steps.
Blocks unfreeze from the top layer down, the embeddings last. The optimizer holds every parameter from
the start (a frozen one gets no gradient, so AdamW leaves it untouched): its state and the LR schedule
stay valid, and a resumed run rebuilds the same state. The callbacks move the model from phase to
phase using the epoch or step number alone, so a resumed run is set up as the uninterrupted one was.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import torch
from torch import nn

from nlp_transfer.config import RunConfig
from nlp_transfer.errors import ConfigError, UserError
from nlp_transfer.training.callbacks import TrainingCallback
from nlp_transfer.transfer.base import Strategy, register_strategy
from nlp_transfer.transfer.groups import ParamGroups, depth_blocks, layerwise_groups, set_trainable
from nlp_transfer.transfer.layers import EncoderParts, find_encoder_parts

logger = logging.getLogger(__name__)


def unfrozen_blocks(parts: EncoderParts, phase: int, unfreeze_every: int) -> list[str]:
    """Names of the blocks that train in ``phase`` (head always; one more every ``unfreeze_every`` phases)."""
    if unfreeze_every < 1:
        raise ConfigError(f"transfer.unfreeze_every must be at least 1, got {unfreeze_every}.")
    return [name for name, _ in depth_blocks(parts)[: 1 + phase // unfreeze_every]]


def set_gradual_unfreezing(model: nn.Module, parts: EncoderParts, phase: int, unfreeze_every: int) -> list[str]:
    """Set ``requires_grad`` for ``phase`` of gradual unfreezing; returns the training blocks' names."""
    chosen = unfrozen_blocks(parts, phase, unfreeze_every)
    set_trainable(model, {n for block, names in depth_blocks(parts) if block in chosen for n in names})
    return chosen


def refuse_multiple_processes() -> None:
    """DDP registers the parameters that require grad when it wraps the model: later unfrozen layers would drift.

    ``accelerate launch`` sets WORLD_SIZE in each process, so this refuses before the data or model load (the process
    group itself starts later) and before the run folder exists."""
    launched = int(os.environ.get("WORLD_SIZE", "1") or 1) > 1
    if launched or (
        torch.distributed.is_available() and torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1
    ):
        raise UserError(
            "strategy=gradual_unfreezing runs in one process (DDP cannot sync layers unfrozen after the start). "
            "Launch it without multiple processes, or use strategy=freeze_layers."
        )


class UnfreezeByEpoch(TrainingCallback):
    """Before each epoch, set which blocks train from the epoch number."""

    def __init__(self, parts: EncoderParts, unfreeze_every: int) -> None:
        self.parts, self.unfreeze_every = parts, unfreeze_every

    def on_epoch_start(self, model: nn.Module, optimizer: Any, epoch: int) -> None:
        """Unfreeze the blocks of this epoch's phase."""
        blocks = set_gradual_unfreezing(model, self.parts, epoch, self.unfreeze_every)
        logger.info("gradual unfreezing, epoch %d: training %s", epoch + 1, ", ".join(blocks))


class UnfreezeBySteps(TrainingCallback):
    """At the start and after each optimizer step, set which blocks train from the step number."""

    def __init__(self, parts: EncoderParts, every: int) -> None:
        self.parts, self.every, self.phase = parts, every, -1

    def on_train_start(self, model: nn.Module, optimizer: Any, global_step: int) -> None:
        """Set the phase the run starts (or resumes) in."""
        self.on_step_end(model, optimizer, global_step)

    def on_step_end(self, model: nn.Module, optimizer: Any, global_step: int) -> None:
        """Unfreeze the next block when a phase boundary is crossed."""
        phase = global_step // self.every
        if phase != self.phase:  # requires_grad changes only at a phase boundary
            self.phase = phase
            blocks = set_gradual_unfreezing(model, self.parts, phase, 1)
            logger.info("gradual unfreezing, step %d: training %s", global_step, ", ".join(blocks))


@register_strategy
class GradualUnfreezing(Strategy):
    """The first phase trains the head, each later phase one more block (top layer first, embeddings last)."""

    name = "gradual_unfreezing"
    own_options = frozenset({"unfreeze_every", "unfreeze_every_steps"})
    logits_only = True  # trains through the model's own forward: the last layer may skip unread positions

    def check(self, config: RunConfig) -> None:
        """Unfreezing goes by epochs or by steps: both set is refused (the epochs were ignored)."""
        options = config.transfer
        if options.unfreeze_every_steps is not None and options.unfreeze_every != 1:
            raise ConfigError(
                f"transfer.unfreeze_every={options.unfreeze_every} and transfer.unfreeze_every_steps="
                f"{options.unfreeze_every_steps} both set the pace of unfreezing; keep one of them."
            )
        refuse_multiple_processes()
        super().check(config)

    def parameter_groups(self, model: nn.Module, *, learning_rate: float, weight_decay: float) -> ParamGroups:
        """Every parameter in the optimizer (layer-wise rates if set); the model is left as in phase 0."""
        every_steps = self.options.unfreeze_every_steps
        if every_steps is not None and every_steps < 1:
            raise ConfigError(f"transfer.unfreeze_every_steps must be at least 1 (or null), got {every_steps}.")
        parts = find_encoder_parts(model)
        set_gradual_unfreezing(model, parts, 0, self.options.unfreeze_every)
        return layerwise_groups(
            model, learning_rate=learning_rate, weight_decay=weight_decay, layer_lr_decay=self.options.layer_lr_decay, parts=parts
        )

    def callbacks(self, model: nn.Module) -> list[TrainingCallback]:
        """Unfreeze by step phases when ``unfreeze_every_steps`` is set, else by epochs."""
        parts = find_encoder_parts(model)
        refuse_multiple_processes()
        if self.options.unfreeze_every_steps is not None:
            return [UnfreezeBySteps(parts, self.options.unfreeze_every_steps)]
        return [UnfreezeByEpoch(parts, self.options.unfreeze_every)]
