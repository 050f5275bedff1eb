"""nlp-transfer: fine-tune pretrained Hugging Face models for sentiment, topics and other text labels.

The stages, each importable on its own::

    from nlp_transfer import load_config, run_training          # a whole run from a config
    from nlp_transfer import build_classification_task, fit      # or compose the stages yourself

The names below are imported on first use, so ``import nlp_transfer`` (and every ``nlp-transfer`` verb) loads
torch and transformers only when it needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_HOME = {  # public name -> the module that defines it
    "ConfigError": "nlp_transfer.errors",
    "DataError": "nlp_transfer.errors",
    "UserError": "nlp_transfer.errors",
    "DataConfig": "nlp_transfer.config",
    "RunConfig": "nlp_transfer.config",
    "TrainingConfig": "nlp_transfer.config",
    "TransferConfig": "nlp_transfer.config",
    "load_config": "nlp_transfer.config",
    "load_text_classification_data": "nlp_transfer.data",
    "evaluate_file": "nlp_transfer.inference",
    "load_run": "nlp_transfer.inference",
    "predict": "nlp_transfer.inference",
    "predict_texts": "nlp_transfer.inference",
    "run_training": "nlp_transfer.pipeline",
    "SequenceClassificationTask": "nlp_transfer.tasks",
    "build_classification_task": "nlp_transfer.tasks",
    "fit": "nlp_transfer.training",
    "apply_strategy": "nlp_transfer.transfer",
    "ShiftReport": "nlp_transfer.shift",
    "export_run": "nlp_transfer.export.command",
    "load_backend": "nlp_transfer.inference",
    "domain_shift": "nlp_transfer.shift",
    "run_adaptation": "nlp_transfer.adapt.run",
    "run_self_training": "nlp_transfer.self_training",
}

__all__ = [
    "ConfigError",
    "DataConfig",
    "DataError",
    "RunConfig",
    "SequenceClassificationTask",
    "ShiftReport",
    "TrainingConfig",
    "TransferConfig",
    "UserError",
    "apply_strategy",
    "build_classification_task",
    "domain_shift",
    "evaluate_file",
    "export_run",
    "fit",
    "load_backend",
    "load_config",
    "load_run",
    "load_text_classification_data",
    "predict",
    "predict_texts",
    "run_adaptation",
    "run_self_training",
    "run_training",
]

if TYPE_CHECKING:  # what type checkers and editors see
    from nlp_transfer.adapt.run import run_adaptation
    from nlp_transfer.config import DataConfig, RunConfig, TrainingConfig, TransferConfig, load_config
    from nlp_transfer.data import load_text_classification_data
    from nlp_transfer.errors import ConfigError, DataError, UserError
    from nlp_transfer.export.command import export_run
    from nlp_transfer.inference import evaluate_file, load_backend, load_run, predict, predict_texts
    from nlp_transfer.pipeline import run_training
    from nlp_transfer.self_training import run_self_training
    from nlp_transfer.shift import ShiftReport, domain_shift
    from nlp_transfer.tasks import SequenceClassificationTask, build_classification_task
    from nlp_transfer.training import fit
    from nlp_transfer.transfer import apply_strategy


def __getattr__(name: str) -> Any:
    """Import a public name from its module the first time it is asked for."""
    if name not in _HOME:
        raise AttributeError(f"module 'nlp_transfer' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOME[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public names, for ``dir()`` and tab completion."""
    return sorted({*globals(), *__all__})
