"""Transfer strategies: which parameters train, and with which learning rates.

A strategy is a function ``(model, *, learning_rate, weight_decay, options) -> parameter groups``.
It sets ``requires_grad`` on the model and returns the groups for the optimizer; the training loop
does not know which strategy ran. Add one by writing the function and naming it in ``STRATEGIES``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from nlp_transfer.config import TransferConfig
from nlp_transfer.errors import ConfigError
from nlp_transfer.transfer.layers import find_encoder_parts

ParamGroups = list[dict[str, Any]]

NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "layernorm.weight", "norm.weight")


def parameter_groups(model: nn.Module, names: list[str], *, learning_rate: float, weight_decay: float) -> ParamGroups:
    """AdamW groups for ``names``: weight decay on weights, none on biases and norms."""
    params = dict(model.named_parameters())
    decay = [params[n] for n in names if not n.endswith(NO_DECAY)]
    no_decay = [params[n] for n in names if n.endswith(NO_DECAY)]
    groups = [
        {
            "params": decay,
            "lr": learning_rate,
            "weight_decay": weight_decay,
            "names": [n for n in names if not n.endswith(NO_DECAY)],
        },
        {"params": no_decay, "lr": learning_rate, "weight_decay": 0.0, "names": [n for n in names if n.endswith(NO_DECAY)]},
    ]
    return [g for g in groups if g["params"]]


def full_finetuning(model: nn.Module, *, learning_rate: float, weight_decay: float, options: TransferConfig) -> ParamGroups:
    """Every parameter trains at ``learning_rate``."""
    for param in model.parameters():
        param.requires_grad_(True)
    names = [n for n, _ in model.named_parameters()]
    return parameter_groups(model, names, learning_rate=learning_rate, weight_decay=weight_decay)


def frozen_encoder(model: nn.Module, *, learning_rate: float, weight_decay: float, options: TransferConfig) -> ParamGroups:
    """Feature extraction: the pretrained encoder is frozen and only the task head trains.

    The pooler (BERT's dense+tanh over [CLS]) counts as head unless ``options.freeze_pooler``.
    """
    parts = find_encoder_parts(model)
    head = set(parts.head)
    if options.freeze_pooler:
        head = {n for n in head if ".pooler." not in n}
    for name, param in model.named_parameters():
        param.requires_grad_(name in head)
    names = [n for n, _ in model.named_parameters() if n in head]
    return parameter_groups(model, names, learning_rate=learning_rate, weight_decay=weight_decay)


STRATEGIES: dict[str, Callable[..., ParamGroups]] = {
    "full": full_finetuning,
    "frozen": frozen_encoder,
}


def apply_strategy(
    model: nn.Module, strategy: str, *, learning_rate: float, weight_decay: float, options: TransferConfig | None = None
) -> ParamGroups:
    """Apply the named strategy to ``model`` and return its optimizer parameter groups."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"strategy '{strategy}' is unknown; choose one of {', '.join(STRATEGIES)}.")
    return STRATEGIES[strategy](
        model, learning_rate=learning_rate, weight_decay=weight_decay, options=options or TransferConfig()
    )


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total
