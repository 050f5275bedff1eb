"""Transfer strategies and the layer discovery they rely on."""

from nlp_transfer.transfer.layers import EncoderParts, find_encoder_parts
from nlp_transfer.transfer.strategies import STRATEGIES, apply_strategy, count_parameters, parameter_groups

__all__ = ["STRATEGIES", "EncoderParts", "apply_strategy", "count_parameters", "find_encoder_parts", "parameter_groups"]
