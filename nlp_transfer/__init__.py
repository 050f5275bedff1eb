"""nlp-transfer: fine-tune pretrained Hugging Face models for sentiment, topics and other text labels.

The stages, each importable on its own::

    from nlp_transfer import load_config, run_training          # a whole run from a config
    from nlp_transfer import build_classification_task, fit      # or compose the stages yourself
"""

from nlp_transfer.config import DataConfig, RunConfig, TrainingConfig, TransferConfig, load_config
from nlp_transfer.data import load_text_classification_data
from nlp_transfer.errors import ConfigError, DataError, UserError
from nlp_transfer.inference import evaluate_file, load_run, predict, predict_texts
from nlp_transfer.pipeline import run_training
from nlp_transfer.tasks import SequenceClassificationTask, build_classification_task
from nlp_transfer.training import fit
from nlp_transfer.transfer import apply_strategy

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DataConfig",
    "DataError",
    "RunConfig",
    "SequenceClassificationTask",
    "TrainingConfig",
    "TransferConfig",
    "UserError",
    "apply_strategy",
    "build_classification_task",
    "evaluate_file",
    "fit",
    "load_config",
    "load_run",
    "load_text_classification_data",
    "predict",
    "predict_texts",
    "run_training",
]
