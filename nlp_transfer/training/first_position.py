"""Compute the last encoder layer for the one position a classification head reads.

A sequence-classification head of the BERT family reads one vector, the last layer's output at the first
position ([CLS] or <s>). Every other position of the last layer is computed and thrown away: its query, its
attention output and its feed-forward block, about five sixths of that layer's work. With
:func:`first_position_only` the last layer computes keys and values for every token (the first position
attends to all of them) and the rest for the first position alone. The logits are the same to float
rounding; a six-layer encoder does about 14 % less work. In training the layer's dropout masks are drawn for
the whole layer and sliced, so the random stream and every draw are those of the full layer: training with and
without the block is the same run to float rounding. Prediction always uses it, training with
``training.skip_unread_positions`` (on by default). The weights and the saved model do not change.

Supported: BERT, RoBERTa, XLM-RoBERTa, CamemBERT and ELECTRA sequence classifiers with eager or SDPA
attention. Anything else runs as it is.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nlp_transfer.training.dropout_masks import MaskSource, eager_attention, masks_of
from nlp_transfer.transfer.layers import find_layer_stack

#: model types whose sequence-classification head reads the last layer at position 0 alone
FIRST_POSITION_HEADS = frozenset({"bert", "roberta", "xlm-roberta", "camembert", "electra"})


def unread_last_layer(model: nn.Module) -> nn.Module | None:
    """The last encoder layer of ``model`` when its head reads only the first position and the layer is supported.

    ``model`` is a transformers sequence classifier, possibly inside a peft wrapper; None for anything else.
    """
    model = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = getattr(model, "config", None)
    if config is None or not type(model).__name__.endswith("ForSequenceClassification"):
        return None
    if config.model_type not in FIRST_POSITION_HEADS or getattr(config, "is_decoder", False):
        return None
    if getattr(config, "_attn_implementation", "eager") not in ("eager", "sdpa"):
        return None
    layer = find_layer_stack(model)[1][-1]
    attention = getattr(getattr(layer, "attention", None), "self", None)
    needed = ("query", "key", "value", "num_attention_heads", "attention_head_size", "scaling", "dropout")
    if attention is None or not all(hasattr(attention, name) for name in needed):
        return None
    blocks = (getattr(layer.attention, "output", None), getattr(layer, "output", None))
    if not hasattr(layer, "intermediate") or not all(
        all(hasattr(block, name) for name in ("dense", "dropout", "LayerNorm")) for block in blocks
    ):
        return None
    return layer


def _first_position_forward(
    layer: nn.Module, hidden_states: torch.Tensor, attention_mask: Any = None, *args: Any, **kwargs: Any
) -> torch.Tensor:
    """The layer's output at position 0 alone (shape batch x 1 x hidden), from every position's keys and values.

    In training its dropout masks are drawn whole and sliced (:func:`_dropout_drawn_whole`), so a run makes the
    same draws as without the block.
    """
    if attention_mask is not None and (not torch.is_tensor(attention_mask) or attention_mask.dim() != 4):
        return layer._full_forward(hidden_states, attention_mask, *args, **kwargs)
    attention = layer.attention.self
    batch, length = hidden_states.shape[:2]
    first = hidden_states[:, :1]
    heads = (batch, -1, attention.num_attention_heads, attention.attention_head_size)
    query = attention.query(first).view(heads).transpose(1, 2)
    key = attention.key(hidden_states).view(heads).transpose(1, 2)
    value = attention.value(hidden_states).view(heads).transpose(1, 2)
    mask = attention_mask[:, :, :1] if attention_mask is not None else None  # the first query's row
    if layer.training and attention.dropout.p > 0:
        whole, source = (batch, attention.num_attention_heads, length, length), masks_of(layer)
        drop = lambda probabilities, p: _dropout_drawn_whole(probabilities, whole, p, source)  # noqa: E731
        context = eager_attention(query, key, value, mask, attention.scaling, attention.dropout.p, drop)
    else:
        context = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, scale=attention.scaling)
        context = context.transpose(1, 2)
    context = context.reshape(batch, 1, -1)
    whole = hidden_states.shape  # both residual blocks return the hidden size at every position
    attended = _residual_block(layer.attention.output, context, first, whole, layer.training)
    return _residual_block(layer.output, layer.intermediate(attended), attended, whole, layer.training)


def _residual_block(block: nn.Module, inputs: torch.Tensor, residual: torch.Tensor, whole: tuple, training: bool) -> torch.Tensor:
    """``block``'s dense, dropout, then LayerNorm of the sum with ``residual`` (BERT's SelfOutput and Output)."""
    hidden = block.dense(inputs)
    if training:
        hidden = _dropout_drawn_whole(hidden, whole, block.dropout.p, masks_of(block))
    return block.LayerNorm(hidden + residual)


def _dropout_drawn_whole(first: torch.Tensor, whole: tuple[int, ...], p: float, source: MaskSource | None) -> torch.Tensor:
    """Dropout of ``first``, the first-position slice (on the second-last axis) of a tensor of shape ``whole``.

    The mask is drawn for the whole shape, as the full layer's dropout draws it (``bernoulli_`` on a tensor of
    that shape, or ``source``'s masks under ``training.fast_dropout_masks``), and then sliced: the random stream
    advances as without the block, and position 0 keeps the very draws it would have had, so training with and
    without gives the same run to float rounding.
    """
    if p == 0:
        return first
    if source is not None:
        return first * source.noise(whole, p, first.dtype).narrow(len(whole) - 2, 0, 1)
    mask = first.new_empty(whole).bernoulli_(1 - p).narrow(len(whole) - 2, 0, 1)
    return first * mask.div_(1 - p)


@contextmanager
def first_position_only(model: nn.Module, enabled: bool = True) -> Iterator[bool]:
    """Within the block, ``model``'s last layer computes only the position its head reads; yields whether it does.

    ``model`` is the module whose forward gives the logits: a wrapper that pools every position (a mean-pooling
    run's ``MeanPooledModel``) is not a sequence classifier here, so nothing changes, whatever it holds inside.

    The layer's own forward comes back on exit. Outside the block the model is untouched (its hidden states,
    if asked for, cover every position).
    """
    layer = unread_last_layer(model) if enabled else None
    if layer is None or "_full_forward" in vars(layer):  # unsupported, or already inside such a block
        yield layer is not None
        return
    layer._full_forward = layer.forward
    layer.forward = types.MethodType(_first_position_forward, layer)
    try:
        yield True
    finally:
        del layer.forward
        del layer._full_forward
