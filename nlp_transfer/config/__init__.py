"""Typed run configuration: dataclasses, YAML loading, dotted ``key=value`` overrides.

Every setting is documented where it is defined (:mod:`nlp_transfer.config.schema`, the ``help`` metadata of its
field); :mod:`~nlp_transfer.config.parse` reads YAML and overrides into those dataclasses, and
:mod:`~nlp_transfer.config.checks` refuses values and combinations that cannot run, naming the key and the fix.
``nlp-transfer config`` prints the whole reference, and docs/config.md is generated from it.
"""

from nlp_transfer.config.checks import check_per_class
from nlp_transfer.config.parse import (
    config_from_dict,
    config_to_dict,
    describe_settings,
    load_config,
    load_saved_config,
    save_config,
)
from nlp_transfer.config.schema import (
    DEFAULT_MODEL,
    DataConfig,
    HubConfig,
    RunConfig,
    SelfTrainingConfig,
    TrainingConfig,
    TransferConfig,
)
from nlp_transfer.errors import ConfigError

__all__ = [
    "DEFAULT_MODEL",
    "ConfigError",
    "DataConfig",
    "HubConfig",
    "RunConfig",
    "SelfTrainingConfig",
    "TrainingConfig",
    "TransferConfig",
    "check_per_class",
    "config_from_dict",
    "config_to_dict",
    "describe_settings",
    "load_config",
    "load_saved_config",
    "save_config",
]
