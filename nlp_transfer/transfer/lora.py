"""Parameter-efficient fine-tuning: peft adapters (LoRA, DoRA or IA3) plus the task head; the rest is frozen.

The adapters themselves are built in :mod:`nlp_transfer.transfer.peft_adapters`. The run is saved as
RUN_DIR/adapter and, with ``transfer.save_merged`` (the default), as a plain model with the adapter merged in.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from nlp_transfer.transfer.base import Strategy, register_strategy
from nlp_transfer.transfer.groups import ParamGroups, layerwise_groups, trainable_names
from nlp_transfer.transfer.peft_adapters import add_adapters, is_peft_model, save_adapter_model


@register_strategy
class LoRA(Strategy):
    """Adapters by ``transfer.peft_method`` on ``transfer.lora_target_modules`` (or the architecture's default)."""

    name = "lora"
    logits_only = True  # trains through the model's own forward: the last layer may skip unread positions
    trains_embeddings = False
    uses_layer_lr_decay = False
    own_options = frozenset(
        {"peft_method", "lora_r", "lora_alpha", "lora_dropout", "lora_target_modules", "lora_pooler", "save_merged"}
    )

    def prepare_model(self, model: nn.Module) -> nn.Module:
        """The model wrapped in a ``peft.PeftModel`` with fresh adapters."""
        return add_adapters(super().prepare_model(model), self.options)

    def parameter_groups(self, model: nn.Module, *, learning_rate: float, weight_decay: float) -> ParamGroups:
        """The adapters and the head (a model not yet prepared gets its adapters injected in place)."""
        if not is_peft_model(model) and not hasattr(model, "peft_config"):
            add_adapters(model, self.options)
        return layerwise_groups(model, trainable_names(model), learning_rate=learning_rate, weight_decay=weight_decay)

    def save(self, model: nn.Module, output_dir: Path, state_dict: dict[str, torch.Tensor] | None) -> None:
        """RUN_DIR/adapter, and the merged plain model unless ``transfer.save_merged`` is false."""
        if not save_adapter_model(model, output_dir, self.options):
            super().save(model, output_dir, state_dict)
