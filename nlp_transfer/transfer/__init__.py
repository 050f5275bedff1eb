"""Transfer strategies and the layer discovery they rely on."""

from nlp_transfer.transfer.layers import EncoderParts, find_encoder_parts
from nlp_transfer.transfer.peft_adapters import ADAPTER_DIR, add_adapters, peft_config_for, save_adapter_model
from nlp_transfer.transfer.strategies import (
    EPOCH_CALLBACKS,
    MODEL_PREPARERS,
    STEP_CALLBACKS,
    STRATEGIES,
    apply_strategy,
    count_parameters,
    layerwise_groups,
    parameter_groups,
    prepare_model,
    strategy_epoch_callback,
    strategy_step_callback,
)

__all__ = [
    "ADAPTER_DIR",
    "EPOCH_CALLBACKS",
    "MODEL_PREPARERS",
    "STEP_CALLBACKS",
    "STRATEGIES",
    "EncoderParts",
    "add_adapters",
    "apply_strategy",
    "count_parameters",
    "find_encoder_parts",
    "layerwise_groups",
    "parameter_groups",
    "peft_config_for",
    "prepare_model",
    "save_adapter_model",
    "strategy_epoch_callback",
    "strategy_step_callback",
]
