"""Transfer strategies: which parameters train, and with which learning rates.

A strategy is a function ``(model, *, learning_rate, weight_decay, options) -> parameter groups``.
It sets ``requires_grad`` on the model and returns the groups for the optimizer; the training loop
does not know which strategy ran. Add one by writing the function and naming it in ``STRATEGIES``.

Two optional hooks complete a strategy, each a registry keyed by the strategy's name:

- ``MODEL_PREPARERS[name](model, options) -> model`` runs before the strategy and may wrap the
  model (``lora`` returns a ``peft.PeftModel``). :func:`prepare_model` applies it.
- ``EPOCH_CALLBACKS[name](model, options) -> callback`` builds the ``epoch_callback(model, optimizer,
  epoch)`` that :func:`nlp_transfer.training.fit` calls before each epoch (gradual unfreezing).
  :func:`strategy_epoch_callback` returns it, or None. ``STEP_CALLBACKS`` and
  :func:`strategy_step_callback` do the same for ``step_callback(model, optimizer, global_step)``.

Every group-building strategy goes through :func:`layerwise_groups`, the one place that assigns
learning rates (layer-wise decay) and weight decay.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from nlp_transfer.config import TransferConfig
from nlp_transfer.errors import ConfigError, UserError
from nlp_transfer.transfer.feature_extraction import keep_encoder_in_eval
from nlp_transfer.transfer.layers import EncoderParts, find_encoder_parts

logger = logging.getLogger(__name__)

ParamGroups = list[dict[str, Any]]
EpochCallback = Callable[[nn.Module, Any, int], None]
StepCallback = Callable[[nn.Module, Any, int], None]

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


def _no_layer_decay(options: TransferConfig, strategy: str) -> None:
    if options.layer_lr_decay != 1.0:
        raise ConfigError(
            f"transfer.layer_lr_decay applies to full, freeze_layers and gradual_unfreezing, not to strategy={strategy}; "
            "remove it or pick one of those strategies."
        )


def _set_trainable(model: nn.Module, names: set[str]) -> None:
    for name, param in model.named_parameters():
        param.requires_grad_(name in names)


def full_finetuning(model: nn.Module, *, learning_rate: float, weight_decay: float, options: TransferConfig) -> ParamGroups:
    """Every parameter trains at ``learning_rate`` (or layer-wise decayed rates with ``layer_lr_decay``)."""
    for param in model.parameters():
        param.requires_grad_(True)
    return layerwise_groups(model, learning_rate=learning_rate, weight_decay=weight_decay, layer_lr_decay=options.layer_lr_decay)


def frozen_encoder(model: nn.Module, *, learning_rate: float, weight_decay: float, options: TransferConfig) -> ParamGroups:
    """Feature extraction: the pretrained encoder is frozen and only the task head trains.

    The pooler (BERT's dense+tanh over [CLS]) counts as head unless ``options.freeze_pooler``.
    The encoder stays in eval mode (no dropout) while the head trains: it is a fixed feature
    extractor, so its outputs can be cached (:mod:`nlp_transfer.transfer.feature_extraction`).
    """
    _no_layer_decay(options, "frozen")
    parts = find_encoder_parts(model)
    head = set(parts.head)
    if options.freeze_pooler:
        head = {n for n in head if ".pooler." not in n}
    _set_trainable(model, head)
    keep_encoder_in_eval(model)
    names = [n for n, _ in model.named_parameters() if n in head]
    return layerwise_groups(model, names, learning_rate=learning_rate, weight_decay=weight_decay)


def freeze_bottom_layers(model: nn.Module, *, learning_rate: float, weight_decay: float, options: TransferConfig) -> ParamGroups:
    """The embeddings and the bottom ``options.freeze_layers`` encoder layers are frozen; the rest trains."""
    parts = find_encoder_parts(model)
    count = options.freeze_layers
    if not 0 <= count <= len(parts.layers):
        raise ConfigError(
            f"transfer.freeze_layers={count}: this model has {len(parts.layers)} encoder layers; choose 0 to {len(parts.layers)}."
        )
    frozen = set(parts.embeddings) | set(parts.other) | {n for layer in parts.layers[:count] for n in layer}
    trainable = {n for n, _ in model.named_parameters() if n not in frozen}
    _set_trainable(model, trainable)
    return layerwise_groups(
        model,
        [n for n, _ in model.named_parameters() if n in trainable],
        learning_rate=learning_rate,
        weight_decay=weight_decay,
        layer_lr_decay=options.layer_lr_decay,
        parts=parts,
    )


def unfrozen_blocks(parts: EncoderParts, phase: int, unfreeze_every: int) -> list[str]:
    """Names of the blocks that train in ``phase`` under gradual unfreezing (head always; one more every N phases).

    A phase is an epoch, or a span of ``transfer.unfreeze_every_steps`` optimizer steps.
    """
    if unfreeze_every < 1:
        raise ConfigError(f"transfer.unfreeze_every must be at least 1, got {unfreeze_every}.")
    blocks = depth_blocks(parts)
    return [name for name, _ in blocks[: 1 + phase // unfreeze_every]]


def set_gradual_unfreezing(model: nn.Module, parts: EncoderParts, phase: int, unfreeze_every: int) -> list[str]:
    """Set ``requires_grad`` for ``phase`` of gradual unfreezing; returns the training blocks' names."""
    chosen = unfrozen_blocks(parts, phase, unfreeze_every)
    names = {n for block, block_names in depth_blocks(parts) if block in chosen for n in block_names}
    _set_trainable(model, names)
    return chosen


def gradual_unfreezing(model: nn.Module, *, learning_rate: float, weight_decay: float, options: TransferConfig) -> ParamGroups:
    """ULMFiT's gradual unfreezing: the first phase trains the head, each later phase one more block.

    A phase is ``unfreeze_every`` epochs, or ``unfreeze_every_steps`` optimizer steps when that is set.
    Blocks unfreeze from the top layer down, the embeddings last. The optimizer holds every
    parameter from the start (a frozen one gets no gradient, so AdamW leaves it untouched): its
    state and the LR schedule stay valid, and a resumed run rebuilds the same state. The model is
    left as in phase 0; the epoch or step callback (:data:`EPOCH_CALLBACKS`, :data:`STEP_CALLBACKS`) moves it on.
    """
    if options.unfreeze_every_steps is not None and options.unfreeze_every_steps < 1:
        raise ConfigError(f"transfer.unfreeze_every_steps must be at least 1 (or null), got {options.unfreeze_every_steps}.")
    parts = find_encoder_parts(model)
    set_gradual_unfreezing(model, parts, 0, options.unfreeze_every)
    return layerwise_groups(
        model, learning_rate=learning_rate, weight_decay=weight_decay, layer_lr_decay=options.layer_lr_decay, parts=parts
    )


def _refuse_multiple_processes() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1:
        # DDP registers the parameters that require grad when it wraps the model: layers unfrozen later
        # would train on each process's own gradients and the copies would drift apart
        raise UserError(
            "strategy=gradual_unfreezing runs in one process (DDP cannot sync layers unfrozen after the start). "
            "Launch it without multiple processes, or use strategy=freeze_layers."
        )


def gradual_unfreezing_callback(model: nn.Module, options: TransferConfig) -> EpochCallback | None:
    """The epoch callback of gradual unfreezing by epoch: sets ``requires_grad`` from the epoch number alone.

    None when the phases are counted in steps (``unfreeze_every_steps``): then the step callback does it.
    """
    if options.unfreeze_every_steps is not None:
        return None
    parts = find_encoder_parts(model)
    _refuse_multiple_processes()

    def callback(model: nn.Module, optimizer: Any, epoch: int) -> None:
        blocks = set_gradual_unfreezing(model, parts, epoch, options.unfreeze_every)
        logger.info("gradual unfreezing, epoch %d: training %s", epoch + 1, ", ".join(blocks))

    return callback


def gradual_unfreezing_step_callback(model: nn.Module, options: TransferConfig) -> StepCallback | None:
    """The step callback of gradual unfreezing in phases of ``unfreeze_every_steps`` steps (None when by epoch)."""
    every = options.unfreeze_every_steps
    if every is None:
        return None
    parts = find_encoder_parts(model)
    _refuse_multiple_processes()
    current = {"phase": -1}

    def callback(model: nn.Module, optimizer: Any, global_step: int) -> None:
        phase = global_step // every
        if phase != current["phase"]:  # requires_grad changes only at a phase boundary
            current["phase"] = phase
            blocks = set_gradual_unfreezing(model, parts, phase, 1)
            logger.info("gradual unfreezing, step %d: training %s", global_step, ", ".join(blocks))

    return callback


def lora_strategy(model: nn.Module, *, learning_rate: float, weight_decay: float, options: TransferConfig) -> ParamGroups:
    """PEFT adapters (LoRA, DoRA or IA3 by ``options.peft_method``) plus the task head; the rest is frozen.

    A model not yet prepared (see :func:`prepare_model`) gets the adapters injected in place.
    """
    from nlp_transfer.transfer.peft_adapters import add_adapters, is_peft_model

    _no_layer_decay(options, "lora")
    if not is_peft_model(model) and not hasattr(model, "peft_config"):
        add_adapters(model, options)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    return layerwise_groups(model, names, learning_rate=learning_rate, weight_decay=weight_decay)


def _prepare_lora(model: nn.Module, options: TransferConfig) -> nn.Module:
    from nlp_transfer.transfer.peft_adapters import add_adapters

    return add_adapters(model, options)


STRATEGIES: dict[str, Callable[..., ParamGroups]] = {
    "full": full_finetuning,
    "frozen": frozen_encoder,
    "freeze_layers": freeze_bottom_layers,
    "gradual_unfreezing": gradual_unfreezing,
    "lora": lora_strategy,
}

#: strategy name -> ``(model, options) -> model``, run by :func:`prepare_model` before the strategy.
MODEL_PREPARERS: dict[str, Callable[[nn.Module, TransferConfig], nn.Module]] = {"lora": _prepare_lora}

#: strategy name -> ``(model, options) -> epoch_callback(model, optimizer, epoch)``.
EPOCH_CALLBACKS: dict[str, Callable[[nn.Module, TransferConfig], EpochCallback | None]] = {
    "gradual_unfreezing": gradual_unfreezing_callback,
}

#: strategy name -> ``(model, options) -> step_callback(model, optimizer, global_step)`` (or None).
STEP_CALLBACKS: dict[str, Callable[[nn.Module, TransferConfig], StepCallback | None]] = {
    "gradual_unfreezing": gradual_unfreezing_step_callback,
}


def _check_strategy(strategy: str) -> None:
    if strategy not in STRATEGIES:
        raise ConfigError(f"strategy '{strategy}' is unknown; choose one of {', '.join(STRATEGIES)}.")


def prepare_model(model: nn.Module, strategy: str, options: TransferConfig | None = None) -> nn.Module:
    """The model the strategy trains: ``model`` itself, or a wrapper of it (a ``PeftModel`` for lora)."""
    _check_strategy(strategy)
    preparer = MODEL_PREPARERS.get(strategy)
    return preparer(model, options or TransferConfig()) if preparer else model


def apply_strategy(
    model: nn.Module, strategy: str, *, learning_rate: float, weight_decay: float, options: TransferConfig | None = None
) -> ParamGroups:
    """Apply the named strategy to ``model`` and return its optimizer parameter groups."""
    _check_strategy(strategy)
    return STRATEGIES[strategy](
        model, learning_rate=learning_rate, weight_decay=weight_decay, options=options or TransferConfig()
    )


def strategy_epoch_callback(model: nn.Module, strategy: str, options: TransferConfig | None = None) -> EpochCallback | None:
    """The ``epoch_callback`` for :func:`nlp_transfer.training.fit` that ``strategy`` needs, or None."""
    _check_strategy(strategy)
    factory = EPOCH_CALLBACKS.get(strategy)
    return factory(model, options or TransferConfig()) if factory else None


def strategy_step_callback(model: nn.Module, strategy: str, options: TransferConfig | None = None) -> StepCallback | None:
    """The ``step_callback`` for :func:`nlp_transfer.training.fit` that ``strategy`` needs, or None."""
    _check_strategy(strategy)
    factory = STEP_CALLBACKS.get(strategy)
    return factory(model, options or TransferConfig()) if factory else None


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts; peft's frozen spare copies of the head (``original_module``) do not count."""
    params = [p for n, p in model.named_parameters() if ".original_module." not in n]
    total = sum(p.numel() for p in params)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    return trainable, total
