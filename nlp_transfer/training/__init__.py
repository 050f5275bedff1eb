"""The Accelerate training loop, batching by length, and checkpoints."""

from nlp_transfer.training.loop import FitResult, evaluate_model, fit, make_accelerator, make_dataloader, predict_logits
from nlp_transfer.training.sampler import LengthGroupedBatchSampler

__all__ = [
    "FitResult",
    "LengthGroupedBatchSampler",
    "evaluate_model",
    "fit",
    "make_accelerator",
    "make_dataloader",
    "predict_logits",
]
