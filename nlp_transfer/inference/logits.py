"""Logits of encoded rows, texts and labelled files: batched by length, on any device."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from transformers import PreTrainedModel

from nlp_transfer.config import DataConfig
from nlp_transfer.data.labels import check_known_labels, map_integer_label_column
from nlp_transfer.data.text_rows import read_text_classification_file
from nlp_transfer.tasks import Task
from nlp_transfer.tasks.classification import SequenceClassificationTask
from nlp_transfer.training.batches import LengthSortedBatches, inference_token_budget
from nlp_transfer.training.evaluation import logits_of
from nlp_transfer.training.first_position import first_position_only


def batched_logits(
    model: PreTrainedModel,
    task: Task,
    rows: dict[str, list[Any]],
    *,
    batch_size: int = 64,
    first_position: bool = True,
    max_batch_tokens: int | str | None = "auto",
) -> np.ndarray:
    """Logits for encoded ``rows`` (columns of lists), in row order; batches are formed by length.

    Token-level logits are padded to the longest row. ``first_position``: a sequence classifier's last layer
    computes only the position its head reads (the same logits, less work; false computes every position).
    ``max_batch_tokens`` caps a batch's padded tokens (long texts run in smaller batches): ``"auto"`` is
    :data:`~nlp_transfer.training.batches.CPU_BATCH_TOKENS` on a CPU and no cap elsewhere; None never caps.
    """
    keys = [k for k in task.batch_columns if k in rows and k != "labels"]
    examples = [{k: rows[k][i] for k in keys} for i in range(len(rows["input_ids"]))]
    if not examples:
        return np.zeros((0, len(task.labels)), dtype=np.float32)
    model.eval()
    budget = inference_token_budget(model.device) if max_batch_tokens == "auto" else max_batch_tokens
    batches = LengthSortedBatches.build(examples, task.collator(), batch_size, max_tokens=budget)
    with first_position_only(model, first_position):
        logits, _ = batches.outputs(logits_of(model), device=model.device)
    return logits


def text_logits(
    model: PreTrainedModel,
    task: SequenceClassificationTask,
    texts: Sequence[str],
    *,
    batch_size: int = 64,
    first_position: bool = True,
    max_batch_tokens: int | str | None = "auto",
) -> np.ndarray:
    """Sequence-classification logits for ``texts`` in their order (a windows run: pooled over each text's windows)."""
    rows, documents = task.encode_texts(texts, "predict")
    logits = batched_logits(
        model, task, rows, batch_size=batch_size, first_position=first_position, max_batch_tokens=max_batch_tokens
    )
    return task.document_logits(logits, documents, len(texts))


def labelled_file_logits(
    model: PreTrainedModel,
    task: SequenceClassificationTask,
    path: str,
    data: DataConfig,
    *,
    batch_size: int = 64,
    max_rows: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The logits and gold label ids of a labelled text file (its first ``max_rows`` rows), labels checked against
    the model's."""
    columns = read_text_classification_file(path, data, multi_label=task.multi_label)
    if max_rows is not None:
        columns = {name: values[:max_rows] for name, values in columns.items()}
    # integer labels that are not label names are label ids (SST-2's 0/1 for a run trained with data.labels)
    columns["label"] = map_integer_label_column(columns["label"], task.labels)
    check_known_labels(columns["label"], columns["line"], task.labels, path, known_from="run")
    return labelled_text_logits(model, task, columns["text"], columns["label"], batch_size=batch_size)


def labelled_text_logits(
    model: PreTrainedModel, task: SequenceClassificationTask, texts: Sequence[str], labels: Sequence[Any], *, batch_size: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """The logits of ``texts`` and their gold ``labels`` as ids (a 0/1 matrix for multi-label tasks).

    Labels read as "1" by a run trained on names "1.0" (before such labels were read as whole numbers) are its "1.0".
    """
    labels = map_integer_label_column(labels, task.labels)
    logits = text_logits(model, task, texts, batch_size=batch_size)
    if task.multi_label:
        return logits, np.asarray([task.multi_hot(names, task.label2id) for names in labels])
    return logits, np.asarray([task.label2id[name] for name in labels])
