"""The Accelerate training loop, batching by length, callbacks and checkpoints."""

from nlp_transfer.training.accelerator import make_accelerator
from nlp_transfer.training.batches import LengthSortedBatches, make_dataloader
from nlp_transfer.training.callbacks import TrainingCallback
from nlp_transfer.training.evaluation import evaluate_model
from nlp_transfer.training.loop import FitResult, fit
from nlp_transfer.training.sampler import LengthGroupedBatchSampler

__all__ = [
    "FitResult",
    "LengthGroupedBatchSampler",
    "LengthSortedBatches",
    "TrainingCallback",
    "evaluate_model",
    "fit",
    "make_accelerator",
    "make_dataloader",
]
