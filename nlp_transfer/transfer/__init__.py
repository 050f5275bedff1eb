"""Transfer strategies (one module each), the options they share, and the layer discovery they rely on.

:func:`build_strategy` turns a run's config into its :class:`~nlp_transfer.transfer.base.Strategy`;
importing this package registers every strategy module below.
"""

from __future__ import annotations

import warnings

from torch import nn

from nlp_transfer.config import RunConfig, TransferConfig
from nlp_transfer.errors import UserError
from nlp_transfer.transfer import contrastive, freeze_layers, frozen, full, gradual_unfreezing, lora  # noqa: F401  (registers them)
from nlp_transfer.transfer.base import STRATEGIES, Strategy, TrainingRun, TransferExtension, register_strategy, strategy_class
from nlp_transfer.transfer.case_vocab import CaseVocabulary
from nlp_transfer.transfer.depth import KeepBottomLayers, encoder_depth, keep_bottom_layers
from nlp_transfer.transfer.groups import ParamGroups, count_parameters, layerwise_groups, parameter_groups
from nlp_transfer.transfer.layers import EncoderParts, find_encoder_parts
from nlp_transfer.transfer.peft_adapters import ADAPTER_DIR, add_adapters, peft_config_for, save_adapter_model

#: ``transfer.<key>: true`` -> the extension that carries that option out
EXTENSIONS: dict[str, type[TransferExtension]] = {"case_vocab": CaseVocabulary, "depth": KeepBottomLayers}


def build_strategy(config: RunConfig) -> Strategy:
    """The run's strategy with its active extensions, its options checked against the config."""
    extensions = [cls(config.transfer) for key, cls in EXTENSIONS.items() if getattr(config.transfer, key)]
    strategy = strategy_class(config.strategy)(config.transfer, extensions)
    strategy.check(config)
    return strategy


def prepare_model(model: nn.Module, strategy: str, options: TransferConfig | None = None) -> nn.Module:
    """The model the named strategy trains, as ``run_training`` prepares it: ``model`` with ``options.depth`` applied,
    itself or a wrapper of it (:class:`MeanPooledModel` for ``pooling="mean"``, a ``PeftModel`` for lora).

    The options are checked as a run's config is (an option of another strategy is refused); ``case_vocab``, which
    also changes the task's tokenizer, is refused: train such a run with ``run_training``.
    """
    return _api_strategy(model, strategy, options).prepare_model(model)


def apply_strategy(
    model: nn.Module, strategy: str, *, learning_rate: float, weight_decay: float, options: TransferConfig | None = None
) -> ParamGroups:
    """Apply the named strategy to ``model`` (set what trains) and return its optimizer parameter groups.

    ``options`` are checked as a run's config is. Options that change the model (``depth``, ``pooling="mean"``) must
    already be applied: pass ``prepare_model(model, strategy, options)``, or a UserError says so. A strategy that moves
    on through callbacks (gradual unfreezing) gets a warning: give ``fit`` its callbacks too,
    ``strategy_class(name)(options).callbacks(model)``, or only the head trains. One whose own ``train`` runs phases
    that ``fit`` would skip (contrastive, or ``head_fit="logistic"``) is refused.
    """
    chosen = _api_strategy(model, strategy, options)
    if not chosen.one_fit_of_its_groups:
        raise UserError(
            f"strategy {strategy!r} trains in phases of its own, which apply_strategy + fit would skip: run it with "
            "run_training(config), as nlp-transfer train does."
        )
    _refuse_unprepared(model, strategy, chosen.options)
    groups = chosen.parameter_groups(model, learning_rate=learning_rate, weight_decay=weight_decay)
    if chosen.callbacks(model):
        warnings.warn(
            f"strategy {strategy!r} unfreezes through callbacks: pass fit(callbacks=strategy_class({strategy!r})"
            "(options).callbacks(model)), or only what trains from the start (the head) will train.",
            stacklevel=2,
        )
    return groups


