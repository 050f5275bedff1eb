"""Freeze the bottom of the encoder: the embeddings and the lowest ``transfer.freeze_layers`` layers stay fixed."""

from __future__ import annotations

from torch import nn

from nlp_transfer.errors import ConfigError
from nlp_transfer.transfer.base import Strategy, register_strategy
from nlp_transfer.transfer.groups import ParamGroups, layerwise_groups, set_trainable
from nlp_transfer.transfer.layers import find_encoder_parts


@register_strategy
class FreezeBottomLayers(Strategy):
    """The embeddings and the bottom ``options.freeze_layers`` encoder layers are frozen; the rest trains."""

    name = "freeze_layers"
    logits_only = True  # trains through the model's own forward: the last layer may skip unread positions
    trains_embeddings = False
    own_options = frozenset({"freeze_layers"})

    def parameter_groups(self, model: nn.Module, *, learning_rate: float, weight_decay: float) -> ParamGroups:
        """The layers above the frozen ones and the head, with layer-wise decay if set."""
        parts = find_encoder_parts(model)
        count = self.options.freeze_layers
        if not 0 <= count <= len(parts.layers):
            raise ConfigError(
                f"transfer.freeze_layers={count}: this model has {len(parts.layers)} encoder layers; "
                f"choose 0 to {len(parts.layers)}."
            )
        frozen = set(parts.embeddings) | set(parts.other) | {n for layer in parts.layers[:count] for n in layer}
        trainable = {n for n, _ in model.named_parameters() if n not in frozen}
        set_trainable(model, trainable)
        return layerwise_groups(
            model,
            [n for n, _ in model.named_parameters() if n in trainable],
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            layer_lr_decay=self.options.layer_lr_decay,
            parts=parts,
        )
