"""Full fine-tuning: every parameter trains, optionally with layer-wise learning-rate decay.

With ``transfer.pooling=mean`` the head reads the mean of the token states (how sentence-embedding models
such as the default one were trained) instead of the first token; the run records it and nlp-transfer
reloads it so (see :mod:`nlp_transfer.transfer.feature_extraction`).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from nlp_transfer.transfer.base import Strategy, register_strategy
from nlp_transfer.transfer.feature_extraction import unwrap_pooling, with_pooling
from nlp_transfer.transfer.groups import ParamGroups, layerwise_groups


@register_strategy
class FullFineTuning(Strategy):
    """Every parameter trains at ``training.learning_rate`` (or layer-wise decayed rates with ``transfer.layer_lr_decay``)."""

    name = "full"
    logits_only = True  # trains through the model's own forward: the last layer may skip unread positions
    pools_tokens = True

    def prepare_model(self, model: nn.Module) -> nn.Module:
        """``model`` after the extensions; with ``transfer.pooling=mean`` its head reads the mean of the token states."""
        return with_pooling(super().prepare_model(model), self.options.pooling)

    def parameter_groups(self, model: nn.Module, *, learning_rate: float, weight_decay: float) -> ParamGroups:
        """All parameters, one group pair per block when the learning rate decays by depth."""
        for param in model.parameters():
            param.requires_grad_(True)
        return layerwise_groups(
            unwrap_pooling(model),
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            layer_lr_decay=self.options.layer_lr_decay,
        )

    def run_info(self) -> dict[str, Any]:
        """The pooling the head reads (``cls``, the Hugging Face heads' own, or ``mean``)."""
        return {"pooling": self.options.pooling}
