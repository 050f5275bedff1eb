"""Optimizer parameter groups: which parameters train, with which learning rate and weight decay.

Every strategy builds its groups through :func:`layerwise_groups`, the one place that assigns
learning rates (layer-wise decay) and weight decay.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from nlp_transfer.errors import ConfigError
from nlp_transfer.transfer.layers import EncoderParts, find_encoder_parts

ParamGroups = list[dict[str, Any]]

NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "layernorm.weight", "norm.weight")


def parameter_groups(model: nn.Module, names: list[str], *, learning_rate: float, weight_decay: float) -> ParamGroups:
    """AdamW groups for ``names``: weight decay on weights, none on biases and norms."""
    params = dict(model.named_parameters())
    decay = [n for n in names if not n.endswith(NO_DECAY)]
    no_decay = [n for n in names if n.endswith(NO_DECAY)]
    groups = [
        {"params": [params[n] for n in decay], "lr": learning_rate, "weight_decay": weight_decay, "names": decay},
        {"params": [params[n] for n in no_decay], "lr": learning_rate, "weight_decay": 0.0, "names": no_decay},
    ]
    return [g for g in groups if g["params"]]


def depth_blocks(parts: EncoderParts) -> list[tuple[str, list[str]]]:
    """The model as (block name, parameter names) from the top down: head, top layer, ..., bottom layer, embeddings.

    Encoder parameters outside the layer stack (``parts.other``, e.g. DeBERTa's relative embeddings)
    sit with the embeddings: they are shared by every layer.
    """
    n = len(parts.layers)
    blocks = [("head", list(parts.head))]
    blocks += [(f"layer.{i}", list(parts.layers[i])) for i in range(n - 1, -1, -1)]
    blocks.append(("embeddings", list(parts.embeddings) + list(parts.other)))
    return blocks


def layerwise_groups(
    model: nn.Module,
    names: list[str] | None = None,
    *,
    learning_rate: float,
    weight_decay: float,
    layer_lr_decay: float = 1.0,
    parts: EncoderParts | None = None,
) -> ParamGroups:
    """AdamW groups for ``names`` (default: every parameter), one pair per block, with layer-wise LR decay.

    Block ``d`` levels below the head (head d=0, top layer d=1, ..., embeddings d=layers+1) gets
    ``learning_rate * layer_lr_decay ** d``. Each group carries ``names`` and ``block``.
    With ``layer_lr_decay == 1`` and no ``parts`` it is :func:`parameter_groups` (no layer discovery needed).
    """
    if not 0 < layer_lr_decay <= 1:
        raise ConfigError(f"transfer.layer_lr_decay must be in (0, 1], got {layer_lr_decay}.")
    wanted = set(n for n, _ in model.named_parameters()) if names is None else set(names)
    if layer_lr_decay == 1.0 and parts is None:
        ordered = [n for n, _ in model.named_parameters() if n in wanted]
        return parameter_groups(model, ordered, learning_rate=learning_rate, weight_decay=weight_decay)
    parts = parts or find_encoder_parts(model)
    groups: ParamGroups = []
    for depth, (block, block_names) in enumerate(depth_blocks(parts)):
        chosen = [n for n in block_names if n in wanted]
        lr = learning_rate * layer_lr_decay**depth
        for group in parameter_groups(model, chosen, learning_rate=lr, weight_decay=weight_decay):
            group["block"] = block
            groups.append(group)
    return groups


def set_trainable(model: nn.Module, names: set[str]) -> None:
    """Parameters named in ``names`` train; every other parameter of ``model`` is frozen."""
    for name, param in model.named_parameters():
        param.requires_grad_(name in names)


def trainable_names(model: nn.Module) -> list[str]:
    """Names of the parameters that train, in model order."""
    return [n for n, p in model.named_parameters() if p.requires_grad]


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts; peft's frozen spare copies of the head (``original_module``) do not count."""
    params = [p for n, p in model.named_parameters() if ".original_module." not in n]
    total = sum(p.numel() for p in params)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    return trainable, total
