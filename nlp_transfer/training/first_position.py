"""Compute the last encoder layer for the one position a classification head reads.

A sequence-classification head of the BERT family reads one vector, the last layer's output at the first
position ([CLS] or <s>). Every other position of the last layer is computed and thrown away: its query, its
attention output and its feed-forward block, about five sixths of that layer's work. With
:func:`first_position_only` the last layer computes keys and values for every token (the first position
attends to all of them) and the rest for the first position alone. The logits are the same to float
rounding; a six-layer encoder does about 14 % less work. Prediction always uses it; training only with
``training.skip_unread_positions: true`` (off by default: validation accuracy agreed over 35 paired seeds, but test
accuracy on small training sets leaned lower for reasons not found; BENCHMARKS.md, 2026-12-04). The weights and the
saved model do not change.

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
    if not hasattr(layer.attention, "output") or not hasattr(layer, "feed_forward_chunk"):
        return None
    return layer


def _first_position_forward(
    layer: nn.Module, hidden_states: torch.Tensor, attention_mask: Any = None, *args: Any, **kwargs: Any
) -> torch.Tensor:
    """The layer's output at position 0 alone (shape batch x 1 x hidden), from every position's keys and values."""
    if attention_mask is not None and (not torch.is_tensor(attention_mask) or attention_mask.dim() != 4):
        return layer._full_forward(hidden_states, attention_mask, *args, **kwargs)
    attention = layer.attention.self
    batch = hidden_states.shape[0]
    first = hidden_states[:, :1]
    heads = (batch, -1, attention.num_attention_heads, attention.attention_head_size)
    query = attention.query(first).view(heads).transpose(1, 2)
    key = attention.key(hidden_states).view(heads).transpose(1, 2)
    value = attention.value(hidden_states).view(heads).transpose(1, 2)
    mask = attention_mask[:, :, :1] if attention_mask is not None else None  # the first query's row
    context = F.scaled_dot_product_attention(
        query,
        key,
        value,
        attn_mask=mask,
        dropout_p=attention.dropout.p if layer.training else 0.0,
        scale=attention.scaling,
    )
    context = context.transpose(1, 2).reshape(batch, 1, -1)
    return layer.feed_forward_chunk(layer.attention.output(context, first))


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