def _api_strategy(model: nn.Module, strategy: str, options: TransferConfig | None) -> Strategy:
    """The named strategy with the extensions its options ask for, checked as ``run_training`` checks a config.

    The task is read off the model (a token classifier is ``ner``); ``case_vocab`` is refused, as it needs the task.
    """
    options = options or TransferConfig()
    if options.case_vocab:
        raise UserError(
            "options case_vocab=True changes the task's tokenizer as well as the model, which prepare_model and "
            "apply_strategy cannot do: train it with run_training(config), or set case_vocab=False."
        )
    task = "ner" if type(model).__name__.endswith("ForTokenClassification") else "classification"
    extensions = [cls(options) for key, cls in EXTENSIONS.items() if getattr(options, key)]
    chosen = strategy_class(strategy)(options, extensions)
    chosen.check(RunConfig(strategy=strategy, task=task, transfer=options))
    return chosen


def _refuse_unprepared(model: nn.Module, strategy: str, options: TransferConfig) -> None:
    """Refuse options that ``fit`` of the strategy's groups would ignore: ``depth`` or ``pooling="mean"`` not yet
    applied to ``model`` (``prepare_model`` applies them), and ``head_fit="logistic"`` (only ``run_training`` fits it)."""
    from nlp_transfer.transfer.feature_extraction import MeanPooledModel, unwrap_pooling

    prepare = (
        f"call model = nlp_transfer.transfer.prepare_model(model, {strategy!r}, options) first and pass that model to "
        "apply_strategy and fit"
    )
    if options.pooling == "mean" and not isinstance(model, MeanPooledModel):
        raise UserError(f"options pooling='mean' wraps the model so that its head reads the mean of the token states: {prepare}.")
    if options.depth is not None:
        inner = unwrap_pooling(model)
        layers = encoder_depth(inner.get_base_model() if hasattr(inner, "get_base_model") else inner)  # PeftModel: its own
        if layers != options.depth:
            raise UserError(f"options depth={options.depth}, but the model has {layers} encoder layers: {prepare}.")
    if options.head_fit != "steps":
        raise UserError(
            f"options head_fit={options.head_fit!r} is fitted by the strategy's own training, which fit skips: "
            "run it with run_training(config), or leave head_fit='steps'."
        )


def check_strategy_fits_model(config: RunConfig) -> None:
    """Apply the run's strategy to its model's structure, built on the meta device (no weights read, nothing computed).

    An option the model cannot serve (``transfer.freeze_layers`` or ``transfer.depth`` beyond its layers, a LoRA
    target it lacks) is refused now, before anything trains; ``nlp-transfer compare`` calls it for every label. Runs
    of a task other than the packaged ones are left to train_run's own checks.
    """
    import torch

    from nlp_transfer.models import read_model_config, resolve_model
    from nlp_transfer.tasks.classification import SequenceClassificationTask
    from nlp_transfer.tasks.token_classification import TokenClassificationTask

    tasks = {
        "classification": SequenceClassificationTask,
        "multilabel": SequenceClassificationTask,
        "ner": TokenClassificationTask,
    }
    if config.task not in tasks:
        return
    strategy = build_strategy(config)
    strategy.extensions = [e for e in strategy.extensions if not e.needs_task]  # no task here (case_vocab's tokenizer)
    trust = config.trust_remote_code
    model_config = read_model_config(resolve_model(config.model).path, trust_remote_code=trust)
    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = tasks[config.task].auto_class.from_config(model_config, trust_remote_code=trust)
        model = strategy.prepare_model(model)
        strategy.parameter_groups(model, learning_rate=config.training.learning_rate, weight_decay=0.0)


__all__ = [
    "ADAPTER_DIR",
    "EXTENSIONS",
    "STRATEGIES",
    "EncoderParts",
    "ParamGroups",
    "Strategy",
    "TrainingRun",
    "TransferExtension",
    "add_adapters",
    "apply_strategy",
    "build_strategy",
    "check_strategy_fits_model",
    "count_parameters",
    "encoder_depth",
    "find_encoder_parts",
    "keep_bottom_layers",
    "layerwise_groups",
    "parameter_groups",
    "peft_config_for",
    "prepare_model",
    "register_strategy",
    "save_adapter_model",
]
