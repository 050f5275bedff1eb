"""Full fine-tuning: every parameter trains, optionally with layer-wise learning-rate decay."""

from __future__ import annotations

from torch import nn

from nlp_transfer.transfer.base import Strategy, register_strategy
from nlp_transfer.transfer.groups import ParamGroups, layerwise_groups


@register_strategy
class FullFineTuning(Strategy):
    """Every parameter trains at ``training.learning_rate`` (or layer-wise decayed rates with ``transfer.layer_lr_decay``)."""

    name = "full"

    def parameter_groups(self, model: nn.Module, *, learning_rate: float, weight_decay: float) -> ParamGroups:
        """All parameters, one group pair per block when the learning rate decays by depth."""
        for param in model.parameters():
            param.requires_grad_(True)
        return layerwise_groups(
            model, learning_rate=learning_rate, weight_decay=weight_decay, layer_lr_decay=self.options.layer_lr_decay
        )
