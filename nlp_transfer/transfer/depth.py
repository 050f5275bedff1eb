"""Keep only the bottom K layers of the pretrained encoder (``transfer.depth``).

The lower layers of a pretrained encoder carry most of what transfers to many tasks, and each layer
dropped from the top makes training and prediction faster in proportion. ``transfer.depth: K``
removes the layers above the K-th before any strategy sees the model; the model's config says
``num_hidden_layers: K``, so the saved run is a plain, smaller Hugging Face model that loads anywhere.
``nlp-transfer rank`` scores depths before training (candidates such as ``MODEL@depth=3``).
"""

from __future__ import annotations

from torch import nn

from nlp_transfer.errors import UserError
from nlp_transfer.transfer.base import TransferExtension
from nlp_transfer.transfer.layers import find_layer_stack, inspect_layer_stack


def encoder_depth(model: nn.Module) -> int:
    """The number of layers in ``model``'s encoder stack: the layers that run, for a model whose layers share weights
    (ALBERT), which cannot be cut (:func:`keep_bottom_layers` refuses it) but whose last hidden state ``rank`` reads."""
    _, stack, shared = inspect_layer_stack(model)
    return int(model.config.num_hidden_layers) if shared else len(stack)


def keep_bottom_layers(model: nn.Module, depth: int) -> nn.Module:
    """Drop the encoder layers above the ``depth``-th (in place) and record the new count in the config."""
    _, stack = find_layer_stack(model)
    if not 1 <= depth <= len(stack):
        raise UserError(
            f"transfer.depth={depth}: the model has {len(stack)} encoder layers; choose a depth from 1 to {len(stack)}."
        )
    del stack[depth:]
    model.config.num_hidden_layers = depth
    layer_types = getattr(model.config, "layer_types", None)
    if isinstance(layer_types, list):  # architectures that list a type per layer
        model.config.layer_types = layer_types[:depth]
    return model


class KeepBottomLayers(TransferExtension):
    """``transfer.depth``: the model keeps its embeddings, its bottom K layers and its head."""

    def prepare_model(self, model: nn.Module) -> nn.Module:
        """The pretrained model without the layers above ``transfer.depth`` (any strategy, any task)."""
        return keep_bottom_layers(model, self.options.depth)
