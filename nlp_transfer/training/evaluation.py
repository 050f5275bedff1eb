"""Scoring a model on validation or test rows: the task's metrics over every process, in dataset order.

The loop scores validation here after each evaluation's optimizer step; the pipeline and strategies score whole
splits with :func:`evaluate_model`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import datasets
import torch
from accelerate import Accelerator
from accelerate.utils import is_compiled_module

from nlp_transfer.errors import UserError
from nlp_transfer.training.batches import MODEL_COLUMNS, LengthSortedBatches, batch_rows

if TYPE_CHECKING:
    from nlp_transfer.training.loop import TrainableTask


def eager_module(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` without torch.compile's wrapper (distributed and mixed-precision wrappers stay).

    Evaluation runs without gradients, which the training graph does not cover: through the compiled wrapper it
    would compile a second graph (BENCHMARKS.md measures that on a 2-core CPU) for a few hundred batches that run as
    fast eagerly.
    """
    return model._orig_mod if is_compiled_module(model) else model


def logits_of(model: torch.nn.Module) -> Any:
    """The forward function that gives ``model``'s logits for a batch."""
    return lambda batch: model(**batch).logits


def evaluate_batches(
    model: torch.nn.Module, batches: LengthSortedBatches, task: TrainableTask, accelerator: Accelerator, dataset: Any = None
) -> dict[str, Any]:
    """The task's metrics on every row of ``batches`` (prepared by ``accelerator``), in dataset order."""
    model.eval()
    logits, labels = batches.outputs(logits_of(model), accelerator=accelerator)
    if labels is None:
        raise UserError("the evaluation data has no labels; evaluation needs a label column.")
    return task.compute_metrics(logits, labels, dataset)


def evaluate_model(
    model: torch.nn.Module, dataset: datasets.Dataset, task: Any, accelerator: Accelerator, batch_size: int = 64
) -> dict[str, Any]:
    """The task's metrics of ``model`` on a tokenized ``dataset``, over every process of ``accelerator``."""
    columns = getattr(task, "batch_columns", MODEL_COLUMNS)
    batches = LengthSortedBatches.build(batch_rows(dataset, columns), task.collator(), batch_size, accelerator)
    return evaluate_batches(model, batches, task, accelerator, dataset)
